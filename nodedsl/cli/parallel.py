"""Data-parallel ``nodedsl train``: ``--nproc N`` spawns N worker processes here (torch.multiprocessing),
and a process started by ``torchrun`` (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT in its environment)
joins its group. Each rank loads the program itself, trains its share of every minibatch
(:mod:`nodedsl.train.distributed`), and only rank 0 prints and writes files.

Example::

    nodedsl train examples/pendulum.node --nproc 2
    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-endpoint HOST:29500 -m nodedsl.cli.main train FILE
"""

from __future__ import annotations

import socket
from collections.abc import Callable

__all__ = ["group_backend", "run_rank", "spawn_training"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def group_backend(block, overrides: dict[str, str], rank: int):
    """``(device, backend)`` of this rank for the block's ``device`` (after overrides)."""
    from ..frontend.config import apply_overrides, validate_train
    from ..train.distributed import backend_for, resolve_device

    cfg, _ = validate_train(block)
    device = resolve_device(apply_overrides(cfg, overrides).device, rank)
    return device, backend_for(device)


def run_rank(prog, block, overrides, run_dir, resume, rank: int, world: int, init_method: str, progress=None):
    """Join the process group as ``rank`` of ``world``, train, leave the group; rank 0's result."""
    import datetime

    import torch.distributed as dist

    from ..train.distributed import Shard
    from ..train.run import run_training

    device, backend = group_backend(block, overrides, rank)
    if device.type == "cuda":
        import torch

        torch.cuda.set_device(device)
    dist.init_process_group(
        backend, init_method=init_method, rank=rank, world_size=world, timeout=datetime.timedelta(minutes=30)
    )
    try:
        return run_training(
            prog,
            block,
            overrides=overrides,
            run_dir=run_dir,
            resume=resume,
            progress=progress if rank == 0 else None,
            shard=Shard(rank, world, device),
        )
    finally:
        dist.destroy_process_group()


def _worker(rank: int, world: int, port: int, path: str, model, overrides, run_dir, resume, report, progress) -> None:
    """One spawned rank (a top-level function: torch.multiprocessing pickles it by name)."""
    from ..core.diagnostics import NodeDslError
    from .common import fail, load_or_fail

    prog = load_or_fail(path)
    from ..train.run import select_train

    try:
        block = select_train(prog, model)
        result = run_rank(prog, block, overrides, run_dir, resume, rank, world, f"tcp://127.0.0.1:{port}", progress)
    except NodeDslError as err:  # the ranks meet the same error: rank 0 reports it, the others just stop
        if rank == 0:
            fail(err, prog.sources)
        raise SystemExit(1) from None
    if rank == 0:
        report(result, result.extra.get("run_dir", run_dir or ""))


def spawn_training(
    path: str, model, overrides: dict[str, str], run_dir, resume: bool, nproc: int, report: Callable, progress=None
) -> None:
    """Start ``nproc`` ranks on this machine and wait for them; rank 0 calls ``report(result, run_dir)``
    and ``progress`` (top-level functions: they are pickled by name)."""
    import torch.multiprocessing as mp

    port = _free_port()
    mp.spawn(
        _worker, args=(nproc, port, path, model, overrides, run_dir, resume, report, progress), nprocs=nproc, join=True
    )
