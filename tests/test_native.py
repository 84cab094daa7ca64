"""The native fast path (issue 19, ``compile = native``): generated C for the field, its VJP, the fixed-step
rollout and its discrete adjoint, against the eager reference in float64 (states, every parameter gradient and
the initial states' gradient to 1e-10), and its fallbacks with their reasons.

The C code is compiled into a temporary cache folder (``XDG_CACHE_HOME``), so these tests exercise the
compile and the cache; where there is no gcc they are skipped, except the fallback that says so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

import nodedsl
from nodedsl.compiler import cgen_rules
from nodedsl.frontend.config import validate_train
from nodedsl.frontend.parse import parse_source
from nodedsl.solvers import make_solver, solve
from nodedsl.train import fit
from nodedsl.train import native as native_mod
from nodedsl.train.fast import coverage
from nodedsl.train.native import NativeStep, build
from nodedsl.train.rollout import WindowField, observation_map, observe

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from test_fast_path import SOURCE as DRIVEN  # noqa: E402
from test_fast_path import _train_cfg, _windows  # noqa: E402

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler (gcc) on this machine")

BLACKBOX = """model Box { state theta = 1
 state omega = 0
 net f(theta, omega) -> 2 { hidden = [64, 64], activation = tanh }
 der(theta) = f(theta, omega)[0]
 der(omega) = f(theta, omega)[1]
 output energy = omega^2 / 2 + 1 - cos(theta) }"""

# every element-wise rule and activation: builtins, time, an input, nets of each activation, and grad H of
# nets (a Hessian-vector product in the adjoint: act'' of each activation)
RULES_MODEL = """model Rules { state a = 0.3
 state b = -0.4
 input w = 0
 param k = 0.7 learn
 param c = 0.5 learn positive
 net r(a, b) -> 2 { hidden = [5], activation = relu }
 net s(a) -> 1 { hidden = [4, 3], activation = silu, output = softplus }
 net e(b) -> 1 { hidden = [4], activation = elu, output = sigmoid }
 net g(a, b) -> 1 { hidden = [4], activation = gelu }
 der(a) = DER_A
 der(b) = -c * a + k * b / (1 + a^2) + r(a, b)[1] + clip(b, -0.25, 0.375) + sign(a) * 0.1 }
model Energy : port_hamiltonian { state q = 0.4
 state p = -0.2
 param m = 1.3
 net V(x) -> 1 { hidden = [6, 5], activation = softplus }
 net W(x) -> 1 { hidden = [5], activation = silu }
 net X(x) -> 1 { hidden = [5], activation = elu }
 net Y(x) -> 1 { hidden = [5], activation = gelu }
 net Z(x) -> 1 { hidden = [5], activation = sigmoid }
 hamiltonian = p^2 / (2 * m) + V(q) + W(q) + X(q) + Y(q) + Z(q)
 R = [[0, 0], [0, 0.1]] }"""
DER_A = " + ".join(
    ["sin(k * a)", "cos(b) * tan(0.3 * a)", "exp(-b^2)", "log(2 + a^2)", "tanh(c * b)", "sigmoid(a - b)"]
    + ["softplus(b)", "sqrt(1 + a^2)", "abs(a - 0.1)", "min(a, b)", "max(a, 0.0625)", "a^3", "0.2 * t", "w"]
    + ["r(a, b)[0] * s(a)", "e(b) / (1 + g(a, b)^2)", "(1 + a^2)^1.5 * 0.01"]
)
RULES_MODEL = RULES_MODEL.replace("DER_A", DER_A)


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("xdg")
        mp.setenv("XDG_CACHE_HOME", str(folder))
        yield folder / "nodedsl" / "native"


def _grads(out, params):
    grads = torch.autograd.grad(out.pow(2).sum(), params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _compare(model, solver, autonomous=False, steps=10, dtype=torch.float64, tol=1e-10):
    """Native rollout against the eager solver: states, parameter and initial-state gradients."""
    n, m = len(model.state_names), model.u_default.numel()
    g = torch.Generator().manual_seed(3)
    x0 = (model.x0_default + 0.3 * torch.randn(5, n, generator=g, dtype=dtype)).requires_grad_(True)
    t0 = torch.rand(5, generator=g, dtype=dtype)
    grid = torch.linspace(0, 0.05 * steps, steps + 1, dtype=dtype)
    u = torch.randn(5, steps + 1, m, generator=g, dtype=dtype)
    eager = solve(WindowField(model, t0, grid, u, autonomous), x0, grid, solver=solver).ys.transpose(0, 1)
    fast = NativeStep(model, solver, observation_map(model), autonomous)
    tb = t0[:, None] + grid
    states, yhat = fast(x0, t0, u, tb, grid)
    scale = 1 + eager.detach().abs()
    assert ((states - eager).detach().abs() / scale).max() <= tol
    # a computed output (not a state) is observed eagerly: its gradient reaches the C adjoint through states
    y_eager = observe(model, eager, tb, u, observation_map(model))
    params = [p for p in model.parameters() if p.requires_grad] + [x0]
    for a, b in zip(_grads(states, params) + _grads(yhat, params), _grads(eager, params) + _grads(y_eager, params)):
        assert ((a - b).abs() / (1 + b.abs())).max() <= tol
    return fast


@needs_gcc
@pytest.mark.parametrize("name", ["pendulum", "blackbox", "msd", "chain"])
def test_rollout_and_adjoint_match_eager(name):
    """The issue's models, rk4, float64: the pendulum hybrid (sin, known g, learned positive L, a tanh net,
    an input), the 2-64-64-2 black box, the MSD port-Hamiltonian model (grad of a net) and the 10-body chain."""
    torch.manual_seed(0)
    if name == "pendulum":
        model = nodedsl.load(ROOT / "examples" / "pendulum.node").model("Pendulum", torch.float64)
    elif name == "msd":
        model = nodedsl.load(ROOT / "examples" / "msd.node").model("MassSpringDamper", torch.float64)
    elif name == "blackbox":
        model = nodedsl.loads(BLACKBOX).model("Box", torch.float64)
    else:
        from peer_training import sources

        text, _, model_name, _ = sources("chain")
        model = nodedsl.loads(text).model(model_name, torch.float64)
    fast = _compare(model, make_solver("rk4", step=0.05))
    assert fast.compile_seconds > 0  # compiled into the test's empty cache


@needs_gcc
@pytest.mark.parametrize("model_name", ["Rules", "Energy"])
def test_every_rule_matches_autograd(model_name):
    """Heun on an irregular grid (stage times between samples, interpolated inputs) through every rule."""
    torch.manual_seed(1)
    model = nodedsl.loads(RULES_MODEL).model(model_name, torch.float64)
    _compare(model, make_solver("heun", step=0.07), steps=4)


@needs_gcc
@pytest.mark.parametrize(
    "source",
    [  # a known matrix written into M^T (put), a learned matrix times a state block (matrix_times)
        "model M {\n state x[3] = 1\n state y = 0.5\n param A = [[1, 2, 0], [0, 1, 3], [1, 0, 1]]\n"
        " der(x) = A @ x + y\n der(y) = -y\n}",
        "model M {\n state z = 1\n state X[3, 3] = 1\n state Y[2, 3] = 0\n param B[2, 3] = 0.2 learn\n"
        " der(z) = -z\n der(X) = -X\n der(Y) = -B @ X\n}",
    ],
)
def test_matrix_products(source):
    _compare(nodedsl.loads(source).model("M", torch.float64), make_solver("rk4", step=0.05), steps=3)


@needs_gcc
def test_float32_and_autonomous():
    torch.manual_seed(0)
    model = nodedsl.loads(BLACKBOX).model("Box")
    _compare(model, make_solver("rk4", step=0.05), autonomous=True, dtype=torch.float32, tol=2e-5)


@needs_gcc
def test_fit_native_equals_eager_and_records_it():
    prog = nodedsl.loads(DRIVEN)
    wt, wv = _windows(prog)
    runs = {}
    for mode in ("off", "native"):
        torch.manual_seed(0)
        model = prog.model("Driven", torch.float64)
        res = fit(model, wt, wv, _train_cfg(f"compile = {mode}\n epochs = 2"))
        runs[mode] = (res, torch.cat([p.detach().flatten() for p in model.parameters()]))
    (eager, pe), (fast, pf) = runs["off"], runs["native"]
    info = fast.extra["compile"]
    assert info["used"] and info["reason"] is None and info["backend"] == "native"
    assert torch.allclose(pe, pf, rtol=1e-10, atol=1e-10)
    for a, b in zip(eager.history, fast.history):
        assert abs(a["train_loss"] - b["train_loss"]) <= 1e-10 * abs(a["train_loss"])
        assert abs(a["val_loss"] - b["val_loss"]) <= 1e-10 * abs(a["val_loss"])


@needs_gcc
def test_second_build_compiles_nothing(cache):
    source = "typedef double real;\nint nd_forward(void) { return 7; }\nint nd_backward(void) { return 0; }\n"
    native_mod._LOADED.clear()
    lib, spent = build(source)
    assert spent > 0 and lib.nd_forward() == 7
    native_mod._LOADED.clear()  # a new process: only the file cache
    lib, spent = build(source)
    assert spent == 0.0 and lib.nd_forward() == 7
    assert all(p.suffix == ".so" for p in cache.iterdir())  # written atomically: no temporary left


def _reason(extra: str) -> str:
    prog = nodedsl.loads(DRIVEN)
    wt, _ = _windows(prog)
    res = fit(prog.model("Driven", torch.float64), wt, None, _train_cfg(f"compile = native\n epochs = 1\n {extra}"))
    info = res.extra["compile"]
    assert not info["used"]
    return info["reason"]


@needs_gcc
def test_op_without_a_rule_falls_back(monkeypatch):
    monkeypatch.delitem(cgen_rules.RULES, torch.sin)
    monkeypatch.setattr(native_mod, "_LOADED", {})
    assert _reason("") == "op sin has no native rule"


def test_no_compiler_falls_back(monkeypatch):
    monkeypatch.setenv("NODEDSL_CC", "no-such-compiler-nodedsl")
    assert "no C compiler found" in _reason("")


@needs_gcc
def test_compiler_failure_falls_back(monkeypatch):
    if shutil.which("false") is None:
        pytest.skip("no 'false' command")
    monkeypatch.setenv("NODEDSL_CC", "false")
    monkeypatch.setattr(native_mod, "_LOADED", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(Path(native_mod.native_cache_dir()).parent.parent / "other"))
    assert "the C compiler failed" in _reason("")


@needs_gcc
def test_unwritable_cache_falls_back(monkeypatch, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    monkeypatch.setattr(native_mod, "_LOADED", {})
    assert "the native build failed" in _reason("")


def test_adaptive_solver_falls_back():
    model = nodedsl.loads(BLACKBOX).model("Box")
    reason = coverage(model, make_solver("dopri5"), _train_cfg("compile = native"), 0)
    assert "not a fixed-step explicit Runge-Kutta" in reason


def test_every_op_of_the_vocabulary_has_a_native_rule():
    """An op added to nodedsl.compiler.ops without a C rule would make its models fall back: say so here."""
    from nodedsl.compiler import cgen, ops

    missing = [
        getattr(f, "__name__", str(f)) for f in ops.FUNCTIONS if f not in cgen_rules.RULES and f not in cgen._STRUCTURAL
    ]
    assert not missing, missing


def test_native_is_a_compile_value():
    text = "train Driven {\n data = d\n compile = native\n}"
    cfg, diags = validate_train(parse_source(text, "t.node").trains[0])
    assert not diags and cfg.compile == "native"


@needs_gcc
def test_auto_takes_the_native_path_on_long_enough_runs():
    from types import SimpleNamespace

    from nodedsl.train.native import AUTO_NATIVE_MIN_STEPS, make_fast

    model = nodedsl.loads(DRIVEN).model("Driven", torch.float64)
    solver, cfg = make_solver("rk4", step=0.1), _train_cfg("compile = auto\n epochs = 1")
    for batches, native in ((AUTO_NATIVE_MIN_STEPS, True), (AUTO_NATIVE_MIN_STEPS - 1, False)):
        train = SimpleNamespace(groups=[(range(64 * batches), None)])
        step, info = make_fast(model, solver, cfg, observation_map(model), False, train)
        assert isinstance(step, NativeStep) == native and info["mode"] == "auto"
        assert info["used"] == native and (native or "fewer than" in info["reason"])


def test_min_max_constants_keep_the_model_dtype():
    # eager min/max once made a Python constant a float32 tensor: a float64 max(a, 0.05) was rounded,
    # 7e-10 away from the native path's exact constant
    from nodedsl.compiler import ops

    x = torch.tensor([0.0, 1.0], dtype=torch.float64)
    assert ops.maximum(x, 0.05)[0].item() == 0.05 and ops.minimum(0.05, x + 1)[0].item() == 0.05
    assert ops.maximum(x, 0.05).dtype == torch.float64
