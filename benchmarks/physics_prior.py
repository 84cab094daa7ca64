"""Physics prior: the hybrid pendulum (known gravity + neural friction + constraints) against a black box.

Not a test: run it by hand and paste the tables into docs/benchmarks.md.

    python benchmarks/physics_prior.py                     # 200 epochs (the train blocks), 1 thread
    python benchmarks/physics_prior.py --seeds 0 1 2       # three training seeds (~4 min)
    python benchmarks/physics_prior.py --epochs 100 --heldout 16 --heldout-seed 1

Every model is trained through the Python API (``nodedsl.load`` + ``nodedsl.train.run_training``, run
directories under a temporary folder) on the SAME data, the ``swings`` dataset of
examples/pendulum.node (32 trajectories of 4 s sampled every 0.05 s, noise 0.01, 20 % held out for
validation by the split):

* **hybrid**: ``Pendulum`` with the example's own train block (rk4 0.05, window 10, batch 64,
  Adam 3e-3, augmented Lagrangian, 200 epochs);
* **black box, angle only**: ``PendulumBlackBox`` of examples/blackbox.node with its own train block
  (taylor order 2 with learned remainder, step 0.05, window 10, Adam 3e-3, 200 epochs) but
  ``data = swings`` (its ``angles`` dataset is the same simulation; the black box observes only
  ``theta``, so every window has a trained initial state and a continuity term);
* **black box, full state**: the same network and train block on a copy of the model without the
  ``output`` declaration, so it observes ``theta`` and ``omega`` like the hybrid (the fair comparison).

Evaluation (the headline): ``--heldout`` new trajectories (``swings`` with ``seed = --heldout-seed``,
same initial distribution), rolled out with ``nodedsl.solvers.solve`` from the TRUE full initial state
over the 4 s horizon and compared with the noise-free true states (RMSE of theta and omega over every
sample). Two more held-out sets probe extrapolation: the same distribution over 12 s, and initial
states from a wider box (theta in [-2.8, 2.8], omega in [-2, 2]) over 4 s. ``--seeds`` repeats the
training with other seeds (net initialization, split, batch order).
Two integrators: each model's training solver (rk4 0.05; taylor with the trained remainder, reloaded
from the checkpoint) and a common reference rk4 with step 0.0125 (the learned field integrated
accurately). An *oracle* row (the true model with the hybrid's learned ``L``) shows the error the hybrid
would have with an exact friction net, and the hybrid's friction net is compared with the true law.
For the angle-only black box the hidden second state need not be the physical omega, so
a third rollout starts from an initial state fitted to the first 10 noisy angle samples
(what ``nodedsl eval`` does).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.data.loading import match_model
from nodedsl.data.synth import generate
from nodedsl.frontend.config import TimeSpan, Uniform, validate_dataset, validate_train
from nodedsl.solvers import make_solver, solve
from nodedsl.train import build_solver, load_checkpoint, load_weights, observation_map, run_training, select_train
from nodedsl.train.rollout import is_autonomous
from nodedsl.train.run import compiled_model, estimate_initial_states

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def full_state_blackbox(folder: Path) -> Path:
    """A copy of examples/blackbox.node whose black box observes every state (``PendulumBlackBoxFull``)."""
    shutil.copy(EXAMPLES / "pendulum.node", folder / "pendulum.node")
    text = (EXAMPLES / "blackbox.node").read_text()
    edits = [
        ("model PendulumBlackBox {", "model PendulumBlackBoxFull {"),
        ("    output theta_measured = theta\n", ""),
        ("train PendulumBlackBox {", "train PendulumBlackBoxFull {"),
        ("data = angles", "data = swings"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, f"examples/blackbox.node changed: cannot find {old!r}"
        text = text.replace(old, new)
    path = folder / "blackbox_full.node"
    path.write_text(text)
    return path


def heldout(prog, count: int, seed: int, t1: float = 4.0, theta=(-2.0, 2.0), omega=(-1.0, 1.0)):
    """``count`` new trajectories like ``swings`` (another seed; optionally longer or from a wider box of
    initial states); ``x`` holds the noise-free states, ``y`` the noisy observations."""
    dcfg, diags = validate_dataset(prog.dataset("swings"))
    assert dcfg is not None, diags
    dcfg = dcfg.model_copy(
        update={
            "trajectories": count,
            "seed": seed,
            "time": TimeSpan(kind="span", t0=0.0, t1=t1, step=0.05),
            "initial": {
                "theta": Uniform(kind="uniform", low=theta[0], high=theta[1]),
                "omega": Uniform(kind="uniform", low=omega[0], high=omega[1]),
            },
        }
    )
    truth = compiled_model(prog, dcfg.model, dcfg.seed)
    return generate(truth, dcfg)


def train(prog, name: str, run_dir: Path, epochs: int | None, data: str | None = None, seed: int | None = None):
    overrides = {}
    if seed is not None:
        overrides["seed"] = str(seed)
    if epochs is not None:
        overrides["epochs"] = str(epochs)
    if data is not None:
        overrides["data"] = data
    start = time.perf_counter()
    result = run_training(prog, select_train(prog, name), overrides=overrides, run_dir=run_dir)
    wall = time.perf_counter() - start
    model = prog.model(name)
    load_weights(run_dir, model)
    model.eval()
    cfg, _ = validate_train(select_train(prog, name))
    solver = build_solver(cfg.solver, 0.05, len(model.state_names))
    params = list(solver.parameters()) if hasattr(solver, "parameters") else []
    if params:  # a learned taylor remainder: the trained one from the checkpoint
        saved = load_checkpoint(run_dir / "checkpoint.pt")["solver_state"]
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
    return model, solver, result, wall


def rmse(states: torch.Tensor, truth: torch.Tensor) -> list[float]:
    err = (states - truth).double()
    return [math.sqrt(float(err[..., i].pow(2).mean())) for i in range(truth.shape[-1])]


def rollout(model, solver, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return solve(model, x0, t, solver=solver).ys.transpose(0, 1)  # [N, T, n]


def friction_of(model, w: torch.Tensor) -> torch.Tensor:
    """``-der(omega)`` at ``theta = 0``, ``torque = 0``: the friction law a pendulum model implies."""
    x = torch.stack((torch.zeros_like(w), w), 1)
    with torch.no_grad():
        return -model.field(torch.tensor(0.0), x, torch.zeros(len(w), 1))[:, 1]


def oracle(prog, L: float):
    """The true model with the hybrid's learned ``L``: the error left if the friction net were exact."""
    truth = prog.model("PendulumTruth")
    with torch.no_grad():
        truth.known__L.fill_(L)
    return truth


def fitted_x0(model, solver, test) -> torch.Tensor:
    """Initial states fitted to the first 10 noisy observations (the hidden components start at the default)."""
    names = (tuple(model.output_names), tuple(model.input_names), tuple(model.state_names))
    obs = observation_map(model)
    aliases = {
        o: model.state_names[i] for o, i in zip(model.output_names, obs) if i is not None and o != model.state_names[i]
    }
    held = match_model(test, *names, aliases=aliases, input_defaults=model.u_default.tolist())
    return estimate_initial_states(model, held, 10, solver, obs, is_autonomous(model))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="override every train block's epochs")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (net init, split, batches)")
    ap.add_argument("--heldout", type=int, default=16)
    ap.add_argument("--heldout-seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)

    hybrid_prog = nodedsl.load(str(EXAMPLES / "pendulum.node"))
    bb_prog = nodedsl.load(str(EXAMPLES / "blackbox.node"))
    n, s = args.heldout, args.heldout_seed
    sets = {  # the headline first
        "same distribution, 4 s": heldout(hybrid_prog, n, s),
        "same distribution, 12 s": heldout(hybrid_prog, n, s, t1=12.0),
        "wider initial states (theta in [-2.8, 2.8], omega in [-2, 2]), 4 s": heldout(
            hybrid_prog, n, s, theta=(-2.8, 2.8), omega=(-2.0, 2.0)
        ),
    }
    headline = next(iter(sets))
    print(f"torch {torch.__version__}, 1 thread; held-out: {n} trajectories per set, seed {s}")
    for key, test in sets.items():
        print(
            f"  {key}: {test.t.shape[1]} samples; true theta in [{float(test.x[..., 0].min()):.2f}, "
            f"{float(test.x[..., 0].max()):.2f}], omega in [{float(test.x[..., 1].min()):.2f}, "
            f"{float(test.x[..., 1].max()):.2f}]"
        )
    reference = make_solver("rk4", step=0.0125)

    rows = []  # (seed, model, start, set, solver, [rmse theta, omega])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bb_full_prog = nodedsl.load(str(full_state_blackbox(tmp)))
        runs = [
            ("hybrid", hybrid_prog, "Pendulum", None),
            ("black box, theta only", bb_prog, "PendulumBlackBox", "swings"),
            ("black box, full state", bb_full_prog, "PendulumBlackBoxFull", None),
        ]
        for seed in args.seeds:
            for label, prog, name, data in runs:
                model, solver, result, wall = train(prog, name, tmp / f"{name}-{seed}", args.epochs, data, seed)
                ev = result.extra.get("evaluation", {})
                params = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.parameters.items()}
                print(
                    f"seed {seed}, {label}: {result.epochs_run} epochs ({result.status}) in {wall:.1f} s "
                    f"(loop {result.wall_time:.1f} s); final val loss {result.val_loss:.3g}; learned {params}; "
                    f"nodedsl's own evaluation (validation split, from data) rmse {ev.get('rmse', float('nan')):.3g}",
                    flush=True,
                )
                if name == "Pendulum":
                    w = torch.linspace(-4, 4, 801)
                    err = (friction_of(model, w) - friction_of(hybrid_prog.model("PendulumTruth"), w)).abs()
                    print(
                        "  hybrid friction net vs the true law, max |error| for |w| <= 1, 2, 3, 4: "
                        + ", ".join(f"{float(err[w.abs() <= a].max()):.3f}" for a in (1, 2, 3, 4))
                    )
                    truth_L = oracle(hybrid_prog, float(result.parameters["L"]))
                    for key, test in sets.items():
                        t = test.t[0].to(torch.get_default_dtype())
                        rows.append(
                            (
                                seed,
                                "oracle: true friction, hybrid's L",
                                "true x0",
                                key,
                                "training",
                                rmse(rollout(truth_L, solver, test.x[:, 0], t), test.x),
                            )
                        )
                for key, test in sets.items():
                    t = test.t[0].to(torch.get_default_dtype())
                    starts = [("true x0", test.x[:, 0])]
                    if name == "PendulumBlackBox":  # hidden omega: also from an x0 fitted to the first window
                        starts.append(("x0 fitted to 10 noisy angles", fitted_x0(model, solver, test)))
                    for start, x0 in starts:
                        rows.append((seed, label, start, key, "training", rmse(rollout(model, solver, x0, t), test.x)))
                        if key == headline:
                            rows.append(
                                (seed, label, start, key, "rk4 0.0125", rmse(rollout(model, reference, x0, t), test.x))
                            )

    def hybrid(seed, key, sol):
        return next(r[5] for r in rows if r[0] == seed and r[1] == "hybrid" and r[3] == key and r[4] == sol)

    print(f"\nHeadline: {headline}, from the true initial state; theta/omega RMSE (rad, rad/s)")
    print("| seed | model | start | solver | RMSE theta | RMSE omega | theta ratio to hybrid | omega ratio to hybrid |")
    print("|---:|---|---|---|---:|---:|---:|---:|")
    for seed, label, start, key, sol, (e_t, e_w) in rows:
        if key != headline:
            continue
        h_t, h_w = hybrid(seed, key, sol)
        sname = sol if sol != "training" else ("taylor 2, 0.05" if label.startswith("black") else "rk4 0.05")
        print(f"| {seed} | {label} | {start} | {sname} | {e_t:.3g} | {e_w:.3g} | {e_t / h_t:.3g} | {e_w / h_w:.3g} |")
    print("\nOther held-out sets (training solvers)")
    print("| seed | held-out set | model | start | RMSE theta | RMSE omega | theta ratio to hybrid |")
    print("|---:|---|---|---|---:|---:|---:|")
    for seed, label, start, key, sol, (e_t, e_w) in rows:
        if key == headline or sol != "training":
            continue
        h_t, _ = hybrid(seed, key, sol)
        print(f"| {seed} | {key} | {label} | {start} | {e_t:.3g} | {e_w:.3g} | {e_t / h_t:.3g} |")
    ratios = {}
    for seed in args.seeds:
        h_t, _ = hybrid(seed, headline, "training")
        for label in ("black box, full state", "black box, theta only"):
            e_t = next(
                r[5][0]
                for r in rows
                if r[0] == seed and r[3] == headline and r[4] == "training" and r[1] == label and r[2] == "true x0"
            )
            ratios.setdefault(label, []).append(e_t / h_t)
    for label, vals in ratios.items():
        med = statistics.median(vals)
        print(
            f"{label} / hybrid, theta RMSE (headline set, true x0): "
            + ", ".join(f"seed {s_}: {v:.1f}x" for s_, v in zip(args.seeds, vals))
            + f"; median {med:.1f}x (target >= 100x: {'met' if med >= 100 else 'MISSED'})"
        )


if __name__ == "__main__":
    main()
