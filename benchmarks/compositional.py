"""Compositional learning: train one body alone, couple learned copies textually, never see the composite.

The seed experiment of compositional port-Hamiltonian networks (Neary & Topcu, 2023), reproduced with the
language on CPU:

1. **Single body.** The truth is ``MassSpringDamperTruth`` of examples/msd.node: a nonlinear spring
   ``H = p^2/2m + k q^2/2 + 0.5 q^4`` and nonlinear damping ``R = c + 0.1 p^2``. ``MassSpringDamper``
   (a net ``V(q)`` in ``H``, a softplus net ``damping(p)`` in ``R``, known ``m`` and force port) is
   trained on *single-body* trajectories only (``run_training``: the run directory ``runs/single``).
2. **Composed.** A chain of N learned bodies joined by known springs (``mech.Spring(k = 1.5)``) with the
   known interconnection of examples/two_masses.node, written as a ``.node`` composite whose bodies say
   ``sub bJ = MassSpringDamper(m = 1.0) weights "runs/single"``. No composite data is used.
3. **From scratch.** The same composite without ``weights`` (same nets, same size), trained on 1, 5, 10
   and 50 trajectories of the true composite with the same epoch budget and seed.

Every model is rolled out from held-out composite initial states (16, never used in training) over a
fixed horizon, and its RMSE against the true composite (the same chain built from truth bodies) is
reported. Prints a table, writes ``docs/compositional.png`` and a JSON of the numbers.

    python benchmarks/compositional.py                 # full: 2-body sweep + 10-body at 10 trajectories
    python benchmarks/compositional.py --quick         # fewer epochs, 2-body only (smoke test)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nodedsl
from nodedsl.data.synth import generate
from nodedsl.frontend.config import validate_dataset
from nodedsl.solvers import make_solver, solve
from nodedsl.train import run_training, select_train
from nodedsl.train.coupling import coupling_matrix

DT = 0.05
SPRING_K = 1.5

SINGLE = """\
import "msd.node"

# single-body data only: the truth mass-spring-damper of msd.node, free oscillations
dataset single {{
    model = MassSpringDamperTruth
    trajectories = {traj}
    time = span(0, 6, step = {dt})
    initial = {{ q = uniform(-1.5, 1.5), p = uniform(-1.5, 1.5) }}
    seed = 1
}}

dataset single_test {{
    model = MassSpringDamperTruth
    trajectories = 16
    time = span(0, 6, step = {dt})
    initial = {{ q = uniform(-1.5, 1.5), p = uniform(-1.5, 1.5) }}
    seed = 77
}}

train MassSpringDamper {{
    data = single
    solver = rk4(step = {dt})
    window = 20
    epochs = {epochs}
    optimizer = adam(lr = 1e-2)
    schedule = cosine(min_lr = 1e-4)
    validation = 0
    seed = 0
}}
"""


def chain_text(n: int, epochs: int, sizes: list[int], horizon: float, test_traj: int) -> str:
    """A chain of ``n`` bodies and ``n - 1`` springs: truth, composed (weights), scratch; datasets."""
    ports = [f"b{i}.force" for i in range(n)] + [f"s{j}.ends" for j in range(n - 1)]
    k = n + 2 * (n - 1)  # port components: one per body, two per spring
    C = [[0] * k for _ in range(k)]
    for j in range(n - 1):  # spring j: end 0 on body j, end 1 on body j + 1 (as in two_masses.node)
        for end, body in ((0, j), (1, j + 1)):
            e = n + 2 * j + end
            C[body][e], C[e][body] = -1, 1
    matrix = "[" + ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in C) + "]"

    def model(name: str, body: str, weights: bool) -> str:
        lines = [f"model {name} : port_hamiltonian {{"]
        w = ' weights "runs/single"' if weights else ""
        lines += [f"    sub b{i} = {body}(m = 1.0){w}" for i in range(n)]
        lines += [f"    sub s{j} = mech.Spring(k = {SPRING_K})" for j in range(n - 1)]
        lines += [f"    couple [{', '.join(ports)}] C = {matrix}", "}"]
        return "\n".join(lines)

    init = ", ".join(
        [f"b{i}.q = uniform(-1, 1), b{i}.p = uniform(-1, 1)" for i in range(n)]
        + [f"s{j}.stretch = uniform(-0.5, 0.5)" for j in range(n - 1)]
    )
    parts = [
        'import "msd.node"',
        'import "mechanics" as mech',
        "",
        model("ChainTruth", "MassSpringDamperTruth", False),
        "",
        model("ChainComposed", "MassSpringDamper", True),
        "",
        model("ChainScratch", "MassSpringDamper", False),
        "",
        model("ChainComposedLearnedC", "MassSpringDamper", True).replace(f"C = {matrix}", "C = learn skew"),
        "",
    ]
    for size in sizes:
        parts.append(
            f"dataset coupled_{size} {{\n    model = ChainTruth\n    trajectories = {size}\n"
            f"    time = span(0, 6, step = {DT})\n    initial = {{ {init} }}\n    seed = 10\n}}\n"
        )
    parts.append(
        f"dataset held_out {{\n    model = ChainTruth\n    trajectories = {test_traj}\n"
        f"    time = span(0, {horizon}, step = {DT})\n    initial = {{ {init} }}\n    seed = 99\n}}\n"
    )
    parts.append(
        f"train ChainScratch {{\n    data = coupled_{sizes[0]}\n    solver = rk4(step = {DT})\n"
        f"    window = 20\n    epochs = {epochs}\n    optimizer = adam(lr = 1e-2)\n"
        f"    schedule = cosine(min_lr = 1e-4)\n    validation = 0\n    seed = 0\n}}\n"
    )
    parts.append(
        f"train ChainComposedLearnedC {{\n    data = coupled_{sizes[0]}\n    solver = rk4(step = {DT})\n"
        f"    window = 20\n    coupling = least_squares\n    validation = 0\n}}\n"
    )
    return "\n".join(parts)


def _dataset(prog, name: str):
    cfg, diags = validate_dataset(prog.dataset(name))
    assert cfg is not None, diags
    torch.manual_seed(cfg.seed)
    return generate(prog.model(cfg.model), cfg)


def rollout_rmse(model, data) -> float:
    """RMSE over every state and time of rollouts from the held-out initial states (rk4, training step)."""
    x = data.x  # [N, T, n] true states
    grid = data.t[0] - data.t[0, 0]
    with torch.no_grad():
        ys = solve(model, x[:, 0], grid.to(x.dtype), solver=make_solver("rk4", step=DT)).ys.transpose(0, 1)
    err = (ys - x).pow(2).mean()
    return float(err.sqrt()) if bool(torch.isfinite(err)) else float("inf")


def _seeded_model(prog, name: str, seed: int = 0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return prog.model(name)


def run(args) -> dict:
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "msd.node", work / "msd.node")
    (work / "single.node").write_text(SINGLE.format(traj=args.single_traj, dt=DT, epochs=args.epochs))
    log = print if not args.quiet else (lambda *a, **k: None)
    results: dict = {
        "epochs": args.epochs,
        "horizon": args.horizon,
        "single_trajectories": args.single_traj,
        "dt": DT,
        "work": str(work),
    }

    # 1. the single body, alone
    t0 = time.perf_counter()
    single = nodedsl.load(work / "single.node")
    res = run_training(single, select_train(single), run_dir=work / "runs" / "single")
    body = _seeded_model(single, "MassSpringDamper")
    nodedsl.train.load_weights(work / "runs" / "single", body)
    results["single"] = {
        "train_seconds": time.perf_counter() - t0,
        "train_loss": res.train_loss,
        "test_rmse": rollout_rmse(body, _dataset(single, "single_test")),
    }
    log(
        f"single body: {results['single']['train_seconds']:.0f} s, loss {res.train_loss:.2e}, held-out "
        f"single-body rollout RMSE {results['single']['test_rmse']:.4f}"
    )

    for n, sizes in ((2, args.sizes), (10, args.sizes_10)):
        if not sizes:
            continue
        path = work / f"chain{n}.node"
        all_sizes = sorted(set(sizes) | set(args.learned_c))
        path.write_text(chain_text(n, args.epochs, all_sizes, args.horizon, args.test_traj))
        prog = nodedsl.load(path)
        held = _dataset(prog, "held_out")
        entry = {"states": len(prog.model("ChainTruth").state_names)}
        entry["truth_rk4_rmse"] = rollout_rmse(prog.model("ChainTruth"), held)  # discretization floor
        composed = prog.model("ChainComposed")  # loads runs/single into every body
        entry["composed_rmse"] = rollout_rmse(composed, held)
        entry["zero_rmse"] = float(held.x.pow(2).mean().sqrt())  # predicting the rest state
        log(
            f"{n} bodies ({entry['states']} states): composed RMSE {entry['composed_rmse']:.4f} "
            f"(truth with rk4 {entry['truth_rk4_rmse']:.1e}, predicting zero {entry['zero_rmse']:.3f})"
        )
        entry["learned_c"] = {}
        for size in args.learned_c:  # trained bodies; the interconnection estimated by least squares
            t1 = time.perf_counter()
            r = run_training(
                prog,
                select_train(prog, "ChainComposedLearnedC"),
                overrides={"data": f"coupled_{size}"},
                run_dir=work / "runs" / f"learned_c{n}_{size}",
            )
            learned_c = _seeded_model(prog, "ChainComposedLearnedC")
            nodedsl.train.load_weights(work / "runs" / f"learned_c{n}_{size}", learned_c)
            tj = np.array(coupling_matrix(prog.system("ChainTruth")), dtype=float)
            ej = np.array(coupling_matrix(prog.system("ChainComposedLearnedC"), r.parameters), dtype=float)
            c = r.extra["coupling"]
            lc = entry["learned_c"][size] = {
                "rmse": rollout_rmse(learned_c, held),
                "seconds": time.perf_counter() - t1,
                "gcg_rel_error": float(np.linalg.norm(ej - tj) / np.linalg.norm(tj)),
                "rank": c["rank"],
                "n_params": c["n_params"],
                "gradient_training": c["gradient_training"],
            }
            log(
                f"  composed + C by least squares from {size} composite trajectory(ies): RMSE {lc['rmse']:.4f}, "
                f"G C G^T within {100 * lc['gcg_rel_error']:.2f}% (rank {lc['rank']} of {lc['n_params']} entries), "
                f"{lc['seconds']:.0f} s"
            )
        entry["scratch"] = {}
        for size in sizes:
            t1 = time.perf_counter()
            r = run_training(
                prog,
                select_train(prog, "ChainScratch"),
                overrides={"data": f"coupled_{size}"},
                run_dir=work / "runs" / f"scratch{n}_{size}",
            )
            scratch = _seeded_model(prog, "ChainScratch")
            nodedsl.train.load_weights(work / "runs" / f"scratch{n}_{size}", scratch)
            rmse = rollout_rmse(scratch, held)
            entry["scratch"][size] = {
                "rmse": rmse,
                "train_seconds": time.perf_counter() - t1,
                "train_loss": r.train_loss,
                "status": r.status,
            }
            log(
                f"  scratch on {size:>2} composite trajectories: RMSE {rmse:.4f} "
                f"({entry['scratch'][size]['train_seconds']:.0f} s, loss {r.train_loss:.2e})"
            )
        results[f"{n}_bodies"] = entry
    results["total_seconds"] = time.perf_counter() - t0
    return results


def table(results: dict) -> str:
    lines = [
        f"rollout RMSE over {results['horizon']:g} s on held-out composite initial states "
        f"({results['epochs']} epochs for every training run)",
        "",
        "| bodies | model | composite trajectories in training | rollout RMSE | train time |",
        "|---|---|---|---|---|",
    ]
    s = results["single"]
    for n in (2, 10):
        e = results.get(f"{n}_bodies")
        if not e:
            continue
        lines.append(
            f"| {n} | composed (`weights`) | 0 ({results['single_trajectories']} single-body) | "
            f"{e['composed_rmse']:.4f} | {s['train_seconds']:.0f} s (once) |"
        )
        for size, lc in e.get("learned_c", {}).items():
            lines.append(
                f"| {n} | composed, `C = learn skew` by least squares (G C G^T error "
                f"{100 * lc['gcg_rel_error']:.2g}%, rank {lc['rank']}/{lc['n_params']}) | "
                f"{size} (for C only) | {lc['rmse']:.4f} | {lc['seconds']:.0f} s |"
            )
        for size, v in e["scratch"].items():
            lines.append(f"| {n} | from scratch | {size} | {v['rmse']:.4f} | {v['train_seconds']:.0f} s |")
        lines.append(f"| {n} | (truth, rk4 step {results['dt']}) | - | {e['truth_rk4_rmse']:.1e} | - |")
        lines.append(f"| {n} | (predict zero) | - | {e['zero_rmse']:.3f} | - |")
    return "\n".join(lines)


def plot(results: dict, out: Path) -> None:
    from nodedsl.plots.training import new_figure

    fig = new_figure((6.4, 4.4))
    ax = fig.subplots()
    for n, color in ((2, "C0"), (10, "C3")):
        e = results.get(f"{n}_bodies")
        if not e:
            continue
        sizes = sorted(int(k) for k in e["scratch"])
        ax.plot(
            sizes,
            [e["scratch"][k]["rmse"] for k in sizes],
            "o-",
            color=color,
            label=f"{n} bodies, trained from scratch on composite data",
        )
        ax.axhline(
            e["composed_rmse"],
            color=color,
            ls="--",
            label=f"{n} bodies, composed from the single-body run (no composite data)",
        )
        lc = e.get("learned_c") or {}
        if lc:
            ks = sorted(int(k) for k in lc)
            ax.plot(
                ks,
                [lc[k]["rmse"] for k in ks],
                "x",
                color=color,
                ms=9,
                mew=2,
                label=f"{n} bodies, composed, C = learn skew by least squares",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("composite trajectories used for training")
    ax.set_ylabel(f"rollout RMSE over {results['horizon']:g} s (held out)")
    ax.set_title("compositional learning: mass-spring-damper chains")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--single-traj", type=int, default=24)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1, 5, 10, 50])
    ap.add_argument("--sizes-10", type=int, nargs="*", default=[1, 5, 10])
    ap.add_argument(
        "--learned-c",
        type=int,
        nargs="*",
        default=[1, 10],
        help="composite trajectories for the least-squares estimate of a learned C (none: skip)",
    )
    ap.add_argument("--horizon", type=float, default=5.0)
    ap.add_argument("--test-traj", type=int, default=16)
    ap.add_argument("--plot", default=str(ROOT / "docs" / "compositional.png"))
    ap.add_argument("--json", default=None, help="also write the numbers here")
    ap.add_argument("--work", default=None, help="working folder (default: a fresh temporary one)")
    ap.add_argument("--quick", action="store_true", help="10 epochs, 2 bodies, sizes 1 and 10")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--from-json", default=None, help="redraw the table and plot from a --json file; no training")
    args = ap.parse_args()
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        for n in (2, 10):  # JSON keys are strings
            e = results.get(f"{n}_bodies") or {}
            for key in ("scratch", "learned_c"):
                if key in e:
                    e[key] = {int(k): v for k, v in e[key].items()}
        print(table(results))
        if args.plot:
            plot(results, Path(args.plot))
        return
    if args.quick:
        args.epochs, args.sizes, args.sizes_10, args.learned_c = 10, [1, 10], [], [1]
    own = args.work is None  # a temporary folder of our own is removed at the end (--work keeps the runs)
    if own:
        args.work = tempfile.mkdtemp(prefix="nodedsl_compositional_")
    try:
        results = run(args)
    finally:
        if own:
            shutil.rmtree(args.work, ignore_errors=True)
    print()
    print(table(results))
    print(f"\ntotal {results['total_seconds']:.0f} s")
    if args.plot:
        plot(results, Path(args.plot))
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
