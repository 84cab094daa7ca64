"""Reachtubes: tightness and cost of ``nodedsl verify`` (GoTube) against horizon, beside the Gronwall tube.

Three models, each verified from a 2-norm ball of initial states over T = 1, 5, 10, 20 (output step 0.1,
rk4 with step 0.05, confidence 0.99, the default 4603 boundary samples):

* Van der Pol (mu = 1), ball of radius 0.05 around (x, v) = (1, 0.5);
* the pendulum hybrid of examples/pendulum.node (gravity + a 32x32 tanh friction net), trained for
  ``--epochs`` epochs on its dataset, loaded from the run directory (``--run``), ball of radius 0.1
  around (theta, omega) = (0.5, 0);
* a 20-state composite: a port-Hamiltonian chain of 7 damped masses (q, p) and 6 hardening springs
  (H_spring = k s^2/2 + s^4/4), ball of radius 0.05 around its declared initial state.

Tightness is the mean over output times t > 0 of ``radius / empirical max distance``, where the empirical
maximum is over Monte-Carlo trajectories from the ball (``--mc`` uniform interior points plus 10% as many
on the boundary; the largest horizon is simulated once and shorter ones use its prefix). "escapes" counts
output times where a Monte-Carlo trajectory leaves the tube. Times are the median of ``--repeat`` runs,
interleaved GoTube / Gronwall; the log-log slope of time against T is fitted over the four horizons.

    python benchmarks/reachability.py                     # full: 100,000 MC trajectories (20,000 for the chain)
    python benchmarks/reachability.py --quick             # T = 1, 5 and 5,000 trajectories (a smoke test)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compile_scaling import chain_source

import nodedsl
from nodedsl.analysis import VerifyRequest, verify
from nodedsl.analysis.output import plot_tube
from nodedsl.analysis.sampling import boundary_samples, interior_samples
from nodedsl.solvers import make_solver, solve

STEP, SOLVER_STEP = 0.1, 0.05
VDP = """\
model VanDerPol {
    state x = 1.0
    state v = 0.0
    param mu = 1.0
    der(x) = v
    der(v) = mu * (1 - x^2) * v - x
}
"""


def chain_text() -> str:
    return chain_source(7).replace("hamiltonian = k * stretch^2 / 2", "hamiltonian = k * stretch^2 / 2 + stretch^4 / 4")


def trained_pendulum(epochs: int, run_dir: Path):
    from nodedsl.train import run_training, select_train

    prog = nodedsl.load(ROOT / "examples" / "pendulum.node")
    t0 = time.perf_counter()
    res = run_training(prog, select_train(prog, "Pendulum"), overrides={"epochs": str(epochs)}, run_dir=str(run_dir))
    print(
        f"trained Pendulum for {epochs} epochs in {time.perf_counter() - t0:.1f} s: {res.status}, "
        f"train loss {res.train_loss:.4g}",
        flush=True,
    )
    return prog


def monte_carlo(model, x0, radius, t, count, seed=11):
    """[K, count + count // 10] distances of Monte-Carlo trajectories from the centre trajectory."""
    g = torch.Generator().manual_seed(seed)
    n = len(x0)
    pts = torch.cat(
        [
            x0[None],
            x0 + interior_samples(n, count, radius, "2", g),
            x0 + boundary_samples(n, count // 10, radius, "2", g),
        ]
    )
    with torch.no_grad():
        ys = solve(model, pts, t, solver=make_solver("rk4", step=SOLVER_STEP)).ys
    return (ys[:, 1:] - ys[:, :1]).norm(dim=2).amax(dim=1).numpy(), ys[:, 1:201].numpy()


def run_case(name, prog, model_name, center, radius, horizons, mc, repeat, run=None, plot=None):
    torch.set_default_dtype(torch.float64)
    model = prog.model(model_name)
    if run is not None:
        from nodedsl.io.checkpoint import load_weights

        load_weights(run, model)
    model = model.double()
    base = dict(model=model_name, center=center, radius=radius, step=STEP, solver_step=SOLVER_STEP, run=run)
    probe = verify(prog, VerifyRequest(**base, t_end=1.0, samples=10, baseline=False))
    x0 = torch.as_tensor(probe.center[0])
    t_all = torch.linspace(0, max(horizons), round(max(horizons) / STEP) + 1)
    t0 = time.perf_counter()
    emp_all, trajs = monte_carlo(model, x0, radius, t_all, mc)
    print(
        f"{name}: {len(model.state_names)} states, Monte-Carlo {mc + mc // 10} trajectories to "
        f"T = {max(horizons):g} in {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    rows = []
    for T in horizons:
        go_times, gr_times = [], []
        for _ in range(repeat):
            a = time.perf_counter()
            tube = verify(prog, VerifyRequest(**base, t_end=T, baseline=False))
            b = time.perf_counter()
            gron = verify(prog, VerifyRequest(**base, t_end=T, method="lipschitz"))
            c = time.perf_counter()
            go_times.append(b - a)
            gr_times.append(c - b)
        emp = emp_all[: len(tube.times)]
        ratio = tube.radii[1:] / emp[1:]
        finite = np.isfinite(gron.radii)
        g_ratio = gron.radii[1:][finite[1:]] / emp[1:][finite[1:]]
        row = {
            "model": name,
            "T": T,
            "gotube_s": statistics.median(go_times),
            "gronwall_s": statistics.median(gr_times),
            "tightness": float(ratio.mean()),
            "max_ratio": float(ratio.max()),
            "min_ratio": float(ratio.min()),
            "escapes": int((emp > tube.radii * (1 + 1e-9)).sum()),
            "gronwall_tightness": float(g_ratio.mean()) if len(g_ratio) else float("inf"),
            "gronwall_infinite_from": float(tube.times[np.argmin(finite)]) if not finite.all() else None,
            "radius_end": float(tube.radii[-1]),
            "gronwall_end": float(gron.radii[-1]),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if plot is not None and T == 5:
            tube.baseline = gron.radii
            plot_tube(tube, plot, trajs[: len(tube.times)], emp)
    torch.set_default_dtype(torch.float32)
    return rows


def slope(rows, key):
    T = np.log([r["T"] for r in rows])
    return float(np.polyfit(T, np.log([r[key] for r in rows]), 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--mc", type=int, default=100_000)
    ap.add_argument("--mc-chain", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", default="vdp,pendulum,chain")
    ap.add_argument("--plot", default=str(ROOT / "docs" / "verification_tube.png"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    horizons = [1.0, 5.0] if args.quick else [1.0, 5.0, 10.0, 20.0]
    mc, mc_chain = (5000, 2000) if args.quick else (args.mc, args.mc_chain)
    rows = []
    only = args.only.split(",")
    if "vdp" in only:
        prog = nodedsl.loads(VDP, "vdp.node")
        rows += run_case(
            "Van der Pol",
            prog,
            "VanDerPol",
            ("x=1", "v=0.5"),
            0.05,
            horizons,
            mc,
            args.repeat,
            plot=None if args.quick else args.plot,
        )
    if "pendulum" in only:
        with tempfile.TemporaryDirectory() as tmp:
            prog = trained_pendulum(2 if args.quick else args.epochs, Path(tmp) / "run")
            rows += run_case(
                "pendulum hybrid (trained)",
                prog,
                "Pendulum",
                ("theta=0.5", "omega=0"),
                0.1,
                horizons,
                mc,
                args.repeat,
                run=str(Path(tmp) / "run"),
            )
    if "chain" in only:
        prog = nodedsl.loads(chain_text(), "chain.node")
        rows += run_case("20-state chain", prog, "Chain", (), 0.05, horizons, mc_chain, args.repeat)
    print(
        "\n| model | T | GoTube s | Gronwall s | tightness (mean radius / MC max) | max ratio | escapes | "
        "Gronwall tightness |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        gt = f"{r['gronwall_tightness']:.3g}"
        if r["gronwall_infinite_from"] is not None:
            gt += f" (infinite from t = {r['gronwall_infinite_from']:g})"
        print(
            f"| {r['model']} | {r['T']:g} | {r['gotube_s']:.2f} | {r['gronwall_s']:.2f} | {r['tightness']:.4f} | "
            f"{r['max_ratio']:.4f} | {r['escapes']} | {gt} |"
        )
    for name in dict.fromkeys(r["model"] for r in rows):
        sub = [r for r in rows if r["model"] == name]
        if len(sub) > 1:
            print(
                f"{name}: log-log slope of time vs T: GoTube {slope(sub, 'gotube_s'):.2f}, "
                f"Gronwall {slope(sub, 'gronwall_s'):.2f}"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
