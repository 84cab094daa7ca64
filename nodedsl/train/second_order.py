"""Second-order optimizers for ``train`` blocks: ``gauss_newton`` (Levenberg-Marquardt) and ``kfac``.

**gauss_newton(damping, lr, max_params)** minimizes the sum of squared residuals ``r(p)`` of a batch
(the data errors, and the window-continuity errors when initial states are learned) by
Levenberg-Marquardt: ``(J^T J + lambda diag(J^T J)) delta = -J^T r`` with ``J = dr/dp`` from
backward passes (:func:`jacobian`: one per parameter, through a double backward). A step that does
not lower ``|r|^2`` is retried with ``lambda`` x 4 (up to 8 times); an accepted one divides ``lambda``
by 3. ``J`` is ``rows x parameters``, so it is for
parameter estimation with few parameters: above ``max_params`` it is an error.

**kfac(lr, damping, decay, momentum, update_every, other_lr, kl_clip)** preconditions the gradients of
the nets' ``nn.Linear`` layers by Kronecker-factored curvature (Martens & Grosse 2015): per layer
``A = E[a a^T]`` of its inputs (with a 1 for the bias) and ``G = E[g g^T]`` of the gradients at its
outputs, collected by hooks over every call of the net in the solve (each stage of each step), kept
as running averages (``decay``); the update is ``(G + pi sqrt(d) I)^-1 grad (A + sqrt(d)/pi I)^-1``
(factored Tikhonov damping with Martens' pi), scaled so that the quadratic model's change stays under
``kl_clip``, with momentum. Parameters outside nets (physical constants, initial states) take Adam
steps at ``other_lr``.

Why our own KFAC (checked 2026-12): ``kfac-pytorch`` is not installable here (no distribution on the
package index the project uses); ``backpack-for-pytorch`` 1.7.1 computes KFAC factors by propagating
the loss Hessian's square root backwards through a chain of *extended modules* ending in a loss module,
but here the net's outputs reach the loss through the ODE solver's arithmetic, not a module chain;
ASDL (``asdfghjkl`` 0.1a5) is an alpha that drives the model's own ``forward`` and loss function. A
hook-based KFAC for ``nn.Linear`` is about a hundred lines and sees every stage's call of the net.

Example:
    >>> import torch
    >>> p = torch.nn.Parameter(torch.tensor([0.5, 0.5]))
    >>> t = torch.linspace(0, 1, 5)
    >>> opt = GaussNewton([p], damping=1e-3)
    >>> for _ in range(10):
    ...     _ = opt.step(lambda: p[0] * torch.exp(p[1] * t) - 2 * torch.exp(-t))
    >>> [round(v, 4) for v in p.tolist()]
    [2.0, -1.0]
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn


class OptimizerError(ValueError):
    """A second-order optimizer that cannot run on this model (too many parameters, no nets, ...)."""


def jacobian(r: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """``[len(r), n_params]``: ``dr/dp`` by one parameter-sized pass each through a double backward.

    ``g(u) = J^T u`` is one reverse pass with ``create_graph``; it is linear in ``u``, so the
    gradient of its ``k``-th entry with respect to ``u`` is column ``k`` of ``J``. This costs one
    backward per parameter, however many residuals (a batch has thousands); vmapped reverse mode
    (``is_grads_batched``) over the rows was 20x slower here.

    Example:
        >>> p = torch.tensor([1.0, 2.0], requires_grad=True)
        >>> jacobian(torch.stack([p[0] * p[1], p[1] ** 2]), [p]).tolist()
        [[2.0, 1.0], [0.0, 4.0]]
    """
    u = torch.zeros_like(r, requires_grad=True)
    grads = torch.autograd.grad(r, params, u, create_graph=True, allow_unused=True)
    flat = torch.cat([r.new_zeros(p.numel()) if g is None else g.reshape(-1) for p, g in zip(params, grads)])
    cols = []
    for k in range(len(flat)):
        col = None
        if flat[k].requires_grad:
            (col,) = torch.autograd.grad(flat[k], u, retain_graph=True, allow_unused=True)
        cols.append(torch.zeros_like(r) if col is None else col)
    return torch.stack(cols, dim=1)


class GaussNewton(torch.optim.Optimizer):
    """Levenberg-Marquardt on a residual vector; ``step(residuals)`` with ``residuals() -> r`` (1-D)."""

    def __init__(self, params, lr: float = 1.0, damping: float = 1e-3, max_params: int = 500, max_tries: int = 8):
        super().__init__(params, {"lr": lr})
        n = sum(p.numel() for g in self.param_groups for p in g["params"])
        if n > max_params:
            raise OptimizerError(
                f"gauss_newton solves a {n} x {n} system per step but max_params = {max_params}; "
                "use kfac, lbfgs or adam for models with nets, or raise max_params"
            )
        self.damping, self.max_tries = damping, max_tries

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def step(self, residuals: Callable[[], torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """One damped Gauss-Newton step; returns ``|r|^2`` before it (params unchanged if none helped)."""
        params = self._params()
        r = residuals()
        loss = r.detach().pow(2).sum()
        if not bool(torch.isfinite(loss)):
            return loss
        J = jacobian(r.reshape(-1), params)
        rr = r.detach().reshape(-1)
        g, H = J.T @ rr, J.T @ J
        scale = H.diagonal().clamp_min(1e-12 * float(H.diagonal().max().clamp_min(1e-300)))
        start = [p.detach().clone() for p in params]
        lr = self.param_groups[0]["lr"]
        for _ in range(self.max_tries):
            try:
                delta = torch.linalg.solve(H + self.damping * torch.diag(scale), -g)
            except RuntimeError:
                delta = torch.linalg.lstsq(H + self.damping * torch.diag(scale), -g[:, None]).solution[:, 0]
            self._set(params, start, lr * delta)
            with torch.no_grad():
                trial = residuals().pow(2).sum()
            if bool(torch.isfinite(trial)) and trial < loss:
                self.damping = max(self.damping / 3, 1e-12)
                return loss
            self.damping = min(self.damping * 4, 1e12)
        self._set(params, start, None)
        return loss

    @staticmethod
    def _set(params, start, delta) -> None:
        with torch.no_grad():
            k = 0
            for p, p0 in zip(params, start):
                p.copy_(p0 if delta is None else p0 + delta[k : k + p.numel()].reshape(p.shape).to(p.dtype))
                k += p.numel()


class KFAC(torch.optim.Optimizer):
    """Kronecker-factored preconditioning of ``nn.Linear`` layers (hooks), Adam for other parameters.

    Use ``with opt.capture(): loss = ...; loss.backward()`` then ``opt.step()``: factors are collected
    only inside ``capture`` (validation passes and other computations do not touch them)."""

    def __init__(
        self, params, modules: list[nn.Linear], lr: float = 0.05, damping: float = 1e-3, decay: float = 0.95,
        momentum: float = 0.9, update_every: int = 10, other_lr: float = 1e-2, kl_clip: float = 1e-2,
    ) -> None:  # fmt: skip
        params = list(params)
        ids = {id(p) for p in params}
        self.layers = [m for m in modules if id(m.weight) in ids]
        if not self.layers:
            raise OptimizerError(
                "kfac preconditions the linear layers of nets, and this model has no trained net; "
                "use gauss_newton, lbfgs or adam"
            )
        in_layers = {id(q) for m in self.layers for q in (m.weight, m.bias) if q is not None}
        super().__init__([p for p in params if id(p) in in_layers], {"lr": lr})
        rest = [p for p in params if id(p) not in in_layers]
        self.other = torch.optim.Adam(rest, lr=other_lr) if rest else None
        self.damping, self.decay, self.momentum = damping, decay, momentum
        self.update_every, self.kl_clip = update_every, kl_clip
        self._sums: dict[nn.Linear, list] = {}
        self._factors: dict[nn.Linear, list] = {}
        self._inverses: dict[nn.Linear, tuple] = {}
        self._active = False
        self.steps = 0
        self._handles = [m.register_forward_hook(self._forward) for m in self.layers]

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Collect the layers' inputs and output gradients of the forward and backward passes inside."""
        self._active, self._sums = True, {}
        try:
            yield
        finally:
            self._active = False

    def _forward(self, module: nn.Linear, inputs, output: torch.Tensor) -> None:
        if not self._active or not output.requires_grad:
            return
        a = inputs[0].detach().reshape(-1, module.in_features)
        if module.bias is not None:
            a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
        rows = a.shape[0]
        sums = self._sums.setdefault(module, [0.0, 0.0, 0])
        sums[0] = sums[0] + a.T @ a / rows
        sums[2] += 1

        def grad_hook(g: torch.Tensor) -> None:
            g = g.detach().reshape(-1, module.out_features) * rows  # per-row gradients of a mean loss
            sums[1] = sums[1] + g.T @ g / rows

        output.register_hook(grad_hook)

    def _update_factors(self) -> None:
        for m, (a, g, calls) in self._sums.items():
            if not calls or isinstance(g, float):
                continue
            new = [a / calls, g / calls]
            old = self._factors.get(m)
            self._factors[m] = new if old is None else [self.decay * o + (1 - self.decay) * n for o, n in zip(old, new)]

    def _invert(self) -> None:
        for m, (A, G) in self._factors.items():
            pi = math.sqrt(max(float(A.trace()) / A.shape[0], 1e-12) / max(float(G.trace()) / G.shape[0], 1e-12))
            d = math.sqrt(self.damping)
            eye_a, eye_g = torch.eye(A.shape[0], dtype=A.dtype), torch.eye(G.shape[0], dtype=G.dtype)
            self._inverses[m] = (torch.linalg.inv(A + (d / pi) * eye_a), torch.linalg.inv(G + (d * pi) * eye_g))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Precondition the layers' gradients, clip the step, apply it with momentum; Adam for the rest."""
        self._update_factors()
        if self.steps % self.update_every == 0 or len(self._inverses) < len(self._factors):
            self._invert()
        self.steps += 1
        lr = self.param_groups[0]["lr"]
        updates, quad = [], 0.0
        for m in self.layers:
            if m.weight.grad is None or m not in self._inverses:
                continue
            grad = m.weight.grad if m.bias is None else torch.cat([m.weight.grad, m.bias.grad[:, None]], dim=1)
            a_inv, g_inv = self._inverses[m]
            nat = g_inv @ grad @ a_inv
            quad += float((nat * grad).sum())
            updates.append((m, nat))
        nu = min(1.0, math.sqrt(self.kl_clip / (lr * lr * quad))) if quad > 0 else 1.0
        for m, nat in updates:
            w = nat[:, : m.in_features]
            parts = [(m.weight, w)] + ([(m.bias, nat[:, -1])] if m.bias is not None else [])
            for p, u in parts:
                buf = self.state[p].get("momentum")
                buf = nu * u if buf is None else buf.mul_(self.momentum).add_(u, alpha=nu)
                self.state[p]["momentum"] = buf
                p.add_(buf, alpha=-lr)
        if self.other is not None:
            self.other.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        if self.other is not None:
            self.other.zero_grad(set_to_none)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The ``nn.Linear`` layers of a model's nets (what ``kfac`` preconditions)."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def check_trainer(cfg, al, encoder) -> None:
    """``OptimizerError`` for a ``gauss_newton`` run whose objective is not a sum of squares."""
    if cfg.optimizer.kind != "gauss_newton":
        return
    why = (
        "loss = mae"
        if cfg.loss == "mae"
        else "an augmented-Lagrangian constraint penalty (set constraints = none)"
        if al is not None
        else "a window_init encoder"
        if encoder is not None
        else None
    )
    if why is not None:
        raise OptimizerError(
            f"gauss_newton minimizes a sum of squared residuals, which {why} is not; use lbfgs or adam"
        )


def _residuals(trainer, idx, grid, holder: dict) -> torch.Tensor:
    """The batch's residual vector: ``|r|^2`` is the data MSE plus the continuity MSE (learned x0)."""
    shoot = trainer.train
    states, yhat, tb, ub = trainer.predict(shoot, idx, grid)
    err = yhat - trainer._target
    observed = getattr(trainer, "_observed", None)  # gaps in the data carry no residual (as in data_loss)
    if observed is not None and observed.shape == err.shape:
        err = err[observed.bool()]
    err = err.reshape(-1)
    parts = [err / math.sqrt(max(err.numel(), 1))]
    nxt = shoot.w.next[idx]
    has = nxt >= 0
    if shoot.learned and not trainer.held() and bool(has.any()):
        gap = (states[has, -1] - shoot.x0[nxt[has]]).reshape(-1)
        parts.append(gap / math.sqrt(gap.numel()))
    if "data" not in holder:
        holder.update(data=err.detach().pow(2).mean(), states=states.detach(), tb=tb, ub=ub)
    return torch.cat(parts)


def second_order_step(trainer, idx, grid):
    """One ``gauss_newton`` or ``kfac`` step of the trainer: ``(data, states, tb, ub)``, None if not finite."""
    opt = trainer.opt
    if isinstance(opt, GaussNewton):
        holder: dict = {}
        loss = opt.step(lambda: _residuals(trainer, idx, grid, holder))
        if not bool(torch.isfinite(loss)):
            return None
        return holder["data"], holder["states"], holder["tb"], holder["ub"]
    opt.zero_grad(set_to_none=True)
    with opt.capture():
        loss, data, states, tb, ub = trainer.objective(idx, grid)
        if not bool(torch.isfinite(loss)):
            return None
        loss.backward()
    if not trainer.grads_finite_and_clip():
        return None
    opt.step()
    return data, states, tb, ub
