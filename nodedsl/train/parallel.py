"""The data-parallel parts of a training step and epoch (a mixin of the trainer in
:mod:`nodedsl.train.loop`; its attributes are set there, ``self.shard`` among them).

Per optimizer step every rank takes its strided share of the same minibatch, computes the weighted loss
(:meth:`~nodedsl.train.batch.BatchSteps.objective` with ``full``) and its gradient, and one
``all_reduce`` sums, in one flat buffer: the gradients, which parameters have one, the weighted data
loss and a failure flag. Every rank then sees the same gradient, clips it alike and takes the same
optimizer step, or, when any rank failed (a non-finite loss, a solver that gave up), every rank rolls
back. At the end of an epoch the constraint statistics are summed (maxima for the violations) and rank
0's random generator state is broadcast, so multipliers, penalty growth and the next epoch's batch
order are identical everywhere.
"""

from __future__ import annotations

import torch

from ..core.diagnostics import Diagnostic, NodeDslError
from .setup import CONFIG_ERRORS

__all__ = ["ParallelSteps", "check_parallel"]


def check_parallel(trainer) -> None:
    """``parallel-unsupported`` for the training setups that have no data-parallel form (yet)."""
    why = None
    if isinstance(trainer.opt, torch.optim.LBFGS):
        why = "the L-BFGS optimizer (its line search re-evaluates the loss; use adam or adamw)"
    elif type(trainer.opt).__name__ in ("GaussNewton", "KFAC"):
        why = "the second-order optimizers (gauss_newton, kfac; use adam or adamw)"
    elif trainer.rem_opt is not None:
        why = "a taylor solver that learns its remainder"
    if why:
        raise NodeDslError(
            [Diagnostic("parallel-unsupported", f"data-parallel training (--nproc, torchrun) does not support {why}")]
        )


class ParallelSteps:
    """:meth:`shard_step` (one step over the ranks) and :meth:`reduce_epoch` (end-of-epoch agreement)."""

    def observed_share(self, idx, full, grid, yhat) -> float:
        """This rank's share of the minibatch's data loss: its windows' share, or with gaps in the data
        (the loss is a mean over observed values) its share of the observed values."""
        observed = getattr(self, "_observed", None)
        w = self.train.w
        if observed is None or observed.shape != yhat.shape or getattr(w, "missing", None) is None:
            return len(idx) / len(full)
        mask = ~w.missing[full]
        h, k = self.horizon(self.train, grid), grid.numel() - 1
        if h < k and not self.train.irregular:  # the same segments as predict's
            mask = torch.cat([mask[:, j : j + h + 1] for j in range(0, k, h)])
        return float(observed.sum()) / max(float(mask.sum()), 1.0)

    def shard_local(self, idx, grid):
        """This rank's share of the step: ``(ok, weighted data loss, (states, tb, ub))``."""
        from ..solvers import SolverError

        local = self.shard.split(idx)
        if not len(local):
            return True, 0.0, (None, None, None)
        try:
            loss, data, states, tb, ub = self.objective(local, grid, full=idx)
            ok = bool(torch.isfinite(loss))
            if ok and self.opt is not None:
                loss.backward()
            return ok, float(data.detach()) * self._share, (states.detach(), tb, ub)
        except SolverError as err:
            if err.option in CONFIG_ERRORS:
                raise
        except AssertionError as err:  # torchdiffeq: "underflow in dt"
            if "underflow" not in str(err):
                raise
        return False, 0.0, (None, None, None)

    def shard_step(self, idx, grid):
        """One optimizer step over all ranks: ``(data loss, states, tb, ub)``, or None to roll back."""
        ok, data, (states, tb, ub) = self.shard_local(idx, grid)
        params = [p for p in self.params if p.requires_grad]
        dev = self.shard.device
        parts = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(dev, torch.float64) for p in params
        ]
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.float64, device=dev)
        tail = torch.tensor([data, 0.0 if ok else 1.0], dtype=torch.float64, device=dev)
        flat = self.shard.sum_(torch.cat([*parts, has, tail]))
        if float(flat[-1]) > 0:  # some rank failed: all roll back
            return None
        offset = 0
        for p, present in zip(params, flat[-2 - len(params) : -2].tolist()):
            n = p.numel()
            p.grad = flat[offset : offset + n].reshape(p.shape).to(p.dtype) if present else None
            offset += n
        if self.opt is not None:
            if not self.grads_finite_and_clip():
                return None
            self.opt.step()
        if states is None:  # no window on this rank (a minibatch smaller than the group)
            states = tb = ub = torch.zeros(0)
        return float(flat[-2]), states, tb, ub

    def reduce_epoch(self) -> None:
        """Constraint statistics summed over the ranks (violations: maximum); rank 0's generator state."""
        sh = self.shard
        if sh is None or sh.world == 1:
            return
        if self.al:
            al = self.al
            names = [c.name for c in al.infos]
            viol = sh.max_(torch.stack([al._viol[k].to(sh.device) for k in names]))
            for i, k in enumerate(names):
                al._viol[k] = viol[i].to(al._viol[k])
        if self.al and self.al.due():  # the period's statistics, once, before the update they feed
            al = self.al
            names = [c.name for c in al.infos]
            rel = sh.max_(torch.tensor([al._rel[k] for k in names], dtype=torch.float64, device=sh.device))
            sums = torch.cat([al._sum[k].reshape(-1).to(sh.device) for k in names])
            counts = torch.cat([al._count[k].reshape(-1).to(sh.device) for k in names])
            packed = sh.sum_(torch.cat([sums, counts]))
            offset, coffset = 0, sums.numel()
            for i, k in enumerate(names):
                n, m = al._sum[k].numel(), al._count[k].numel()
                al._sum[k] = packed[offset : offset + n].reshape(al._sum[k].shape).to(al._sum[k])
                al._count[k] = packed[coffset : coffset + m].reshape(al._count[k].shape).to(al._count[k])
                al._rel[k] = float(rel[i])
                offset, coffset = offset + n, coffset + m
        state = self.gen.get_state()
        self.gen.set_state(sh.broadcast_(state.clone()))
