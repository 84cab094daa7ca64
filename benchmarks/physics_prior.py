"""Physics prior: the double pendulum of Djeumou et al. (L4DC 2022), trained with ``nodedsl train``.

Not a test: run it by hand and paste the table into docs/benchmarks.md.

    python benchmarks/physics_prior.py                          # sizes 1 5 20, 1500 steps, seed 0
    python benchmarks/physics_prior.py --sizes 1 --steps 6000 --models BlackBox HybridStructured
    python benchmarks/physics_prior.py --hidden 256 256 --models BlackBox --sizes 1   # the paper's baseline size
    python benchmarks/physics_prior.py --sizes 1 --steps 20000 --set compile=whole_step --keep DIR  # long runs

Setting, from the paper's reference code (github.com/wuwushrek/physics_constrained_nn,
examples/double_pendulum/dataset_gen.yaml, generate_sample.py, perform_comparison.py):

* truth: m1 = m2 = l1 = l2 = 1, g = 9.8 (``DoublePendulumTruth`` in benchmarks/double_pendulum.node),
  integrated by scipy (DOP853, rtol = atol = 1e-10) at dt = 0.01;
* training data: trajectories of 300 samples from initial states uniform in [-0.514, 0]^2 x [-0.3, 0.3]^2,
  with the reference's domain-shift filter (a trajectory is simulated for 3050 steps and the longest run
  of states with ``f1 <= 0 or f2 >= 0`` is kept, so one quadrant of (f1, f2) is never seen); the
  training sets are nested (the first n of the largest), noise-free, seed 101;
* tests: ``--tests`` trajectories of 300 steps from [-0.514, 0.514]^2 x [-0.6, 0.6]^2 (out of the
  training range) and as many from the training box; every model is rolled out from the true initial
  state with rk4 at dt = 0.01 (its training solver);
* metric: per test trajectory the geometric mean over its 300 steps of ``|x_hat - x| / (|x| + |x_hat|)``,
  then the mean over trajectories (the reference's ``generate_rel_error`` at the last time);
* models (benchmarks/double_pendulum.node, each trained by ``nodedsl train`` in a subprocess): the black
  box (one MLP of the 4 states for the whole field), the hybrid (known kinematics and mass-matrix
  structure, unknown f1(t1, t2, w2), f2(t1, t2, w1)), the hybrid with the paper's symmetry side
  information as constraints on collocation points (default augmented-Lagrangian settings), and the
  hybrid with the same information built into the nets (``odd = [t1, t2], even = [w2]``).

Differences from the paper, all of budget: ``--steps`` Adam steps (default 1500; the paper: 50,000),
64x64 tanh nets for everything (the paper: 256x256 ReLU baseline; ``--hidden`` changes the black box),
multiple shooting windows of 5 steps (the paper: 5-step rollouts, the same), batch 64, Adam 5e-3 with a
cosine schedule (the paper: 1e-2 decaying linearly to 1e-3, weight decay 1e-4, adaptive clipping).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

import nodedsl
from nodedsl.io.checkpoint import load_weights

ROOT = Path(__file__).resolve().parent
NODE = ROOT / "double_pendulum.node"
MODELS = ("BlackBox", "Hybrid", "HybridConstrained", "HybridStructured")
DT, LENGTH = 0.01, 300
TRAIN_BOX = (np.array([-0.514, -0.514, -0.3, -0.3]), np.array([0.0, 0.0, 0.3, 0.3]))
TEST_BOX = (np.array([-0.514, -0.514, -0.6, -0.6]), np.array([0.514, 0.514, 0.6, 0.6]))


def unknown_terms(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t1, t2, w1, w2 = x[..., 0], x[..., 1], x[..., 2], x[..., 3]
    f1 = -0.5 * w2**2 * np.sin(t1 - t2) - 9.8 * np.sin(t1)
    f2 = w1**2 * np.sin(t1 - t2) - 9.8 * np.sin(t2)
    return f1, f2


def truth_field(_t: float, x: np.ndarray) -> np.ndarray:
    t1, t2, w1, w2 = x
    f1, f2 = unknown_terms(x)
    a1, a2 = 0.5 * np.cos(t1 - t2), np.cos(t1 - t2)
    return np.array([w1, w2, (f1 - a1 * f2) / (1 - a1 * a2), (f2 - a2 * f1) / (1 - a1 * a2)])


def simulate(x0: np.ndarray, steps: int) -> np.ndarray:
    t = np.arange(steps) * DT
    sol = solve_ivp(truth_field, (0, t[-1]), x0, t_eval=t, method="DOP853", rtol=1e-10, atol=1e-10)
    return sol.y.T


def training_set(count: int, seed: int = 101) -> np.ndarray:
    """``[count, 300, 4]`` with the reference's domain-shift filter (longest run of f1 <= 0 or f2 >= 0)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        x = simulate(rng.uniform(*TRAIN_BOX), 10 * (LENGTH + 5))
        f1, f2 = unknown_terms(x)
        ok = np.concatenate([[False], (f1 <= 0) | (f2 >= 0), [False]])
        edges = np.flatnonzero(np.diff(ok.astype(int))).reshape(-1, 2)
        start, end = max(edges, key=lambda e: e[1] - e[0])
        if end - start >= LENGTH + 5:
            out.append(x[start : start + LENGTH])
    return np.stack(out)


def test_set(count: int, box, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([simulate(rng.uniform(*box), LENGTH + 1) for _ in range(count)])


def write_data(path: Path, x: np.ndarray) -> None:
    np.savez(path, t=np.arange(LENGTH) * DT, x=x, names=np.array(["t1", "t2", "w1", "w2"]))


def train(
    folder: Path, model: str, data: str, steps: int, seed: int, windows: int, extra: tuple[str, ...] = ()
) -> tuple[Path, float]:
    per_epoch = math.ceil(windows / 64)
    run = folder / f"run_{model}_{data}_{seed}"
    cmd = [sys.executable, "-m", "nodedsl.cli.main", "train", "double_pendulum.node", "--model", model]
    cmd += ["--run", str(run), "--quiet", "--epochs", str(math.ceil(steps / per_epoch))]
    cmd += ["--set", f"data={data}", "--set", f"seed={seed}"]
    for item in extra:
        cmd += ["--set", item]
    start = time.perf_counter()
    res = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=_env())
    if res.returncode != 0:
        raise SystemExit(f"{model}: nodedsl train failed\n{res.stderr[-3000:]}")
    return run, time.perf_counter() - start


def _env() -> dict:
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT.parent) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def rollout(model, x0: torch.Tensor, steps: int) -> torch.Tensor:
    """rk4 at dt = 0.01 from ``x0 [B, 4]``: ``[B, steps + 1, 4]``."""
    u = x0.new_zeros(x0.shape[0], 0)
    xs, x = [x0], x0
    with torch.no_grad():
        for i in range(steps):
            t = torch.full((x.shape[0],), i * DT, dtype=x.dtype)
            k1 = model.field(t, x, u)
            k2 = model.field(t + DT / 2, x + DT / 2 * k1, u)
            k3 = model.field(t + DT / 2, x + DT / 2 * k2, u)
            k4 = model.field(t + DT, x + DT * k3, u)
            x = x + DT / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            xs.append(x)
    return torch.stack(xs, 1)


def gm_relative_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over trajectories of the geometric mean over time of |x_hat - x| / (|x| + |x_hat|)."""
    p, x = pred[:, 1:], true[:, 1:]
    rel = np.linalg.norm(p - x, axis=-1) / (np.linalg.norm(x, axis=-1) + np.linalg.norm(p, axis=-1))
    rel = np.where(np.isfinite(rel), rel, 1.0).clip(1e-16, 1.0)  # a diverged rollout counts as error 1
    return float(np.exp(np.log(rel).mean(axis=1)).mean())


def field_error(model, box, count: int = 4096, seed: int = 9) -> float:
    """Relative RMS error of the learned accelerations (dw1, dw2) at uniform states of ``box``."""
    x = np.random.default_rng(seed).uniform(*box, size=(count, 4))
    true = np.stack([truth_field(0.0, xi) for xi in x])[:, 2:]
    xt = torch.tensor(x, dtype=model.x0_default.dtype)
    with torch.no_grad():
        pred = model.field(torch.zeros(count, dtype=xt.dtype), xt, xt.new_zeros(count, 0))[:, 2:].double().numpy()
    return float(np.sqrt(((pred - true) ** 2).sum() / (true**2).sum()))


def evaluate(folder: Path, model_name: str, run: Path, tests: dict[str, np.ndarray]) -> dict[str, float]:
    prog = nodedsl.load(str(folder / "double_pendulum.node"))
    model = prog.model(model_name)
    load_weights(run, model)
    model.eval()
    out = {}
    for key, true in tests.items():
        x0 = torch.tensor(true[:, 0], dtype=model.x0_default.dtype)
        pred = rollout(model, x0, true.shape[1] - 1).double().numpy()
        out[key] = gm_relative_error(pred, true)
    out["field test box"] = field_error(model, TEST_BOX)
    out["field train box"] = field_error(model, TRAIN_BOX)
    return out


def rescore(folder: Path, tests: dict[str, np.ndarray]) -> None:
    """Evaluate the runs kept in ``folder`` again (no training): rollout and vector-field errors, final loss."""
    import json

    print("| run | GM test box | GM train box | field error test box | field error train box | final loss |")
    print("|---|---|---|---|---|---|")
    for run in sorted(folder.glob("run_*")):
        name = run.name.split("_")[1]
        if not (run / "metrics.json").is_file():
            continue
        e = evaluate(folder, name, run, tests)
        loss = json.loads((run / "metrics.json").read_text())["final"]["train_loss"]
        print(
            f"| {run.name} | {e['test box']:.4f} | {e['train box']:.4f} | {e['field test box']:.3f}"
            f" | {e['field train box']:.3f} | {loss:.2e} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=1500, help="Adam steps per run (the paper: 50,000)")
    ap.add_argument("--tests", type=int, default=10)
    ap.add_argument("--hidden", type=int, nargs="+", default=None, help="hidden widths of the black box")
    ap.add_argument("--set", dest="extra", nargs="+", default=[], help="more `train --set KEY=VALUE` items")
    ap.add_argument("--keep", default=None, help="keep the runs in this folder")
    ap.add_argument("--rescore", default=None, help="only evaluate the runs kept in this folder again")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.rescore:
        tests = {"test box": test_set(args.tests, TEST_BOX, 7), "train box": test_set(args.tests, TRAIN_BOX, 8)}
        return rescore(Path(args.rescore), tests)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="physics_prior_"))
    folder.mkdir(parents=True, exist_ok=True)
    text = NODE.read_text()
    if args.hidden:
        old = "net f(t1, t2, w1, w2) -> 4 { hidden = [64, 64] }"
        text = text.replace(old, old.replace("[64, 64]", str(list(args.hidden))))
    (folder / "double_pendulum.node").write_text(text)
    data = training_set(max(args.sizes))
    for n in args.sizes:
        write_data(folder / f"dp_train_{n}.npz", data[:n])
    tests = {"test box": test_set(args.tests, TEST_BOX, 7), "train box": test_set(args.tests, TRAIN_BOX, 8)}
    print(f"# steps {args.steps}, seeds {args.seeds}, {args.tests} test trajectories per box, data in {folder}")
    print(
        "| trajectories | model | GM rel. error, test box | ratio to black box | train box | ratio"
        " | field error, test box | train s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        base = None
        for name in args.models:
            errs: dict[str, list[float]] = {}
            walls = []
            for seed in args.seeds:
                run, wall = train(
                    folder, name, f"dp_train_{n}.npz", args.steps, seed, n * ((LENGTH - 1) // 5), tuple(args.extra)
                )
                for k, v in evaluate(folder, name, run, tests).items():
                    errs.setdefault(k, []).append(v)
                walls.append(wall)
            err = {k: statistics.median(v) for k, v in errs.items()}
            base = err if name == "BlackBox" else base
            ratio = {k: base[k] / err[k] if base else float("nan") for k in err}
            print(
                f"| {n} | {name} | {err['test box']:.4f} | {ratio['test box']:.2f}x"
                f" | {err['train box']:.4f} | {ratio['train box']:.2f}x | {err['field test box']:.3f}"
                f" | {statistics.median(walls):.0f} |",
                flush=True,
            )
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
