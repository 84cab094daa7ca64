"""Training overhead: ``nodedsl``'s training loop vs a hand-written PyTorch + torchdiffeq loop.

Not a test: run it by hand and paste the table into docs/benchmarks.md.

    python benchmarks/train_overhead.py                    # 50 epochs, 3 runs each, 1 thread
    python benchmarks/train_overhead.py --epochs 50 --runs 3 --profile

Both loops train the SAME model on the SAME windows: the ``Pendulum`` of examples/pendulum.node
(gravity known, ``L`` learned positive through softplus, ``friction`` a [32, 32] tanh MLP, the
constraints ``at_rest: friction(0) == 0`` and ``dissipative: friction(w) * w >= 0 for w in [-6, 6]``)
with the example's train block (rk4 step 0.05, window 10, batch 64, Adam lr 3e-3, augmented
Lagrangian mu 1, growth 2, update every 20 epochs, 256 collocation samples, validation 0.2, seed 0).

* The data are nodedsl's own: the ``swings`` dataset simulated by ``load_training_data``, split by
  ``split_by_trajectory`` and cut by ``make_windows`` exactly as ``run_training`` does; both loops
  get the same ``Windows`` tensors.
* The hand-written model is an ``nn.Module`` with the same equation and an identical
  ``nn.Sequential``; its weights (and the raw ``L``) are copied from the freshly compiled model, so
  both start equal (asserted: same field at random states).
* The hand-written loop integrates with ``torchdiffeq.odeint(method="rk4",
  options=dict(step_size=0.05))``, uses the same minibatch size, Adam lr, epochs, the default
  shooting-horizon curriculum (``horizon = grow(start = 5, until = 0.5)``: segments of 5 steps during
  the first half of the epochs), the same penalty (the augmented-Lagrangian formulas of
  docs/training.md, with ``friction(0)`` for ``at_rest`` and 256 uniform collocation points for
  ``dissipative``), the same per-epoch statistics and multiplier / penalty update, and one
  validation pass per epoch, as ``fit`` does.
* nodedsl is timed through ``fit(model, wtrain, wval, cfg)`` (what ``run_training`` calls; data
  generation, compilation, the run directory and the final rollout evaluation are excluded), once
  without checkpoints and once with ``checkpoint_path`` as ``nodedsl train`` uses it (a checkpoint
  every 10 epochs and at the end).

Times are process CPU time (``time.process_time``; the machine is shared, and time spent
descheduled is nobody's overhead) with wall time alongside; the variants of a repeat run back to
back; medians over ``--runs`` repeats. ``--profile`` adds a cProfile of one ``fit`` call, grouped by
file:function.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torchdiffeq import odeint

import nodedsl
from nodedsl.data.loading import make_windows, split_by_trajectory
from nodedsl.frontend.config import apply_overrides, validate_train
from nodedsl.train import fit, select_train
from nodedsl.train.run import compiled_model, load_training_data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "pendulum.node"


# ------------------------------------------------------------------ the hand-written model
class HandPendulum(torch.nn.Module):
    """``der(theta) = omega``, ``der(omega) = -g / L sin(theta) + torque - friction(omega)``."""

    def __init__(self, g: float, L_raw: torch.Tensor, friction: torch.nn.Module) -> None:
        super().__init__()
        self.g = g
        self.L_raw = torch.nn.Parameter(L_raw.detach().clone())
        self.friction = torch.nn.Sequential(
            torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
        )
        self.friction.load_state_dict(friction.state_dict())
        self.torque = torch.zeros(1, 1)  # the input, constant over a batch (set before each solve)

    def L(self) -> torch.Tensor:
        return F.softplus(self.L_raw)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        theta, omega = x[:, :1], x[:, 1:]
        domega = -self.g / self.L() * torch.sin(theta) + self.torque - self.friction(omega)
        return torch.cat((omega, domega), 1)


def horizon(epoch: int, epochs: int, k: int, start: int = 5, until: float = 0.5) -> int:
    """The default curriculum of docs/training.md (``horizon = grow(start = 5, until = 0.5)``)."""
    progress = epoch / max(1.0, until * epochs)
    if k <= start or progress >= 1:
        return k
    target = start + (k - start) * progress
    return max(d for d in range(1, k + 1) if k % d == 0 and d <= max(target, 1))


def hand_train(
    f: HandPendulum,
    wtrain,
    wval,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    *,
    step: float = 0.05,
    mu0: float = 1.0,
    growth: float = 2.0,
    mu_max: float = 1e4,
    update_every: int = 20,
    tolerance: float = 1e-4,
    samples: int = 256,
) -> list[dict]:
    """A plain multiple-shooting loop with the augmented Lagrangian, written directly in torch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(f.parameters(), lr=lr)
    Y, U = wtrain.y, wtrain.u  # [W, K+1, 2] (theta, omega observed), [W, K+1, 1]
    grid = wtrain.t[0] - wtrain.t[0, 0]  # [K+1] local times, shared by every window
    K = grid.numel() - 1
    Yv, Uv = wval.y, wval.u
    W = Y.shape[0]
    lam_rest = torch.zeros(1)  # at_rest: friction(0) == 0         (equality)
    lam_diss = torch.zeros(1)  # dissipative: -w friction(w) <= 0  (inequality)
    mu, previous = mu0, None
    zero = torch.zeros(1, 1)
    opts = dict(step_size=step)
    history = []
    for epoch in range(epochs):
        h = horizon(epoch, epochs, K)
        sum_rest, n_rest, viol_rest = torch.zeros(1, dtype=torch.float64), 0, 0.0
        sum_diss, n_diss, viol_diss = torch.zeros(1, dtype=torch.float64), 0, 0.0
        total, count = 0.0, 0
        perm = torch.randperm(W, generator=gen)
        for i in range(0, W, batch):
            idx = perm[i : i + batch]
            y, u = Y[idx], U[idx]
            if h < K:  # segments of h steps, each from its observed first state
                y = torch.cat([y[:, j : j + h + 1] for j in range(0, K, h)])
                u = torch.cat([u[:, j : j + h + 1] for j in range(0, K, h)])
            f.torque = u[:, 0]
            ys = odeint(f, y[:, 0], grid[: h + 1], method="rk4", options=opts)  # [h+1, B, 2]
            data = (ys.transpose(0, 1) - y).pow(2).mean()
            r_rest = f.friction(zero)  # [1, 1]
            w = -6.0 + 12.0 * torch.rand(samples, 1, generator=gen, dtype=torch.float64).float()
            r_diss = -w * f.friction(w)  # [samples, 1]
            pen = (
                (lam_rest * r_rest).sum(-1).mean()
                + 0.5 * mu * r_rest.pow(2).sum(-1).mean()
                + ((torch.relu(lam_diss + mu * r_diss).pow(2) - lam_diss.pow(2)) / (2 * mu)).sum(-1).mean()
            )
            loss = data + pen
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                sum_rest += r_rest.double().sum(0)
                n_rest += 1
                viol_rest = max(viol_rest, float(r_rest.abs().max()))
                sum_diss += torch.relu(lam_diss.double() + mu * r_diss.double()).sum(0)
                n_diss += samples
                viol_diss = max(viol_diss, float(torch.relu(r_diss).max()))
            total += float(data.detach()) * len(idx)
            count += len(idx)
        with torch.no_grad():  # validation: whole windows
            f.torque = Uv[:, 0]
            ysv = odeint(f, Yv[:, 0], grid, method="rk4", options=opts)
            val = float((ysv.transpose(0, 1) - Yv).pow(2).mean())
        if (epoch + 1) % update_every == 0:
            lam_rest = lam_rest + mu * (sum_rest / n_rest).float()
            lam_diss = (sum_diss / n_diss).float().clamp_min(0.0)
            worst = max(viol_rest, viol_diss)
            if worst > tolerance and (previous is None or worst > 0.25 * previous):
                mu = min(mu * growth, mu_max)
            previous = worst
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / count,
                "val_loss": val,
                "mu": mu,
                "violations": {"at_rest": viol_rest, "dissipative": viol_diss},
            }
        )
    return history


# ------------------------------------------------------------------ setup and timing
def setup(epochs: int):
    prog = nodedsl.load(str(EXAMPLE))
    block = select_train(prog, "Pendulum")
    cfg, diags = validate_train(block)
    assert cfg is not None, diags
    cfg = apply_overrides(cfg, {"epochs": str(epochs)})
    model = compiled_model(prog, "Pendulum", cfg.seed)
    traj, _ = load_training_data(prog, cfg, model, EXAMPLE.parent)
    train, val = split_by_trajectory(traj, cfg.validation, cfg.seed)
    wtrain, wval = make_windows(train, cfg.window), make_windows(val, cfg.window)
    return prog, cfg, wtrain, wval


def fresh_pair(prog, cfg):
    model = compiled_model(prog, "Pendulum", cfg.seed)
    hand = HandPendulum(float(model.known__g), model.learned["L"], model.nets["friction"])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 2, generator=g) * 2
    u = torch.randn(64, 1, generator=g)
    hand.torque = u
    with torch.no_grad():
        assert torch.allclose(model.field(torch.tensor(0.0), x, u), hand(torch.tensor(0.0), x), atol=1e-5), (
            "hand-written field differs from the compiled one"
        )
    return model, hand


def timed(fn):
    gc.collect()
    gc.disable()
    try:
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        return time.process_time() - c0, time.perf_counter() - w0, out
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="cProfile one nodedsl fit (grouped by file:function)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    prog, cfg, wtrain, wval = setup(args.epochs)
    al = cfg.constraints
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {len(wtrain)} training windows, "
        f"{len(wval)} validation windows, window {cfg.window}, batch {cfg.batch}, lr {cfg.optimizer.lr}, "
        f"{args.epochs} epochs, AL mu {al.mu} growth {al.growth} every {al.update_every} "
        f"samples {al.samples}, horizon {cfg.horizon.kind}"
    )

    # warm-up (first-call costs: allocator, fx, torchdiffeq imports)
    m, h = fresh_pair(prog, cfg)
    small = apply_overrides(cfg, {"epochs": "2"})
    fit(m, wtrain, wval, small, threads=args.threads)
    hand_train(h, wtrain, wval, 2, cfg.batch, cfg.optimizer.lr, cfg.seed)

    rows = {"nodedsl fit": [], "nodedsl fit + checkpoints": [], "hand-written": []}
    finals = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.runs):
            model, hand = fresh_pair(prog, cfg)
            cpu, wall, res = timed(lambda: fit(model, wtrain, wval, cfg, threads=args.threads))
            rows["nodedsl fit"].append((cpu, wall))
            finals["nodedsl fit"] = (res.parameters["L"], res.train_loss, res.val_loss)

            model2, _ = fresh_pair(prog, cfg)
            ck = Path(tmp) / f"ck{r}.pt"
            cpu, wall, res2 = timed(lambda: fit(model2, wtrain, wval, cfg, threads=args.threads, checkpoint_path=ck))
            rows["nodedsl fit + checkpoints"].append((cpu, wall))
            finals["nodedsl fit + checkpoints"] = (res2.parameters["L"], res2.train_loss, res2.val_loss)

            cpu, wall, hist = timed(
                lambda: hand_train(hand, wtrain, wval, args.epochs, cfg.batch, cfg.optimizer.lr, cfg.seed)
            )
            rows["hand-written"].append((cpu, wall))
            finals["hand-written"] = (float(hand.L().detach()), hist[-1]["train_loss"], hist[-1]["val_loss"])
            print(
                f"run {r + 1}: "
                + ", ".join(f"{k} {v[-1][0] / args.epochs * 1e3:.1f} ms/epoch" for k, v in rows.items()),
                flush=True,
            )

    base_cpu = statistics.median(c for c, _ in rows["hand-written"])
    base_wall = statistics.median(w for _, w in rows["hand-written"])
    print()
    print(
        "| loop | CPU ms/epoch (median) | wall ms/epoch (median) | runs (CPU ms/epoch) | ratio to hand-written "
        "(CPU) | ratio (wall) | final L | final train loss | final val loss |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for name, vals in rows.items():
        cpu = statistics.median(c for c, _ in vals)
        wall = statistics.median(w for _, w in vals)
        L, tl, vl = finals[name]
        L = L[0] if isinstance(L, (list, tuple)) else L
        print(
            f"| {name} | {cpu / args.epochs * 1e3:.1f} | {wall / args.epochs * 1e3:.1f} | "
            + ", ".join(f"{c / args.epochs * 1e3:.1f}" for c, _ in vals)
            + f" | {cpu / base_cpu:.2f} | {wall / base_wall:.2f} | {L:.4f} | {tl:.3g} | {vl:.3g} |"
        )
    ratio = statistics.median(c for c, _ in rows["nodedsl fit"]) / base_cpu
    print(
        f"\nratio nodedsl/hand-written (fit, CPU time): {ratio:.2f}  (target <= 1.5: "
        f"{'met' if ratio <= 1.5 else 'MISSED'})"
    )

    if args.profile:
        model, _ = fresh_pair(prog, cfg)
        prof = cProfile.Profile()
        prof.enable()
        fit(model, wtrain, wval, cfg, threads=args.threads)
        prof.disable()
        report(prof)


def report(prof: cProfile.Profile, top: int = 30) -> None:
    """Self time (tottime) and cumulative time per file:function, as shares of the whole fit."""
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = max(v[3] for v in stats.stats.values())  # the largest cumulative time: the fit call
    entries = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        name = file
        for marker in ("/nodedsl/", "/torch/", "/torchdiffeq/"):
            if marker in file:
                name = marker.strip("/") + "/" + file.split(marker, 1)[1]
                break
        entries.append((f"{name}:{line}:{func}", nc, tt, ct))
    print(f"\ncProfile of one fit ({total:.2f} s cumulative under cProfile)")
    print("\nby cumulative time:")
    print("| function | calls | cumulative s | share |")
    print("|---|---:|---:|---:|")
    for name, nc, tt, ct in sorted(entries, key=lambda e: -e[3])[:top]:
        print(f"| {name} | {nc} | {ct:.3f} | {ct / total:.1%} |")
    print("\nby self time:")
    print("| function | calls | self s | share |")
    print("|---|---:|---:|---:|")
    for name, nc, tt, ct in sorted(entries, key=lambda e: -e[2])[:top]:
        print(f"| {name} | {nc} | {tt:.3f} | {tt / total:.1%} |")


if __name__ == "__main__":
    main()
