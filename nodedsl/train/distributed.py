"""Devices and data-parallel training on torch.distributed (docs/scaling.md).

:func:`resolve_device` turns the ``device`` key (``cpu``, ``cuda``, ``cuda:N``, ``auto``) into a
``torch.device``, or a ``device-unavailable`` diagnostic. :class:`Shard` is one process's place in a
data-parallel group: every rank computes the same seeded minibatch order, takes the strided slice
``idx[rank::world]`` of each minibatch (the partition of ``torch.utils.data.DistributedSampler``), and
the gradients are summed with ``torch.distributed.all_reduce``. Each rank's loss is weighted by its
share of the minibatch, so the summed gradient is the gradient of the single-process minibatch loss.
Nothing here is global: the process group's rank and size live in the ``Shard`` object the trainer
gets.

Example:
    >>> import torch
    >>> Shard(rank=1, world=2, device=torch.device("cpu")).split(torch.arange(5)).tolist()
    [1, 3]
    >>> resolve_device("cpu"), resolve_device("auto").type in ("cpu", "cuda")
    (device(type='cpu'), True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..core.diagnostics import Diagnostic, NodeDslError, Span

__all__ = ["Shard", "backend_for", "env_rank", "resolve_device"]


def _unavailable(message: str, notes: tuple[str, ...] = ()) -> NodeDslError:
    return NodeDslError([Diagnostic("device-unavailable", message, Span("<device>", 0, 0), notes)])


def resolve_device(spec: str, rank: int = 0) -> torch.device:
    """The device of a ``device`` value; ``auto`` is CUDA when available, else the CPU.

    Under data parallelism on CUDA, rank ``r`` of a plain ``cuda`` uses ``cuda:(r mod count)`` (one
    GPU per process, as torchrun's ``LOCAL_RANK`` convention)."""
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise _unavailable(
            f"device '{spec}' requested but CUDA is not available here",
            (f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'no'})", "use device = cpu or auto"),
        )
    count = torch.cuda.device_count()
    if spec in ("cuda", "auto"):
        local = int(os.environ.get("LOCAL_RANK", rank))
        return torch.device("cuda", local % count)
    index = int(spec.split(":")[1])
    if index >= count:
        raise _unavailable(f"device '{spec}' requested but only {count} CUDA device(s) exist")
    return torch.device("cuda", index)


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU tensors."""
    return "nccl" if device.type == "cuda" else "gloo"


def env_rank() -> tuple[int, int] | None:
    """``(rank, world_size)`` when started by torchrun (or any launcher setting RANK and WORLD_SIZE)."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return None


@dataclass
class Shard:
    """One rank of a data-parallel group (a process group must be initialized when ``world > 1``)."""

    rank: int
    world: int
    device: torch.device

    @property
    def writes(self) -> bool:
        """Only rank 0 writes files (checkpoints, metrics, logs)."""
        return self.rank == 0

    def split(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's windows of a minibatch: the strided slice (DistributedSampler's partition)."""
        return idx[self.rank :: self.world]

    def active(self, size: int) -> int:
        """How many ranks get at least one window of a minibatch of ``size``."""
        return min(self.world, size)

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place sum over the ranks."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def max_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place maximum over the ranks."""
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t

    def broadcast_(self, t: torch.Tensor) -> torch.Tensor:
        """In-place copy of rank 0's tensor (gloo/NCCL need it on the group's device)."""
        if self.world > 1:
            import torch.distributed as dist

            buf = t.to(self.device) if t.device != self.device else t
            dist.broadcast(buf, src=0)
            if buf is not t:
                t.copy_(buf)
        return t
