"""The training loop: recovery, determinism, resume equivalence, NaN rollback, augmented Lagrangian,
checkpoint errors; then the real compiler and the CLI end to end (small)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from _fake_model import FakeDecay, FakePendulum

from nodedsl.core.diagnostics import NodeDslError
from nodedsl.data.loading import make_windows, split_by_trajectory
from nodedsl.data.synth import generate
from nodedsl.frontend.config import validate_dataset, validate_train
from nodedsl.frontend.parse import parse_source
from nodedsl.train import fit, load_checkpoint, save_checkpoint
from nodedsl.train.rollout import observation_map


def make_cfg(body: str, model: str = "M"):
    cfg, diags = validate_train(parse_source(f"train {model} {{\n data = d\n {body}\n}}", "t.node").trains[0])
    assert diags == [], diags
    return cfg


def make_data(
    truth, initial: str, t1: float = 2.0, n: int = 6, noise: float = 0.0, window: int = 5, validation: float = 0.34
):
    ds = parse_source(
        f"dataset d {{ model = X\n trajectories = {n}\n time = span(0, {t1}, step = 0.1)\n"
        f" initial = {{ {initial} }}\n noise = {noise}\n seed = 1 }}",
        "d.node",
    ).datasets[0]
    dcfg, diags = validate_dataset(ds)
    assert diags == []
    traj = generate(truth, dcfg)
    tr, va = split_by_trajectory(traj, validation, 0)
    return make_windows(tr, window), (make_windows(va, window) if va is not None else None)


@pytest.fixture(scope="module")
def decay_data():
    return make_data(FakeDecay(k=1.0), "x = uniform(0.5, 1.5)")


@pytest.fixture(scope="module")
def pendulum_data():
    return make_data(FakePendulum(L=1.3, c=0.4), "theta = uniform(-1, 1), omega = uniform(-1, 1)")


def params_of(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


BASE = "solver = rk4(step = 0.1)\n window = 5\n batch = 4\n optimizer = adam(lr = 0.05)\n seed = 3"


def test_fit_recovers_decay_rate(decay_data):
    wt, wv = decay_data
    model = FakeDecay(k=0.5)
    seen = []
    res = fit(model, wt, wv, make_cfg(BASE + "\n epochs = 60"), progress=lambda *a: seen.append(a))
    assert res.status == "completed" and res.epochs_run == 60 and len(res.history) == 60
    assert abs(res.parameters["k"] - 1.0) < 1e-2
    assert res.fully_observed and res.x0_train is None
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] / 100
    assert len(seen) == 60 and seen[-1][:2] == (60, 60) and seen[-1][3] is not None
    assert res.history[-1]["parameters"]["k"] == res.parameters["k"]


def test_deterministic_with_seed(decay_data):
    wt, wv = decay_data
    runs = []
    for seed in (3, 3, 4):
        model = FakeDecay(k=0.5)
        res = fit(model, wt, wv, make_cfg(BASE.replace("seed = 3", f"seed = {seed}") + "\n epochs = 5"))
        runs.append(([h["train_loss"] for h in res.history], params_of(model)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]


@pytest.mark.parametrize("partial", [False, True])
def test_resume_equals_uninterrupted(tmp_path, pendulum_data, partial):
    wt, wv = pendulum_data
    body = BASE + "\n constraints = augmented_lagrangian(mu = 1, update_every = 2, samples = 32)\n checkpoint_every = 1"
    straight = FakePendulum(partial=partial)
    res6 = fit(straight, wt, wv, make_cfg(body + "\n epochs = 6"), checkpoint_path=tmp_path / "a.pt")
    first = FakePendulum(partial=partial)
    fit(first, wt, wv, make_cfg(body + "\n epochs = 3"), checkpoint_path=tmp_path / "b.pt")
    resumed = FakePendulum(partial=partial)  # fresh parameters: everything must come from the checkpoint
    res = fit(
        resumed,
        wt,
        wv,
        make_cfg(body + "\n epochs = 6"),
        checkpoint_path=tmp_path / "b.pt",
        resume_from=tmp_path / "b.pt",
    )
    assert res.epochs_run == 6 and len(res.history) == 6
    assert torch.allclose(params_of(straight), params_of(resumed), atol=1e-6, rtol=0)
    assert [h["train_loss"] for h in res.history] == pytest.approx([h["train_loss"] for h in res6.history], rel=1e-6)
    assert res.multipliers == res6.multipliers and res.mu == res6.mu
    assert res.fully_observed is (not partial)
    if partial:
        assert torch.allclose(res.x0_train, res6.x0_train, atol=1e-6)


def test_nan_rolls_back_and_halves_lr(decay_data):
    wt, wv = decay_data
    model = FakeDecay(k=0.5, nan_calls=set(range(40, 46)) | set(range(300, 306)))
    res = fit(model, wt, wv, make_cfg(BASE + "\n epochs = 8"))
    assert res.status == "completed" and res.rollbacks >= 2
    assert all(math.isfinite(h["train_loss"]) for h in res.history)
    assert math.isfinite(res.parameters["k"])
    assert res.history[-1]["lr"] == pytest.approx(0.05 / 2**res.rollbacks)


def test_nan_forever_stops_as_diverged(decay_data):
    wt, _wv = decay_data
    model = FakeDecay(k=0.5, nan_calls=range(1, 10**7))
    res = fit(model, wt, None, make_cfg(BASE + "\n epochs = 6"))
    assert res.status == "diverged" and math.isfinite(res.parameters["k"])


def test_augmented_lagrangian_reduces_violation():
    """Data say k = 1; the constraint k <= 0.7 wins as the multiplier grows."""
    wt, wv = make_data(FakeDecay(k=1.0), "x = uniform(5, 15)")  # large data loss: the constraint must fight
    model = FakeDecay(k=0.9, kmax=0.7)
    cfg = make_cfg(
        BASE + "\n epochs = 60\n constraints = augmented_lagrangian(mu = 0.1, growth = 2, mu_max = 1e4, "
        "update_every = 20, tolerance = 1e-5, scale = none)"  # raw units; 20 steps = 5 epochs here
    )
    res = fit(model, wt, wv, cfg)
    at_updates = [h["violations"]["k_max"] for h in res.history][4::5]
    assert at_updates[0] > 0.2 and at_updates[-1] < at_updates[0] / 10
    assert res.history[-1]["mu"] > 1
    assert sum(b <= a * 1.05 for a, b in zip(at_updates, at_updates[1:])) >= len(at_updates) - 3
    assert res.violations["k_max"] < 0.02 and res.multipliers["k_max"][0] > 0
    assert res.parameters["k"] < 0.72


def test_domain_constraints_and_partial_observation(pendulum_data):
    wt, wv = pendulum_data
    model = FakePendulum(partial=True)
    assert observation_map(model) == [0]
    res = fit(model, wt, wv, make_cfg(BASE + "\n epochs = 4"))
    assert not res.fully_observed and res.x0_train.shape == (len(wt), 2)
    assert set(res.violations) == {"at_rest", "dissipative"}
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_learned_window_starts_for_observed_models(tmp_path, decay_data):
    wt, wv = decay_data
    body = BASE + "\n window_init = learned(after = 2)\n checkpoint_every = 1"
    a = FakeDecay(k=0.5)
    res = fit(a, wt, wv, make_cfg(body + "\n epochs = 4"))
    assert res.fully_observed and res.x0_train.shape == (len(wt), 2)
    held = FakeDecay(k=0.5)
    res2 = fit(held, wt, wv, make_cfg(body + "\n epochs = 2"), checkpoint_path=tmp_path / "c.pt")
    assert torch.equal(res2.x0_train, wt.y[:, 0])  # held at the data for the first two epochs
    assert not torch.equal(res.x0_train, wt.y[:, 0])
    resumed = FakeDecay(k=0.5)
    fit(resumed, wt, wv, make_cfg(body + "\n epochs = 4"), resume_from=tmp_path / "c.pt")
    assert torch.allclose(params_of(resumed), params_of(a), atol=1e-6)
    with pytest.raises(NodeDslError) as exc:  # the setup changed: the optimizer state does not fit
        fit(FakeDecay(), wt, wv, make_cfg(BASE + "\n epochs = 4"), resume_from=tmp_path / "c.pt")
    assert exc.value.diagnostics[0].code == "checkpoint-mismatch"


@pytest.mark.parametrize(
    "extra",
    [
        "gradient = adjoint",
        "gradient = checkpoint(segments = 2)",
        "optimizer = lbfgs(lr = 0.5, max_iter = 5)\n schedule = cosine\n clip = 1.0",
        "solver = dopri5(rtol = 1e-5, atol = 1e-7)\n loss = mae\n early_stopping = 2",
    ],
)
def test_solver_gradient_optimizer_variants(decay_data, extra):
    wt, wv = decay_data
    body = "\n".join(
        line
        for line in BASE.split("\n")
        if not any(line.strip().startswith(k + " ") for k in [ln.split("=")[0].strip() for ln in extra.split("\n")])
    )
    model = FakeDecay(k=0.5)
    res = fit(model, wt, wv, make_cfg(body + "\n epochs = 3\n " + extra))
    assert res.epochs_run <= 3 and math.isfinite(res.train_loss)
    assert res.parameters["k"] > 0.55


@pytest.mark.parametrize("solver", ["implicit_euler(step = 0.1)", "rk4(step = 0.05)"])
def test_row_specific_inputs(solver):
    """Windows with different inputs and start times: interpolated inputs, row-wise Jacobians."""
    from nodedsl.data.loading import Trajectories

    N, T = 4, 11
    t = torch.linspace(0, 1, T, dtype=torch.float64).repeat(N, 1) + torch.arange(N)[:, None]
    u = 0.3 * torch.arange(N, dtype=torch.float32)[:, None, None] * torch.linspace(0, 1, T)[None, :, None]
    truth = FakePendulum(L=1.3, c=0.4)
    from nodedsl.solvers import make_solver
    from nodedsl.train.rollout import rollout

    x0 = torch.tensor([[0.5, 0.0]]).repeat(N, 1)
    xs = rollout(truth, x0, t, u, make_solver("rk4", step=0.01))
    traj = Trajectories(t, xs, u, ("theta", "omega"), ("torque",))
    w = make_windows(traj, 5)
    assert not torch.equal(w.u[0], w.u[-1])
    model = FakePendulum(L=1.0)
    res = fit(
        model,
        w,
        None,
        make_cfg(
            f"solver = {solver}\n window = 5\n batch = 8\n epochs = 2\n"
            " optimizer = adam(lr = 0.05)\n constraints = none"
        ),
    )
    assert math.isfinite(res.train_loss) and res.rollbacks == 0
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_checkpoint_errors(tmp_path, decay_data):
    wt, wv = decay_data
    path = tmp_path / "c.pt"
    fit(FakeDecay(), wt, wv, make_cfg(BASE + "\n epochs = 1"), checkpoint_path=path, source_hash="aaa")
    state = load_checkpoint(path, source_hash="aaa")
    assert state["epoch"] == 1 and state["format"] == "nodedsl-checkpoint/1"
    with pytest.raises(NodeDslError) as exc:
        fit(FakeDecay(), wt, wv, make_cfg(BASE + "\n epochs = 2"), resume_from=path, source_hash="bbb")
    assert exc.value.diagnostics[0].code == "checkpoint-mismatch"
    with pytest.raises(NodeDslError) as exc:
        fit(FakePendulum(), wt, wv, make_cfg(BASE + "\n epochs = 2"), resume_from=path)
    assert exc.value.diagnostics[0].code == "checkpoint-mismatch"
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    for name in ("cut.pt", "junk.pt", "missing.pt"):
        with pytest.raises(NodeDslError) as exc:
            load_checkpoint(tmp_path / name)
        assert exc.value.diagnostics[0].code == "bad-checkpoint"
    save_checkpoint(tmp_path / "x.pt", {"model_state": {"w": torch.ones(1)}, "format": "nodedsl-checkpoint/1"})
    assert not list(tmp_path.glob("*.tmp"))


# ---------------------------------------------------------------- the real compiler, end to end
def test_real_pendulum_run_dir(tmp_path):
    import nodedsl
    from nodedsl.train import evaluate, plot_run, run_training, select_train

    prog = nodedsl.load("examples/pendulum.node")
    assert prog.model("Pendulum").state_names == ("theta", "omega")
    run = tmp_path / "run"
    seen = []
    res = run_training(
        prog, select_train(prog), overrides={"epochs": "2"}, run_dir=run, progress=lambda *a: seen.append(a)
    )
    assert res.epochs_run == 2 and len(seen) == 2 and "L" in res.parameters
    for name in ("checkpoint.pt", "model.pt", "metrics.json", "config.json", "predictions.npz", "loss.png", "fit.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2 and set(metrics["final"]["violations"]) == {"at_rest", "dissipative"}
    assert metrics["evaluation"]["on"] == "validation"
    out = evaluate(prog, None, run)
    assert out["trajectories"] == 6 and math.isfinite(out["rmse"]) and (run / "eval.json").is_file()
    # two outputs: a phase portrait; a scalar net: its learned curve against the truth it implies
    assert [p.name for p in plot_run(run)] == ["loss.png", "fit.png", "phase.png", "nets.png"]
    import numpy as np

    nets = np.load(run / "nets.npz")
    assert set(nets.files) == {"friction.input", "friction.output", "friction.truth"}
    assert len(nets["friction.input"]) == len(nets["friction.truth"]) > 100
    again = run_training(prog, select_train(prog), overrides={"epochs": "3"}, run_dir=run, resume=True)
    assert again.epochs_run == 3 and len(again.history) == 3


def test_real_blackbox_partial_taylor(tmp_path):
    import nodedsl
    from nodedsl.train import run_training, select_train

    prog = nodedsl.load("examples/blackbox.node")
    res = run_training(prog, select_train(prog), overrides={"epochs": "1", "window": "5"}, run_dir=tmp_path)
    assert not res.fully_observed and res.epochs_run == 1 and math.isfinite(res.train_loss)


def test_cli_train_eval_plot(tmp_path):
    from typer.testing import CliRunner

    from nodedsl.cli.main import app

    runner = CliRunner()
    run = str(tmp_path / "r")
    r = runner.invoke(
        app,
        [
            "train",
            "examples/lotka_volterra.node",
            "--epochs",
            "1",
            "--quiet",
            "--run",
            run,
            "--set",
            "window=20",
            "--lr",
            "0.01",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "alpha" in r.output and "run directory" in r.output
    r = runner.invoke(app, ["eval", "examples/lotka_volterra.node", "--run", run])
    assert r.exit_code == 0, r.output
    assert "rollout over" in r.output and "RMSE" in r.output
    r = runner.invoke(app, ["plot", "--run", run])
    assert r.exit_code == 0 and "loss.png" in r.output
    r = runner.invoke(app, ["train", "examples/lotka_volterra.node", "--set", "epocs=3", "--run", run])
    assert r.exit_code == 1 and "bad-override" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["train", "examples/two_masses.node", "--model", "Nope"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    r = runner.invoke(app, ["plot", "--run", str(tmp_path / "nothing")])
    assert r.exit_code == 1 and "bad-checkpoint" in r.output


def test_taylor_remainder_is_refitted_during_training(tmp_path, monkeypatch):
    """With a learned Taylor-Lagrange remainder, fit refits Gamma every REMAINDER_EVERY steps: each
    refit changes Gamma's weights, and the remainder loss (one step against the reference) drops."""
    import nodedsl
    from nodedsl.train import loop, run_training, select_train

    changed, losses = [], []
    original = loop._Trainer.train_remainder

    def spy(self, states, tb, ub):
        before = [p.detach().clone() for p in self.solver_params]
        original(self, states, tb, ub)
        changed.append(any(not torch.equal(b, p) for b, p in zip(before, self.solver_params)))
        x = states[:, :-1].reshape(-1, states.shape[-1])[:64]
        field = lambda t, xx: self.model.field(t, xx)  # noqa: E731  (autonomous, no inputs)
        losses.append(float(self.solver.remainder_loss(field, x, self.solver.step_size).detach()))

    monkeypatch.setattr(loop._Trainer, "train_remainder", spy)
    prog = nodedsl.load("examples/blackbox.node")
    run_training(prog, select_train(prog), overrides={"epochs": "6", "window": "5"}, run_dir=tmp_path)
    assert len(changed) >= 3 and all(changed)
    assert losses[-1] < losses[0]


def test_snapshots_share_the_recorded_history_entries(decay_data):
    """The per-epoch snapshot (rollbacks, Ctrl-C, checkpoints) copies the history list, not its entries:
    copying every entry at every epoch made a 20,000-epoch run spend ~49 ms an epoch on it at the end."""
    from nodedsl.io.checkpoint import param_shapes
    from nodedsl.train.distributed import Shard
    from nodedsl.train.loop import _Trainer

    wt, wv = decay_data
    shard = Shard(0, 1, torch.device("cpu"))
    trainer = _Trainer(FakeDecay(), wt, wv, make_cfg(BASE + "\n epochs = 2"), None, None, "", shard)
    trainer.history = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1)} for i in range(3)]
    snap = trainer.capture()
    assert snap["history"] == trainer.history and snap["history"] is not trainer.history
    assert all(a is b for a, b in zip(snap["history"], trainer.history))  # no per-entry copies
    trainer.history.append({"epoch": 4, "train_loss": 0.25})
    assert len(snap["history"]) == 3  # later epochs do not leak into an earlier snapshot
    assert snap["param_shapes"] == param_shapes(trainer.model)  # read off the cloned state, not a second pass
