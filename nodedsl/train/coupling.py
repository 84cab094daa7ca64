"""One-shot least-squares estimate of learned interconnections (``couple [...] C = learn skew``).

In a port-Hamiltonian composite the coupled ports are tied by ``u = C y`` with ``C = skew(c)``, so

    dx/dt = f_0(x, u) + G_c C y_c(x) = f_0(x, u) + A(x, u) c

where ``f_0`` is the uncoupled field (block ``J`` and ``R``, free inputs) and ``y_c = G_c^T grad H`` does
not depend on ``c``: the field is *affine* in the coupling parameters (jointly, through every nesting
level). Given fully observed trajectories, finite differences give targets ``dx/dt`` and ``c`` solves a
linear least-squares problem, as in the compositional port-Hamiltonian networks of Neary & Topcu (2023),
which regress ``(x_{k+1} - x_k) / dt`` on ``grad H``. Here the columns of ``A`` are computed exactly from
the compiled model: ``A[:, j] = field(c = e_j) - field(c = 0)`` (one evaluation per entry of ``c``, with
every other parameter and net at its current value), and the affinity is checked at a random ``c``.

**Identifiability.** ``C`` is in general *not* identifiable: only ``G_c C G_c^T`` acts on the dynamics.
When two coupled outputs are linearly dependent (a spring's end forces ``f_1 = -f_2``), or a coupling
entry pairs two components whose ``G`` columns cancel, some combinations of ``c`` do not change the
field at all. The system is solved by SVD; singular values below ``rcond * s_max`` are dropped, giving
the **minimum-norm** solution (the component of ``c`` in the null space of ``A`` is zero). The estimate
reports the rank, the singular values and a basis of the null space; compare learned and true couplings
through :func:`coupling_matrix` (``G C G^T``), never entry by entry.

Example:
    >>> import nodedsl                                                          # doctest: +SKIP
    >>> est = least_squares_coupling(model, trajectories)                       # doctest: +SKIP
    >>> est.rank, est.n_params, est.values["C"]                                 # doctest: +SKIP
    (3, 6, [...])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import sympy as sp
import torch

from ..core.diagnostics import Diagnostic, NodeDslError
from ..frontend import ast

__all__ = [
    "CouplingEstimate",
    "coupling_matrix",
    "coupling_parameters",
    "difference_targets",
    "least_squares_coupling",
    "prepare_least_squares",
    "weighted_prefixes",
]

Differences = Literal["midpoint", "central", "forward"]


@dataclass
class CouplingEstimate:
    """The result of :func:`least_squares_coupling` (the model already holds ``values``)."""

    names: tuple[str, ...]  # learned coupling parameters, e.g. ("C",) or ("inner.K", "C")
    values: dict[str, list[float]]  # their estimated (minimum-norm) values
    rank: int  # numerical rank of A: the number of identifiable combinations of c
    n_params: int  # entries of c in all
    n_equations: int  # rows of A (points x state components)
    singular_values: list[float]
    null_space: torch.Tensor  # [n_params, n_params - rank]: directions of c the data cannot see
    residual_rms: float  # rms of dx/dt - field(x; c_hat) over the points
    target_rms: float  # rms of the finite-difference targets dx/dt
    fit_rms: float  # rms of the part the coupling explains, A c_hat
    differences: str
    rcond: float
    extra: dict = field(default_factory=dict)

    @property
    def identifiable(self) -> bool:
        """True when every entry of ``c`` is determined by the data (full column rank)."""
        return self.rank == self.n_params

    def summary(self) -> dict:
        """A JSON-able description (written to ``coupling.json`` by training)."""
        return {
            "method": "least_squares",
            "differences": self.differences,
            "parameters": list(self.names),
            "values": self.values,
            "rank": self.rank,
            "n_params": self.n_params,
            "null_space_dim": self.n_params - self.rank,
            "n_equations": self.n_equations,
            "singular_values": self.singular_values,
            "rcond": self.rcond,
            "residual_rms": self.residual_rms,
            "target_rms": self.target_rms,
            "fit_rms": self.fit_rms,
            "null_space": self.null_space.T.tolist(),
            **self.extra,
        }


def coupling_parameters(model) -> list[tuple[str, str, int]]:
    """``(name, key in model.learned, size)`` of every ``learn skew`` coupling parameter, in model order."""
    out = []
    for p in model.system.params:
        if p.learn == "skew":
            key = p.name.replace(".", "__")
            out.append((p.name, key, int(model.learned[key].numel())))
    return out


def _states(model, traj) -> torch.Tensor:
    """``[N, T, n]`` states from the observed outputs; every state must be observed."""
    from .rollout import initial_states, observation_map

    obs = observation_map(model)
    seen = {i for i in obs if i is not None}
    if len(seen) != len(model.state_names):
        missing = [s for i, s in enumerate(model.state_names) if i not in seen]
        raise NodeDslError(
            [
                Diagnostic(
                    "bad-value",
                    f"coupling = least_squares needs every state of '{model.name}' observed; the data "
                    f"lack {', '.join(missing[:5])}",
                    _no_span(),
                    ("use coupling = gradient",),
                )
            ]
        )
    N, T, _ = traj.y.shape
    dtype = model.x0_default.dtype
    y = traj.y.to(dtype).reshape(N * T, -1)
    return initial_states(model, y, obs).reshape(N, T, -1)


def _no_span():
    from ..core.diagnostics import Span

    return Span("<training data>", 0, 0)


def difference_targets(model, traj, differences: Differences = "midpoint"):
    """Points ``(t [M], x [M, n], u [M, m])`` and finite-difference targets ``dxdt [M, n]`` of ``traj``.

    * ``midpoint``: ``(x_{k+1} - x_k) / (t_{k+1} - t_k)`` at ``(x_k + x_{k+1}) / 2`` (second order; one
      point per transition, so it also works on pairs of samples);
    * ``central``: ``(x_{k+1} - x_{k-1}) / (t_{k+1} - t_{k-1})`` at ``x_k`` (second order on a uniform grid);
    * ``forward``: ``(x_{k+1} - x_k) / (t_{k+1} - t_k)`` at ``x_k`` (first order; the reference code's choice).
    """
    if differences not in ("midpoint", "central", "forward"):
        raise ValueError(f"differences must be midpoint, central or forward, got {differences!r}")
    x = _states(model, traj)
    dtype = x.dtype
    t = traj.t.to(dtype)
    u = traj.u.to(dtype)
    ts, xs, us, ds = [], [], [], []
    for i in range(traj.n_traj):
        L = int(traj.lengths[i])
        ti, xi, ui = t[i, :L], x[i, :L], u[i, :L]
        if differences == "central":
            if L < 3:
                continue
            dt = (ti[2:] - ti[:-2])[:, None]
            ts.append(ti[1:-1])
            xs.append(xi[1:-1])
            us.append(ui[1:-1])
            ds.append((xi[2:] - xi[:-2]) / dt)
            continue
        if L < 2:
            continue
        dt = (ti[1:] - ti[:-1])[:, None]
        d = (xi[1:] - xi[:-1]) / dt
        if differences == "midpoint":
            ts.append((ti[1:] + ti[:-1]) / 2)
            xs.append((xi[1:] + xi[:-1]) / 2)
            us.append((ui[1:] + ui[:-1]) / 2)
        else:
            ts.append(ti[:-1])
            xs.append(xi[:-1])
            us.append(ui[:-1])
        ds.append(d)
    if not ts:
        raise NodeDslError(
            [
                Diagnostic(
                    "data-error",
                    f"coupling = least_squares: no trajectory has enough samples for {differences} differences",
                    _no_span(),
                )
            ]
        )
    return torch.cat(ts), torch.cat(xs), torch.cat(us), torch.cat(ds)


def _field(model, t, x, u, chunk: int = 8192) -> torch.Tensor:
    with torch.no_grad():
        parts = [model.field(t[i : i + chunk], x[i : i + chunk], u[i : i + chunk]) for i in range(0, x.shape[0], chunk)]
    return torch.cat(parts)


def _check_affine(model, t, x, u, f0: torch.Tensor, A: torch.Tensor, set_c) -> None:
    """``ValueError`` unless the field is affine in the couplings ``c`` at a random ``c`` (a guard, not a
    proof): ``f(c) = f(0) + A c`` up to round-off on the first 256 samples."""
    p = A.shape[1]
    g = torch.Generator().manual_seed(0)
    probe = torch.randn(p, generator=g, dtype=torch.float64)
    rows = slice(0, min(x.shape[0], 256))
    set_c(probe)
    got = _field(model, t[rows], x[rows], u[rows]).to(torch.float64)
    want = f0[rows].to(torch.float64) + (A.reshape(x.shape[0], -1, p)[rows] @ probe)
    scale = float(want.abs().max().clamp_min(1.0))
    if not float((got - want).abs().max()) <= float(torch.finfo(x.dtype).eps) ** 0.5 * scale:
        raise ValueError(
            f"the field of '{model.name}' is not affine in its coupling parameters "
            "(least squares does not apply; use coupling = gradient)"
        )


def least_squares_coupling(
    model, traj, *, differences: Differences = "midpoint", rcond: float | None = None, assign: bool = True
) -> CouplingEstimate:
    """Estimate every ``learn skew`` coupling of ``model`` from fully observed trajectories in one shot.

    ``traj``: a :class:`~nodedsl.data.loading.Trajectories` matched to the model (outputs include every state).
    Other learned parameters and nets are held at their current values. ``rcond``: relative cut-off for
    small singular values (default ``1000 * eps`` of the model's dtype: ``A`` itself is exact up to
    round-off, so a direction below it is unseen by the data). The minimum-norm solution is written into
    the model's parameters (unless ``assign=False``) and returned with the rank, singular values and null
    space. Raises ``ValueError`` when the model has no learned coupling or its field is not affine in it.
    """
    params = coupling_parameters(model)
    if not params:
        raise ValueError(f"model '{model.name}' has no learned coupling (couple [...] C = learn skew)")
    t, x, u, dxdt = difference_targets(model, traj, differences)
    dtype = x.dtype
    rcond = float(rcond) if rcond is not None else 1e3 * float(torch.finfo(dtype).eps)
    raws = [model.learned[key] for _, key, _ in params]
    saved = [r.detach().clone() for r in raws]
    sizes = [s for _, _, s in params]
    p = sum(sizes)

    def set_c(c: torch.Tensor) -> None:
        with torch.no_grad():
            offset = 0
            for r, s in zip(raws, sizes):
                r.copy_(c[offset : offset + s].to(r.dtype))
                offset += s

    try:
        zero = torch.zeros(p, dtype=dtype)
        set_c(zero)
        f0 = _field(model, t, x, u)
        cols = []
        for j in range(p):
            e = zero.clone()
            e[j] = 1.0
            set_c(e)
            cols.append((_field(model, t, x, u) - f0).reshape(-1))
        A = torch.stack(cols, dim=1).to(torch.float64)  # [M * n, p]
        _check_affine(model, t, x, u, f0, A, set_c)
    finally:
        set_c(torch.cat(saved).to(torch.float64) if saved else torch.zeros(0))
    b = (dxdt - f0).reshape(-1).to(torch.float64)
    finite = torch.isfinite(b) & torch.isfinite(A).all(dim=1)
    A, b = A[finite], b[finite]
    U, S, Vh = torch.linalg.svd(A, full_matrices=False)
    cut = rcond * float(S[0]) if S.numel() and float(S[0]) > 0 else 0.0
    rank = int((cut < S).sum()) if cut > 0 else 0
    coef = (U[:, :rank].T @ b) / S[:rank]
    c = Vh[:rank].T @ coef  # minimum-norm solution
    null = Vh[rank:].T.clone()
    resid = b - A @ c
    M = max(int(b.numel()), 1)
    values, offset = {}, 0
    for name, _, s in params:
        values[name] = c[offset : offset + s].tolist()
        offset += s
    if assign:
        set_c(c)
    return CouplingEstimate(
        names=tuple(n for n, _, _ in params),
        values=values,
        rank=rank,
        n_params=p,
        n_equations=int(b.numel()),
        singular_values=S.tolist(),
        null_space=null,
        residual_rms=float(resid.pow(2).sum().div(M).sqrt()),
        target_rms=float(dxdt.to(torch.float64).pow(2).mean().sqrt()),
        fit_rms=float((A @ c).pow(2).sum().div(M).sqrt()),
        differences=differences,
        rcond=rcond,
    )


def coupling_matrix(system, values: dict[str, Sequence[float]] | None = None) -> sp.Matrix:
    """The total interconnection term ``sum G_c C G_c^T`` of a pH composite (every nesting level) as a
    SymPy matrix over its states, with learned couplings set to ``values`` (name -> list of the skew
    vector's entries; a learned coupling not given keeps its symbols). This is the identifiable part of
    ``C``: compare estimates through it.

    Computed as ``J - blockdiag(own J of every instance)`` from ``system.ph.assemble()``.
    """
    if system.ph is None:
        raise TypeError(f"model '{system.name}' is not port-Hamiltonian")
    term = system.ph.assemble()[0] - _block_j(system.ph)
    given = {}
    for p in system.params:
        if p.learn == "skew" and values is not None and p.name in values:
            vals = values[p.name]
            vals = [vals] if isinstance(vals, (int, float)) else list(vals)
            given.update({s: sp.Float(float(v)) for s, v in zip(p.symbols, vals)})
    return term.xreplace(given) if given else term


def _block_j(ph) -> sp.Matrix:
    n, k = len(ph.x), ph.own_J.rows
    out = sp.zeros(n, n)
    out[:k, :k] = ph.own_J
    offset = k
    for sub in ph.subs:
        m = len(sub.x)
        out[offset : offset + m, offset : offset + m] = _block_j(sub)
        offset += m
    return out


# ------------------------------------------------------------------ training integration
def weighted_prefixes(info, prefix: str = "") -> list[str]:
    """Dotted prefixes (``"left."``) of the sub-models whose values a ``weights "run"`` clause loads."""
    out = []
    for decl in info.model.decls(ast.Sub):
        path = prefix + decl.name + "."
        if decl.weights is not None:
            out.append(path)
        out += weighted_prefixes(info.subs[decl.name], path)
    return out


def prepare_least_squares(program, name: str, model, train_traj, cfg):
    """What ``coupling = least_squares`` does before training (called by ``run_training``).

    Returns ``(estimate or None, config for fit, frozen parameters)``:

    * no learned coupling in the model: ``(None, cfg, [])`` (ordinary training);
    * every other learned parameter and net belongs to a sub-model loaded by a ``weights`` clause (or
      there is none): ``C`` is estimated in one shot and **nothing is trained by gradient**: all parameters
      are frozen and ``fit`` runs a single evaluation epoch over whole windows (losses, checkpoint,
      metrics as usual);
    * otherwise the estimate is a warm start for ordinary gradient training of everything, ``C`` included.
    """
    params = coupling_parameters(model)
    if not params:
        return None, cfg, []
    coupling_keys = {"learned." + key for _, key, _ in params}
    loaded = tuple("learned." + p.replace(".", "__") for p in weighted_prefixes(program.info(name))) + tuple(
        "nets." + p.replace(".", "__") for p in weighted_prefixes(program.info(name))
    )
    others = [
        k
        for k, v in model.named_parameters()
        if v.requires_grad and k not in coupling_keys and not k.startswith(loaded)
    ]
    from dataclasses import replace

    from ..frontend.config import key_span

    try:
        estimate = least_squares_coupling(model, train_traj)
    except NodeDslError as err:  # located at the train block's coupling key
        raise NodeDslError(
            [replace(d, span=key_span(cfg, "coupling")) if d.span.line == 0 else d for d in err.diagnostics]
        ) from None
    except ValueError as err:
        raise NodeDslError(
            [Diagnostic("bad-value", f"coupling = least_squares: {err}", key_span(cfg, "coupling"))]
        ) from None
    estimate.extra["gradient_training"] = bool(others)
    if others:
        return estimate, cfg, []
    from ..frontend.config import Horizon

    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    return estimate, cfg.model_copy(update={"epochs": 1, "horizon": Horizon(kind="full")}), frozen
