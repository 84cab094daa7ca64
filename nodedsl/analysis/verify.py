"""``verify``: reachtubes of a model from a ball of initial states, and properties checked over them.

The Python API of ``nodedsl verify``. A :class:`VerifyRequest` names the model, the ball (centre, radius,
norm), the output times, the confidence and the method; :func:`verify` returns a :class:`ReachTube`
(times, centre trajectory, radii, confidence, the Gronwall baseline, the property verdict, stats).
See docs/verification.md for the construction and its guarantees.

Example:
    >>> import nodedsl
    >>> prog = nodedsl.loads("model Decay { state x = 1\\n der(x) = -x }")
    >>> tube = verify(prog, VerifyRequest(model="Decay", radius=0.1, t_end=1, step=0.5, samples=200))
    >>> [round(r, 4) for r in tube.radii.tolist()]    # 1-D: both boundary points are sampled, exact
    [0.1, 0.0607, 0.0368]
    >>> tube.method, tube.confidence, [round(r, 4) for r in tube.baseline.tolist()]   # Gronwall: exact too
    ('gotube', 0.99, [0.1, 0.0607, 0.0368])
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..core.diagnostics import NodeDslError, Span, suggest
from ..core.errors import SolverError

__all__ = ["Counterexample", "PropertyVerdict", "ReachTube", "VerifyRequest", "verify"]


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify. ``center``/``sets``: ``"name=value"`` items (states of the centre; inputs held
    constant); ``samples``: boundary samples (None: from the confidence); ``run``: a training run
    directory whose weights to load; ``method``: ``"gotube"`` (with the Gronwall tube beside it when
    ``baseline``) or ``"lipschitz"`` (the Gronwall tube alone)."""

    model: str
    center: tuple[str, ...] = ()
    radius: float = 0.1
    norm: str = "2"
    t_end: float = 1.0
    step: float = 0.1
    confidence: float = 0.99
    samples: int | None = None
    property: str | None = None
    method: str = "gotube"
    baseline: bool = True
    run: str | None = None
    sets: tuple[str, ...] = ()
    solver: str = "rk4"
    solver_step: float | None = None
    device: str = "cpu"
    seed: int = 0


@dataclass
class Counterexample:
    """A simulated trajectory that violates the property: its initial state, the first time it does."""

    x0: np.ndarray
    t: float
    margin: float
    trajectory: np.ndarray


@dataclass
class PropertyVerdict:
    """``verdict``: ``holds`` (the whole tube satisfies it, with ``confidence``), ``violated`` (a simulated
    trajectory breaks it: ``counterexample``) or ``unknown``. ``bound[k]``: an upper bound of the margin
    (``lhs - rhs`` of ``<=``) over the tube at ``t_k``."""

    text: str
    verdict: str
    confidence: float | None
    bound: np.ndarray
    counterexample: Counterexample | None = None


@dataclass
class ReachTube:
    """The tube ``B(center[k], radii[k])`` at each ``times[k]``; ``confidence`` None: deterministic."""

    model: str
    state_names: tuple[str, ...]
    times: np.ndarray
    center: np.ndarray
    radii: np.ndarray
    confidence: float | None
    method: str
    norm: str
    radius0: float
    baseline: np.ndarray | None = None
    sample_max: np.ndarray | None = None
    lipschitz: np.ndarray | None = None
    property: PropertyVerdict | None = None
    stats: dict = field(default_factory=dict)


def _arg_error(what: str, message: str, *notes: str) -> NodeDslError:
    return NodeDslError.single("bad-argument", message, Span(f"<{what}>", 0, 0), *[n for n in notes if n])


def _assign(items: tuple[str, ...], names: tuple[str, ...], values: torch.Tensor, what: str, kind: str) -> None:
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise _arg_error(what, f"'{item}' must have the form name=value")
        if name not in names:
            raise _arg_error(
                what,
                f"the model has no {kind} '{name}'",
                suggest(name, names) or f"{kind}s: " + (", ".join(names) or "none"),
            )
        try:
            values[names.index(name)] = float(value)
        except ValueError:
            raise _arg_error(what, f"'{value.strip()}' is not a number") from None


def _check(req: VerifyRequest) -> None:
    if req.norm not in ("2", "inf"):
        raise _arg_error("--norm", f"--norm must be 2 or inf, not '{req.norm}'")
    if req.method not in ("gotube", "lipschitz"):
        raise _arg_error("--method", f"--method must be gotube or lipschitz, not '{req.method}'")
    if not (req.radius > 0 and math.isfinite(req.radius)):
        raise _arg_error("--radius", "--radius must be a positive number")
    if not 0 < req.confidence < 1:
        raise _arg_error("--confidence", "--confidence must lie strictly between 0 and 1")
    if req.samples is not None and req.samples < 2:
        raise _arg_error("--samples", "--samples must be at least 2")
    if not (req.step > 0 and req.t_end > 0 and math.isfinite(req.t_end)):
        raise _arg_error("--t-end/--step", "--t-end and --step must be positive")
    if req.t_end / req.step > 100_000:
        raise _arg_error("--step", "more than 100000 output times; use a larger --step")
    if req.solver_step is not None and not req.solver_step > 0:
        raise _arg_error("--solver-step", "--solver-step must be positive")


def _device(name: str) -> torch.device:
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise _arg_error("--device", f"device '{name}' is not available (no CUDA device here)", "use --device cpu")
        return torch.device(name)
    raise _arg_error("--device", f"unknown device '{name}'", "use cpu or cuda")


def _load_model(prog, req: VerifyRequest):
    """The compiled model, with a training run's weights when ``req.run`` is given."""
    model = prog.model(req.model)
    if req.run is None:
        return model
    from ..io.checkpoint import load_weights

    run = Path(req.run)
    config = run / "config.json"
    if config.is_file():
        try:
            trained = json.loads(config.read_text(encoding="utf-8")).get("model")
        except (OSError, ValueError, AttributeError):
            trained = None
        if trained and trained != req.model:
            raise NodeDslError.single(
                "checkpoint-mismatch", f"run '{run}' trained model '{trained}', not '{req.model}'", Span(str(run), 0, 0)
            )
    load_weights(run, model, source_hash=prog.source_hash(req.model))
    return model


def verify(prog, req: VerifyRequest) -> ReachTube:
    """Build the reachtube of ``req.model`` (float64) and check ``req.property`` over it."""
    _check(req)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _verify(prog, req)
    finally:
        torch.set_default_dtype(previous)


def _verify(prog, req: VerifyRequest) -> ReachTube:
    from ..solvers import make_solver
    from .gronwall import gronwall_tube
    from .prop import parse_property

    device = _device(req.device)
    model = _load_model(prog, req).double().to(device)
    names = tuple(model.state_names)
    x0 = model.x0_default.detach().clone().cpu()
    _assign(req.center, names, x0, "--center", "state")
    u = model.u_default.detach().clone().cpu()
    _assign(req.sets, tuple(model.input_names), u, "--set", "input")
    x0, u = x0.to(device), u.to(device)
    field = model.driven(lambda t, batch: u.expand(batch, -1))
    count = round(req.t_end / req.step)
    t = torch.linspace(0.0, count * req.step, count + 1, dtype=torch.float64, device=device)
    h = req.solver_step or req.step / math.ceil(req.step / 0.01 - 1e-9)
    try:
        solver = make_solver(req.solver, step=h)
    except (SolverError, TypeError) as err:
        raise _arg_error(
            "--solver", str(err), "verify integrates with fixed-step solvers (rk4, midpoint, ...)"
        ) from None
    prop = parse_property(req.property, names) if req.property else None
    gen = torch.Generator().manual_seed(req.seed)
    empty = np.empty((0, len(names)))
    tube = ReachTube(model.name, names, t.cpu().numpy(), empty, empty[:, 0], None, req.method, req.norm, req.radius)
    samples = None
    try:
        if req.method == "gotube":
            samples = _statistical(tube, field, x0, t, req, solver, gen, prop)
        if req.method == "lipschitz" or req.baseline:
            radii, bounds, stats = gronwall_tube(field, x0, t, req.radius, req.norm, solver, gen)
            tube.stats["lipschitz"] = stats
            if req.method == "lipschitz":
                from ..solvers import solve

                with torch.no_grad():
                    tube.center = solve(field, x0[None], t, solver=solver).ys[:, 0, :].cpu().numpy()
                tube.radii, tube.lipschitz = radii.cpu().numpy(), bounds.cpu().numpy()
            else:
                tube.baseline = radii.cpu().numpy()
    except (SolverError, FloatingPointError) as err:
        diverged = isinstance(err, FloatingPointError)
        raise NodeDslError.single(
            "diverged" if diverged else "solver-error",
            f"verifying '{model.name}': {err}",
            Span(prog.path, 0, 0),
            "use a smaller radius, horizon or step" if diverged else "use an explicit fixed-step solver (rk4)",
        ) from None
    if prop is not None:
        tube.property = _verdict(prop, tube, req, field, t, solver, gen, samples)
    return tube


def _statistical(tube: ReachTube, field, x0, t, req: VerifyRequest, solver, gen, prop):
    """Fill ``tube`` with the GoTube construction; return (initial states, property margins) of the samples."""
    from .gotube import gotube
    from .sampling import default_samples

    samples = req.samples or default_samples(req.confidence)
    try:
        out = gotube(field, x0, t, req.radius, req.norm, req.confidence, samples, solver, gen, prop)
    except ValueError as err:
        raise _arg_error("--samples", f"{samples} samples: {err}") from None
    tube.center = out.center.cpu().numpy()
    tube.radii = out.radii.cpu().numpy()
    tube.sample_max = out.sample_max.cpu().numpy()
    tube.lipschitz = out.lipschitz.cpu().numpy()
    tube.confidence = req.confidence
    tube.stats["gotube"] = out.stats
    return out.x0s, out.margins


def _verdict(prop, tube: ReachTube, req: VerifyRequest, field, t, solver, gen, samples) -> PropertyVerdict:
    """Violated if a simulated trajectory breaks the property; holds if its bound over the tube is <= 0."""
    from ..solvers import solve
    from .gotube import property_bound

    dev = t.device
    if samples is None:  # the Gronwall tube alone: the centre trajectory is the one simulated
        x0s = torch.as_tensor(tube.center[:1], device=dev)
        margins = prop.margin(torch.as_tensor(tube.center, device=dev))[:, None]
    else:
        x0s, margins = samples
    center = torch.as_tensor(tube.center, device=dev)
    radii = torch.as_tensor(tube.radii, device=dev)
    finite = torch.isfinite(radii)
    bound = torch.full_like(radii, math.inf)
    if bool(finite.any()):
        bound[finite] = property_bound(prop, center[finite], radii[finite], req.norm, req.confidence, gen)
    bound_np = bound.detach().cpu().numpy()
    bad = margins > 0
    if bool(bad.any()):
        k = int(bad.any(dim=1).nonzero()[0])
        i = int(margins[k].argmax())
        with torch.no_grad():
            traj = solve(field, x0s[i][None], t, solver=solver).ys[:, 0, :]
        cex = Counterexample(x0s[i].cpu().numpy(), float(t[k]), float(margins[k, i]), traj.cpu().numpy())
        return PropertyVerdict(prop.text, "violated", None, bound_np, cex)
    if bool((bound <= 0).all()):
        conf = 1.0 - 2.0 * (1.0 - req.confidence) if samples is not None else req.confidence
        return PropertyVerdict(prop.text, "holds", conf, bound_np)
    return PropertyVerdict(prop.text, "unknown", None, bound_np)
