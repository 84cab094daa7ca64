"""Training killed with SIGKILL at random moments (some inside checkpoint writes) and resumed, 20 times.

Each attempt is a forked child (torch imported and the model checked once, in the parent) running ``run_training`` on one
run directory; the parent kills it after a random delay, or the child kills itself halfway through
writing a checkpoint. After every kill, every file of the run directory must come from one run (same
``run_id``), and the checkpoint must load. The last attempt finishes, and its trained parameters must
equal those of an uninterrupted run exactly.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from nodedsl.io.checkpoint import load_checkpoint
from nodedsl.train.run import run_training

TINY = """
model Decay {
    state x = 1.0
    param k = 0.5 learn positive
    der(x) = -k * x
}

model Truth {
    state x = 1.0
    param k = 1.3
    der(x) = -k * x
}

dataset d {
    model = Truth
    trajectories = 4
    time = span(0, 1, step = 0.1)
    initial = { x = uniform(0.5, 1.5) }
    seed = 1
}

train Decay {
    data = d
    solver = rk4(step = 0.1)
    window = 5
    epochs = 100
    checkpoint_every = 1
    optimizer = adam(lr = 5e-2)
    seed = 0
}
"""

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _train(prog, run: str, resume: bool, die_in_write: bool) -> None:
    """The child: train (resuming when asked); optionally SIGKILL itself inside a checkpoint write."""
    if die_in_write:
        import nodedsl.io.checkpoint as ck

        real = ck.atomic_write
        countdown = [random.Random(os.getpid()).randint(1, 4)]

        def dying(p, write, *, binary=False):
            countdown[0] -= 1
            if countdown[0] > 0:
                return real(p, write, binary=binary)

            def half(fh):
                write(fh)
                fh.flush()
                fh.truncate(max(1, fh.tell() // 2))
                os.kill(os.getpid(), signal.SIGKILL)

            return real(p, half, binary=binary)

        ck.atomic_write = dying
    from nodedsl.train.run import run_training

    run_training(prog, prog.module.trains[0], run_dir=run, resume=resume)


def _attempt(ctx, prog, run: Path, delay: float | None, die_in_write: bool = False) -> int:
    resume = (run / "checkpoint.pt").is_file()
    child = ctx.Process(target=_train, args=(prog, str(run), resume, die_in_write))
    child.start()
    if delay is not None:
        child.join(delay)
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
    child.join()
    return child.exitcode


def _run_ids(run: Path) -> set[str]:
    """The run id of every run file present (each file must name one)."""
    ids = set()
    for name in ("config.json", "metrics.json"):
        if (run / name).is_file():
            ids.add(json.loads((run / name).read_text())["run_id"])
    for name in ("checkpoint.pt", "model.pt"):
        if (run / name).is_file():
            ids.add(load_checkpoint(run / name)["run_id"])  # also: the file loads (never torn)
    if (run / "predictions.npz").is_file():
        with np.load(run / "predictions.npz") as z:
            ids.add(str(z["run_id"]))
    return ids


def test_sigkill_twenty_times_then_resume_equals_uninterrupted(tmp_path):
    """20 SIGKILLs (at random delays, or inside a checkpoint write), then a resume that finishes."""
    torch.set_num_threads(1)
    path = tmp_path / "tiny.node"
    path.write_text(TINY)
    ctx = multiprocessing.get_context("fork")
    import nodedsl.plots.training

    prog = nodedsl.load(path)  # parsed and checked once; each forked child inherits it
    ref = tmp_path / "ref"
    t0 = time.monotonic()
    run_training(prog, prog.module.trains[0], run_dir=ref)  # in this process: the children inherit warm caches
    duration = time.monotonic() - t0
    run = tmp_path / "run"
    rng = random.Random(17)
    kills = attempts = 0
    while kills < 20 and attempts < 40:
        in_write = attempts % 4 == 3  # every fourth attempt dies inside a checkpoint write
        delay = None if in_write else rng.uniform(0.01, 0.12) * duration
        kills += _attempt(ctx, prog, run, delay, in_write) == -signal.SIGKILL
        attempts += 1
        ids = _run_ids(run)
        assert len(ids) <= 1, f"attempt {attempts}: run files from several runs: {ids}"
    assert kills == 20
    assert _attempt(ctx, prog, run, None) == 0
    assert len(_run_ids(run)) == 1
    assert not list(run.glob("*.tmp"))  # temporaries of killed writes are removed by the next run
    mine = load_checkpoint(run / "model.pt")["model_state"]
    theirs = load_checkpoint(ref / "model.pt")["model_state"]
    assert mine.keys() == theirs.keys()
    for k in mine:
        assert torch.equal(mine[k], theirs[k]), k


def _cli_train(path: str, run: str, err: str) -> None:
    """The child: ``nodedsl train PATH --run RUN -q`` with stderr into the file ``err``."""
    import sys

    from nodedsl.cli.main import main

    fd = os.open(err, os.O_WRONLY | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    # Ctrl-C's disposition, whatever the suite's: a suite started as a background job of a
    # non-interactive shell inherits SIGINT ignored, and Python then keeps it ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["nodedsl", "train", path, "--run", run, "-q"]
    main()


def test_sigint_leaves_a_resumable_checkpoint_and_says_so(tmp_path):
    path = tmp_path / "tiny.node"
    path.write_text(TINY.replace("epochs = 100", "epochs = 100000"))
    ctx = multiprocessing.get_context("fork")
    run, err = tmp_path / "run", tmp_path / "err.txt"
    child = ctx.Process(target=_cli_train, args=(str(path), str(run), str(err)))
    child.start()
    deadline = time.monotonic() + 60
    while not (run / "checkpoint.pt").is_file() and time.monotonic() < deadline and child.is_alive():
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGINT)
    child.join(30)
    assert child.exitcode == 130, err.read_text()
    assert "continue with --resume" in err.read_text()
    state = load_checkpoint(run / "checkpoint.pt")
    assert state["epoch"] >= 1 and state["run_id"]
    from nodedsl.io.runlock import RunLock

    with RunLock(run):  # the lock was released with the process
        pass
