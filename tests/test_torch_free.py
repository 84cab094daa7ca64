"""The front end is torch-free: `nodedsl check` and `nodedsl --help` run with torch and matplotlib
unimportable (and SymPy too, for general models), and the definedness screen that lets `check` skip
SymPy never hides a problem the lowering finds."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedsl.core.diagnostics import NodeDslError
from nodedsl.frontend.check import check_source
from nodedsl.frontend.definedness import may_lack_value
from nodedsl.frontend.loader import load_sources, source_from_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(glob.glob(str(ROOT / "examples" / "*.node")))
HEAVY = ("torch", "matplotlib", "sympy")


def _run(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing any of ``blocked`` raises ImportError."""
    prelude = f"import sys\nfor _m in {blocked!r}:\n    sys.modules[_m] = None\n"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
    )


def _cli(args: list[str]) -> str:
    return f"from nodedsl.cli.main import main\nsys.argv = ['nodedsl', *{args!r}]\nmain()\n"


def _needs_sympy(path: str) -> bool:
    """Port-Hamiltonian models are proven and connected composites lowered (algebraic loops): SymPy."""
    text = Path(path).read_text(encoding="utf-8")
    return "port_hamiltonian" in text or "connect " in text


def test_help_without_torch_matplotlib_sympy():
    proc = _run(HEAVY, _cli(["--help"]))
    assert proc.returncode == 0, proc.stderr
    assert "check" in proc.stdout and "simulate" in proc.stdout


def test_check_examples_without_torch_and_matplotlib():
    proc = _run(("torch", "matplotlib"), _cli(["check", *EXAMPLES]))
    assert proc.returncode == 0, proc.stderr
    assert all(f"{p}: " in proc.stdout for p in EXAMPLES)


def test_check_general_examples_without_sympy():
    general = [p for p in EXAMPLES if not _needs_sympy(p)]
    assert len(general) >= 2
    proc = _run(HEAVY, _cli(["check", *general]))
    assert proc.returncode == 0, proc.stderr


def test_check_reports_errors_without_torch():
    bad = str(ROOT / "tests" / "errors" / "undefined_name.node")
    proc = _run(HEAVY, _cli(["check", bad]))
    assert proc.returncode == 1 and "error[undefined-name]" in proc.stderr


def _entry(args: list[str]) -> str:
    return f"from nodedsl.cli.entry import main\nsys.argv = ['nodedsl', *{args!r}]\nmain()\n"


def test_console_check_skips_typer_and_matches_it():
    """The console script's plain `check FILE...` route imports no typer, and prints what typer's does."""
    bad = str(ROOT / "tests" / "errors" / "undefined_name.node")
    for files in (EXAMPLES[:3], [EXAMPLES[0], bad]):
        fast = _run(("torch", "matplotlib", "typer", "click"), _entry(["check", *files]))
        full = _run((), _cli(["check", *files]))
        assert (fast.returncode, fast.stdout, fast.stderr) == (full.returncode, full.stdout, full.stderr)
    assert fast.returncode == 1 and "error[undefined-name]" in fast.stderr
    helped = _run((), _entry(["check", "--help"]))  # an option: typer's route
    assert helped.returncode == 0 and "one or more .node files" in helped.stdout


def test_frontend_imports_no_heavy_module():
    code = (
        "import nodedsl, nodedsl.program, nodedsl.cli.main\n"
        "from nodedsl.frontend import check, check_blocks, config, definedness, loader, netspec, parse, shapes\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = _run((), code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ------------------------------------------------------------------ the screen against the lowering
def _lowering_finds_no_value_problem(info) -> bool:
    from nodedsl.program import _lowered_value_diagnostics

    return not any(d.code in ("no-real-value", "bad-constant") for d in _lowered_value_diagnostics(info))


def _screened(source) -> list:
    checked, diags = check_source(source)
    if any(d.severity == "error" for d in diags):
        return []
    return [i for i in checked.infos.values() if not may_lack_value(i)]


@pytest.mark.parametrize("path", EXAMPLES + sorted(glob.glob(str(ROOT / "tests" / "errors" / "*.node"))))
def test_screen_agrees_with_lowering_on_files(path):
    try:
        source = load_sources(path)
    except NodeDslError:
        return
    for info in _screened(source):
        assert _lowering_finds_no_value_problem(info), (path, info.name)


def test_screen_flags_singular_constants():
    for body in ("der(x) = 1 / (x - x)", "der(x) = sqrt(-2)", "der(x) = log(0) * x", "der(x) = (0)^(-1)",
                 "let z = 0\n der(x) = x / z", "der(x) = solve([[0]], [x])[0]", "der(x) = tan(pi / 2)"):  # fmt: skip
        (info,) = _screened(source_from_text(f"model M {{ state x = 1\n {body} }}", "m.node")) or [None]
        assert info is None, body


leaf = st.sampled_from(["x", "k", "t", "0", "1", "2", "-2", "0.5", "pi", "z", "(x - x)", "(k * 0)"])
expr = st.recursive(
    leaf,
    lambda c: st.one_of(
        st.tuples(c, st.sampled_from(["+", "-", "*", "/", "^"]), c).map(lambda a: f"({' '.join(a)})"),
        st.tuples(st.sampled_from(["sqrt", "log", "tan", "exp", "abs", "sin", "sign", "f"]), c).map(
            lambda a: f"{a[0]}({a[1]})"
        ),
        c.map(lambda e: f"-{e}"),
    ),
    max_leaves=5,
)


@settings(
    max_examples=int(os.environ.get("NODEDSL_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(expr, expr)
def test_screen_agrees_with_lowering_on_random_models(let_expr, der_expr):
    text = (
        "model M {\n state x = 1\n param k = 2 learn\n net f(a) -> 1\n"
        f" let z = {let_expr}\n der(x) = {der_expr}\n output y = z\n}}\n"
    )
    for info in _screened(source_from_text(text, "m.node")):
        assert _lowering_finds_no_value_problem(info), text


def test_an_unchanged_proved_model_is_checked_without_sympy(tmp_path):
    """The second check of an unchanged port-Hamiltonian model reads the proof marker: no SymPy, the
    same output; an edited model is proved again, and a model whose proof fails is never marked."""
    env_cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    model = tmp_path / "m.node"
    model.write_text((ROOT / "examples" / "msd.node").read_text())

    def check() -> subprocess.CompletedProcess:
        code = (
            f"import sys\nfrom nodedsl.cli.entry import main\nsys.argv = ['nodedsl', 'check', {str(model)!r}]\n"
            "try:\n    main()\nfinally:\n    print('sympy' in sys.modules, file=sys.stderr)\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT), **env_cache}
        env.pop("NODEDSL_NO_PROOF_CACHE", None)
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
        )

    first, second = check(), check()
    assert first.stderr.strip().endswith("True") and second.stderr.strip().endswith("False")
    assert first.stdout == second.stdout and "MassSpringDamper" in first.stdout
    model.write_text(model.read_text().replace("param m = 1.0", "param m = 2.0", 1))
    assert check().stderr.strip().endswith("True")  # changed: proved again
    (tmp_path / "_components.node").write_text((ROOT / "tests" / "errors" / "_components.node").read_text())
    model.write_text((ROOT / "tests" / "errors" / "couple_not_skew_symbolic.node").read_text())
    assert check().returncode == 1 and check().returncode == 1  # a failing proof is reported every time
