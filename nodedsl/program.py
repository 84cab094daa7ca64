"""The Python API: a checked program whose models compile to PyTorch modules.

Example:
    >>> import nodedsl, torch, torchdiffeq
    >>> prog = nodedsl.load("examples/pendulum.node")                   # doctest: +SKIP
    >>> model = prog.model("PendulumTruth")                              # doctest: +SKIP
    >>> ys = torchdiffeq.odeint(model, model.x0_default[None], torch.linspace(0, 1, 11))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from .core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from .frontend import ast
from .frontend.check import CheckedProgram, ModelInfo, check_source
from .frontend.definedness import may_lack_value
from .frontend.loader import Source, load_sources, source_from_text

if TYPE_CHECKING:
    from .symbolic.lower import System

# SymPy and the symbolic stage are imported where a model is lowered or proven, not here: checking a
# general model whose equations cannot lose their value (frontend.definedness) needs neither.


class Program:
    """A loaded, checked ``.node`` file with its imports."""

    def __init__(self, checked: CheckedProgram, warnings: list[Diagnostic]):
        self.checked = checked
        self.warnings = warnings
        self._systems: dict[str, System] = {}

    def __repr__(self) -> str:  # what the file declares, model by model with its equations
        return f"Program {self.path}\n" + "\n".join(repr(info) for info in self.checked.root_models())

    def _repr_latex_(self) -> str:
        return "\n".join(self.system(info.name)._repr_latex_() for info in self.checked.root_models())

    @property
    def source(self) -> Source:
        return self.checked.source

    @property
    def sources(self) -> dict[str, str]:
        """File name -> text, for rendering diagnostics."""
        return self.source.texts

    @property
    def path(self) -> str:
        return self.source.root

    @property
    def module(self) -> ast.Module:
        return self.source.modules[self.source.root]

    @property
    def trains(self) -> tuple[ast.Train, ...]:
        return self.module.trains

    def model_names(self) -> list[str]:
        return [n for n, (_, v) in self.source.scopes[self.source.root].items() if isinstance(v, ast.Model)]

    def info(self, name: str) -> ModelInfo:
        info = self.checked.model(name)
        if info is None:
            raise NodeDslError.single(
                "undefined-model",
                f"unknown model '{name}'",
                Span(self.path, 0, 0),
                suggest(name, self.model_names()) or "models: " + ", ".join(self.model_names()),
            )
        return info

    def system(self, name: str) -> System:
        """The lowered SymPy system of a model (cached)."""
        from .symbolic.lower import lower

        if name not in self._systems:
            self._systems[name] = lower(self.info(name))
        return self._systems[name]

    def model(self, name: str, dtype=None):
        """A fresh compiled ``nn.Module`` for model ``name`` (parameters at their declared values; in
        ``dtype``, torch's default when None)."""
        from .compiler.graph import UncompilableError
        from .compiler.module import CompiledModel

        info = self.info(name)
        try:
            model = CompiledModel(self.system(name), self.source_hash(name), dtype)
        except UncompilableError as err:
            raise NodeDslError.single("cannot-compile", f"model '{name}': {err}", info.model.span) from None
        model.loaded_subs = self._load_sub_weights(model, info, "")
        model.latent_names = tuple(info.latent_names())  # data never has them (train/inputs.py)
        return model

    def _load_sub_weights(self, model, info: ModelInfo, prefix: str) -> list[str]:
        """Apply every ``sub NAME = M(...) weights "run"`` clause of the instance tree (outermost wins);
        return the dotted paths of the sub-models loaded."""
        from .io.checkpoint import load_checkpoint

        loaded: list[str] = []
        for decl in info.model.decls(ast.Sub):
            sub = info.subs[decl.name]
            path = prefix + decl.name
            loaded += self._load_sub_weights(model, sub, path + ".")
            if decl.weights is None:
                continue
            loaded.append(path)
            target = Path(info.file).parent / decl.weights
            if target.is_dir():
                target = target / "model.pt" if (target / "model.pt").is_file() else target / "checkpoint.pt"
            expected = _hash_info(sub)
            try:
                state = load_checkpoint(target)
            except NodeDslError as err:
                raise NodeDslError(
                    [Diagnostic(d.code, d.message, decl.span, d.notes) for d in err.diagnostics]
                ) from None
            got_model, got_hash = state.get("model"), state.get("source_hash")
            if got_hash != expected:
                raise NodeDslError.single(
                    "checkpoint-mismatch",
                    f"'{decl.weights}' holds weights of model '{got_model}', which is not "
                    f"'{sub.name}' as declared here",
                    decl.span,
                    "the checkpoint's model source hash differs: train this sub-model alone and point weights at "
                    "that run",
                )
            try:
                model.load_sub_state(path, state["model_state"])
            except ValueError as err:
                raise NodeDslError.single("checkpoint-mismatch", f"'{decl.weights}': {err}", decl.span) from None
        return loaded

    def dataset(self, name: str) -> ast.Dataset:
        entry = self.source.scopes[self.source.root].get(name)
        if entry is None or not isinstance(entry[1], ast.Dataset):
            names = [n for n, (_, v) in self.source.scopes[self.source.root].items() if isinstance(v, ast.Dataset)]
            raise NodeDslError.single(
                "undefined-name", f"unknown dataset '{name}'", Span(self.path, 0, 0), suggest(name, names)
            )
        return entry[1]

    def source_hash(self, name: str) -> str:
        """A hash of the model's structure (its declarations and those of its sub-models), not its spacing."""
        return _hash_info(self.info(name))

    def simulate(
        self,
        name: str,
        t,
        *,
        x0=None,
        signal=None,
        solver: str = "dopri5",
        weights: str | Path | None = None,
        init: str | None = None,
        seed: int = 0,
        **options,
    ):
        """Simulate model ``name`` at times ``t`` from ``x0 [batch, n]`` (default: declared initial state).

        A model with nets needs trained weights: ``weights`` (a run directory, as ``nodedsl train`` writes
        it) or the sub-models' ``weights`` clauses; ``init="random"`` simulates freshly initialized nets,
        drawn from ``seed`` (the same on every call). Otherwise ``untrained-nets`` is raised.

        Returns a ``SolveResult`` (``.ys`` is ``[len(t), batch, n]``).

        Example:
            >>> import nodedsl
            >>> prog = nodedsl.loads("model M { state x = 1\\n net f(x) -> 1\\n der(x) = f(x) }")
            >>> prog.simulate("M", [0.0, 0.1])
            Traceback (most recent call last):
            nodedsl.core.diagnostics.NodeDslError: <string>:1:1: model 'M' has net(s) f with no trained weights
            >>> a = prog.simulate("M", [0.0, 0.1], init="random", seed=1).ys
            >>> bool((a == prog.simulate("M", [0.0, 0.1], init="random", seed=1).ys).all())
            True
        """
        import torch

        from .solvers import make_solver, solve

        model = self.trained(name, weights, init, seed)
        t = torch.as_tensor(t, dtype=model.x0_default.dtype)
        x0 = model.x0_default[None] if x0 is None else torch.as_tensor(x0, dtype=t.dtype)
        with torch.no_grad():
            return solve(model.driven(signal), x0, t, solver=make_solver(solver, **options))

    def trained(self, name: str, weights: str | Path | None = None, init: str | None = None, seed: int = 0, dtype=None):
        """Model ``name`` ready to simulate: with a run's weights, with its ``weights`` clauses, or (with
        ``init="random"``) nets initialized from ``seed``; ``untrained-nets`` if nets would be random."""
        import torch

        from .train.trained import trained_model, untrained_nets

        if weights is not None:
            return trained_model(self, weights, name, dtype)[0]
        if init not in (None, "random"):
            raise NodeDslError.single(
                "bad-argument", f"init must be 'random' or None, not {init!r}", Span(self.path, 0, 0)
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = self.model(name, dtype)
        missing = untrained_nets(model)
        if missing and init is None:
            raise NodeDslError.single(
                "untrained-nets",
                f"model '{name}' has net(s) {', '.join(missing)} with no trained weights",
                self.info(name).model.span,
                "give weights=RUN_DIR (a trained run), or init='random' for freshly initialized nets",
            )
        return model


def load_run(run_dir: str | Path, dtype=None):
    """The trained model of a run directory: its ``.node`` source (recorded in ``config.json``) compiled,
    with the run's parameters and nets loaded (``nodedsl.load_run``).

    Example:
        >>> model = nodedsl.load_run("runs/pendulum")              # doctest: +SKIP
        >>> model.parameter_values()                               # doctest: +SKIP
        {'g': 9.81, 'c': 0.29...}
    """
    from .train.trained import run_config, trained_model

    saved = run_config(run_dir)
    source = saved.get("source")
    if not source or not Path(source).is_file():
        raise NodeDslError.single(
            "bad-checkpoint",
            f"the source of run '{run_dir}' ({source}) is not there",
            Span(str(run_dir), 0, 0),
            "load the .node file and use Program.trained(name, weights=RUN_DIR)",
        )
    return trained_model(load(source), run_dir, None, dtype)[0]


def _hash_info(info: ModelInfo) -> str:
    """Hash of a model's declarations and its sub-models' (spans and comments excluded)."""
    h = hashlib.sha256()

    def visit(i: ModelInfo):
        h.update(repr(i.model).encode())
        for sub in i.subs.values():
            visit(sub)

    visit(info)
    return h.hexdigest()[:16]


def _value_diagnostics(info: ModelInfo) -> list[Diagnostic]:
    """Lower a model and look for expressions without a finite real value and for algebraic loops.

    Done for models without sub-models (cheap) and for general composites with connections (loops);
    port-Hamiltonian composites only combine expressions already checked in their components. A model
    whose equations cannot lose their value (``frontend.definedness``) is not lowered (no SymPy)."""
    m = info.model
    if info.subs and not m.decls(ast.Connect):  # a coupled stateless port may close an algebraic loop
        return _lowered_value_diagnostics(info) if m.decls(ast.Couple) and _has_static_port(info) else []
    if not may_lack_value(info):
        return []
    return _lowered_value_diagnostics(info)


def _has_static_port(info: ModelInfo) -> bool:
    """Whether a sub-model of the tree declares a stateless port (``y = f(u)``)."""
    return any(
        any(i.key == "y" for p in sub.model.decls(ast.Port) for i in p.items) or _has_static_port(sub)
        for sub in info.subs.values()
    )


def _lowered_value_diagnostics(info: ModelInfo) -> list[Diagnostic]:
    """The lowering half of :func:`_value_diagnostics` (SymPy imported here)."""
    import sympy as sp

    from .symbolic.lower import lower

    m = info.model
    try:
        system = lower(info)
    except NodeDslError as err:
        return list(err.diagnostics)
    except (ValueError, OverflowError, ArithmeticError) as err:
        return [Diagnostic("bad-constant", f"a constant of model '{m.name}' cannot be represented: {err}", m.span)]
    named = [(f"der({n})", e) for n, e in zip(system.state_names, system.rhs)]
    named += [(f"output {n}", e) for n, e in zip(system.output_names, system.outputs)]
    named += [(f"constraint {c.name}", e) for c in system.constraints for e in c.residual]
    for what, expr in named:
        if expr.has(sp.zoo, sp.nan, sp.I, sp.oo, -sp.oo):
            span = next((d.span for d in m.decls(ast.Der) if f"der({d.state}" in what), m.span)
            return [
                Diagnostic(
                    "no-real-value",
                    f"{what} has no finite real value (a division by zero, or a root or "
                    "logarithm of a negative number)",
                    span,
                )
            ]
    return []


def _structure_diagnostics(info: ModelInfo) -> list[Diagnostic]:
    """The symbolic proofs of a port-Hamiltonian model (J skew, R PSD, couplings); others have none."""
    if not info.is_ph:
        return []
    from .symbolic.prove import structure_diagnostics

    return structure_diagnostics(info)


def _proof_key(info: ModelInfo) -> str:
    """What the proofs and the value screen of ``info`` read: its declarations and its sub-models', the
    version and the proving code (a changed prover never trusts an old marker)."""
    from .core.version import __version__

    h = hashlib.sha256(f"{__version__}\0{_prover_hash()}\0{_hash_info(info)}".encode())
    return h.hexdigest()


@functools.cache
def _prover_hash() -> str:
    h = hashlib.sha256()
    for module in ("symbolic/prove.py", "symbolic/porthamiltonian.py", "symbolic/lower.py", "program.py"):
        try:
            h.update((Path(__file__).parent / module).read_bytes())
        except OSError:
            h.update(module.encode())
    return h.hexdigest()


def _model_diagnostics(info: ModelInfo) -> list[Diagnostic]:
    """The proofs and the value screen of one model; a clean result is remembered between processes."""
    from .io.proofcache import proved, remember

    key = _proof_key(info)
    if proved(key):
        return []
    found = _structure_diagnostics(info) + _value_diagnostics(info)
    if not found:
        remember(key)
    return found


def _finish(source: Source) -> Program:
    checked, diags = check_source(source)
    errors = [d for d in diags if d.severity == "error"]
    if not errors:
        for file, module in source.modules.items():
            for m in module.models:
                info = checked.infos.get((file, m.name))
                if info is not None:
                    diags += _model_diagnostics(info)
    if any(d.severity == "error" for d in diags):
        raise NodeDslError(diags)
    return Program(checked, [d for d in diags if d.severity != "error"])


def load(path: str | Path) -> Program:
    """Load, parse, resolve imports and check a ``.node`` file; raise NodeDslError with every problem."""
    return _finish(load_sources(path))


def loads(text: str, file: str = "<string>") -> Program:
    """Like :func:`load` for source text without imports."""
    return _finish(source_from_text(text, file))
