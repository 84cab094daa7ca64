"""Data-parallel training on torch.distributed (gloo, 2 processes on this CPU), devices, and the
TensorBoard log.

The 2-process run must equal the single-process run on the same windows: the same parameters (1e-6,
float64), the same multipliers and penalty, only rank 0 writing files; a single-process run of one
epoch resumed by 2 processes for the second must equal the uninterrupted runs. All of it happens in one
start of 2 workers, forked so that they inherit the imported modules (fresh interpreters importing
torch dominated the time).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

import nodedsl
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.train import run_training, select_train

SOURCE = """
model Truth {
    state x = 1.0
    state v = 0.0
    param k = 2.0
    param c = 0.3
    der(x) = v
    der(v) = -k * x - c * v
}

model Osc {
    state x = 1.0
    state v = 0.0
    param k = 1.0 learn
    net damp(w) -> 1 { hidden = [8], activation = tanh }
    der(x) = v
    der(v) = -k * x - damp(v)
    constraint bounded: x * x + v * v <= 0.6
    constraint at_rest: damp(0) == 0
    constraint passive: damp(w) * w >= 0 for w in [-1, 1]
}

dataset swings {
    model = Truth
    trajectories = 10
    time = span(0, 2, step = 0.1)
    initial = { x = uniform(-1, 1), v = uniform(-1, 1) }
    seed = 0
}

train Osc {
    data = swings
    solver = rk4(step = 0.1)
    window = 5
    epochs = 2
    batch = 7
    optimizer = adam(lr = 0.05)
    constraints = augmented_lagrangian(mu = 1.0, update_every = 1, samples = 16, scale = none)
    validation = 0.2
    checkpoint_every = 1
    horizon = full
    seed = 0
}
"""


class float64:
    def __enter__(self):
        self.before = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.before)


def _no_plots() -> None:
    """The plots (matplotlib: seconds per run) are not what these tests are about."""
    import nodedsl.train.run as run_module

    run_module.plot_run = lambda run: []


def _train(path: Path, run: Path, overrides=None, resume=False, shard=None):
    prog = nodedsl.load(path)
    return run_training(prog, select_train(prog, None), overrides=overrides, run_dir=run, resume=resume, shard=shard)


def _worker(rank: int, world: int, port: int, path: str, root: str, queue) -> None:
    """One rank: the 2-epoch run, then the resumed run."""
    import torch.distributed as dist

    from nodedsl.train.distributed import Shard

    torch.set_default_dtype(torch.float64)
    _no_plots()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        shard = Shard(rank, world, torch.device("cpu"))
        out = []
        gaps = {"data": str(Path(root) / "gaps.csv")}
        for name, resume, sets in (("two", False, None), ("resumed", True, None), ("gaps-two", False, gaps)):
            result = _train(Path(path), Path(root) / name, overrides=sets, resume=resume, shard=shard)
            out.append((result.parameters, result.multipliers, result.mu, result.val_loss, "run_dir" in result.extra))
        queue.put((rank, out))
    finally:
        dist.destroy_process_group()


def _gappy_csv(path: Path) -> None:
    """Trajectories of the truth, each on its own time step (irregular windows, stepped together), with
    empty cells (missing observations: the loss is a mean over what was observed)."""
    from nodedsl.simulate import SimulationRequest, run_simulation

    prog = nodedsl.loads(SOURCE)
    lines = ["trajectory,t,x,v"]
    for i in range(6):
        sets = (f"x={0.8 - 0.3 * i:g}", f"v={0.1 * i:g}")
        table = run_simulation(prog, SimulationRequest(model="Truth", t_end=2.0, step=0.1 + 0.01 * i, sets=sets))
        cols = {c: table.columns.index(c) for c in ("t", "x", "v")}
        for r, row in enumerate(table.rows):
            x = "" if (r + i) % 7 == 3 else f"{row[cols['x']]:.12g}"
            v = "" if (r + 2 * i) % 5 == 4 else f"{row[cols['v']]:.12g}"
            lines.append(f"{i},{row[cols['t']]:.12g},{x},{v}")
    path.write_text("\n".join(lines) + "\n")


def _state(run: Path) -> tuple[dict, dict]:
    model = torch.load(run / "model.pt", weights_only=True)["model_state"]
    return model, torch.load(run / "checkpoint.pt", weights_only=True)["al"]


def _close(a: dict, b: dict, tol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=tol), (k, (a[k] - b[k]).abs().max())


def test_two_gloo_processes_equal_one(tmp_path, monkeypatch):
    import torch.multiprocessing as mp

    import nodedsl.train.run as run_module

    monkeypatch.setattr(run_module, "plot_run", lambda run: [])

    path = tmp_path / "osc.node"
    path.write_text(SOURCE)
    with float64():
        one = _train(path, tmp_path / "one")
        _train(path, tmp_path / "resumed", overrides={"epochs": "1"})  # resumed below by 2 processes
        _gappy_csv(tmp_path / "gaps.csv")
        gaps = _train(path, tmp_path / "gaps-one", overrides={"data": str(tmp_path / "gaps.csv")})
    assert gaps.extra["data"].get("missing_values", 1) > 0
    assert one.multipliers["bounded"][0] > 0  # the inequality is active: its multiplier moved
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("fork")
    queue = ctx.SimpleQueue()
    # fork: the workers inherit the imported modules (spawning fresh interpreters costs tens of seconds here)
    mp.start_processes(
        _worker, args=(2, port, str(path), str(tmp_path), queue), nprocs=2, join=True, start_method="fork"
    )
    got = dict(queue.get() for _ in range(2))
    for rank in (0, 1):
        for params, multipliers, mu, val_loss, wrote in got[rank][:2]:
            assert wrote == (rank == 0)  # rank 1 returned before any output step
            assert mu == one.mu and val_loss == pytest.approx(one.val_loss, rel=1e-9)
            for k, v in one.multipliers.items():
                assert multipliers[k] == pytest.approx(v, abs=1e-9)
            assert params["k"] == pytest.approx(one.parameters["k"], abs=1e-9)
    ref_model, ref_al = _state(tmp_path / "one")
    for name, ref in (("two", "one"), ("resumed", "one"), ("gaps-two", "gaps-one")):
        ref_model, ref_al = _state(tmp_path / ref)
        model, al = _state(tmp_path / name)
        _close(model, ref_model)
        _close(al["lam"], ref_al["lam"], 1e-9)
        assert al["mu"] == ref_al["mu"]
        assert sorted(os.listdir(tmp_path / name)) == sorted(os.listdir(tmp_path / ref))
    assert got[1][2][3] == pytest.approx(gaps.val_loss, rel=1e-9)
    config = json.loads((tmp_path / "two" / "config.json").read_text())
    assert config["data"]["processes"] == 2 and config["data"]["device"] == "cpu"
    written = ["gaps-one", "gaps-two", "gaps.csv", "one", "osc.node", "resumed", "two"]
    assert sorted(p.name for p in tmp_path.iterdir()) == written


def test_device_auto_is_cpu_and_cuda_is_a_coded_error(tmp_path):
    from nodedsl.train.distributed import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(NodeDslError) as err:
        resolve_device("cuda:1")
    assert err.value.diagnostics[0].code == "device-unavailable"
    path = tmp_path / "osc.node"
    path.write_text(SOURCE)
    with pytest.raises(NodeDslError) as err:
        _train(path, tmp_path / "run", overrides={"device": "cuda"})
    assert err.value.diagnostics[0].code == "device-unavailable"
    assert not (tmp_path / "run").exists()  # refused before anything is written
    from nodedsl.simulate import SimulationRequest, run_simulation

    prog = nodedsl.loads(SOURCE)
    req = SimulationRequest(model="Truth", t_end=1.0, step=0.25, inputs=())
    cpu = run_simulation(prog, req)
    auto = run_simulation(prog, SimulationRequest(model="Truth", t_end=1.0, step=0.25, device="auto"))
    assert auto.columns == cpu.columns and (auto.rows == cpu.rows).all()
    with pytest.raises(NodeDslError) as err:
        run_simulation(prog, SimulationRequest(model="Truth", t_end=1.0, step=0.25, device="cuda"))
    assert err.value.diagnostics[0].code == "device-unavailable"


def test_tensorboard_log_holds_the_scalars(tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    import nodedsl.train.run as run_module

    monkeypatch.setattr(run_module, "plot_run", lambda run: [])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = tmp_path / "osc.node"
    path.write_text(SOURCE)
    result = _train(path, tmp_path / "run", overrides={"log": "tensorboard", "device": "auto"})
    events = list((tmp_path / "run" / "logs").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "loss/validation", "lr", "constraints/mu", "param/k"} <= tags
    assert {"violation/bounded", "multiplier/bounded", "violation/passive"} <= tags
    train = [e.value for e in acc.Scalars("loss/train")]
    assert [e.step for e in acc.Scalars("loss/train")] == [1, 2]
    assert train == pytest.approx([h["train_loss"] for h in result.history], rel=1e-6)
    assert acc.Scalars("param/k")[-1].value == pytest.approx(result.parameters["k"], rel=1e-6)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["log"] == "tensorboard"


def test_setups_without_a_data_parallel_form_are_refused():
    """L-BFGS re-evaluates the loss in its line search; a learned taylor remainder samples rank-local
    states: both are refused under a group of 2 (the trainer calls this before any collective)."""
    from types import SimpleNamespace

    from nodedsl.train.parallel import check_parallel

    w = torch.nn.Parameter(torch.zeros(2))
    for trainer, says in (
        (SimpleNamespace(opt=torch.optim.LBFGS([w]), rem_opt=None), "L-BFGS"),
        (SimpleNamespace(opt=torch.optim.Adam([w]), rem_opt=torch.optim.Adam([w])), "remainder"),
    ):
        with pytest.raises(NodeDslError) as err:
            check_parallel(trainer)
        assert err.value.diagnostics[0].code == "parallel-unsupported"
        assert says in err.value.diagnostics[0].message
    check_parallel(SimpleNamespace(opt=torch.optim.Adam([w]), rem_opt=None))  # the ordinary case passes
