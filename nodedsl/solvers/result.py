"""What :func:`~nodedsl.solvers.solve` returns: trajectories plus counters.

Example:
    >>> import torch
    >>> r = SolveResult(ys=torch.zeros(3, 1, 2), ts=torch.arange(3.0), stats=SolveStats(steps=4, nfe=16))
    >>> r.final.shape, r.stats.nfe
    (torch.Size([1, 2]), 16)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(slots=True)
class SolveStats:
    """Work counters of one solve (forward pass only).

    ``steps``: accepted steps; ``nfe``: vector-field evaluations (calls of the
    field, including those traced by forward-mode AD for Taylor methods);
    ``rejected``: rejected adaptive steps; ``njev``: Jacobian evaluations and
    ``newton_iters``: Newton iterations and ``nlu``: LU factorizations (implicit methods only);
    ``linear_solver``: ``"dense"`` or ``"sparse"``, the LU path ``radau``/``rodas4`` took.
    """

    steps: int = 0
    nfe: int = 0
    rejected: int = 0
    njev: int = 0
    newton_iters: int = 0
    nlu: int = 0
    linear_solver: str = ""

    def add(self, other: SolveStats) -> None:
        """Accumulate ``other`` into ``self`` (used to merge checkpoint segments)."""
        self.steps += other.steps
        self.nfe += other.nfe
        self.rejected += other.rejected
        self.njev += other.njev
        self.newton_iters += other.newton_iters
        self.nlu += other.nlu
        self.linear_solver = self.linear_solver or other.linear_solver


@dataclass(slots=True)
class SolveResult:
    """``ys[i]`` is the state at ``ts[i]``: shape ``[len(ts), batch, n]``, ``ys[0] == x0``."""

    ys: torch.Tensor
    ts: torch.Tensor
    stats: SolveStats = field(default_factory=SolveStats)
    solver: str = ""
    events: list = field(default_factory=list)  # EventRecord of each event that fired (models with when blocks)

    @property
    def final(self) -> torch.Tensor:
        """The state at the last output time, ``[batch, n]``."""
        return self.ys[-1]
