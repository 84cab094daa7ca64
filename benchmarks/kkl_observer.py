"""KKL observers for Van der Pol and the reverse Duffing oscillator, first state measured.

Trains each observer as `nodedsl train FILE --observer NAME` does (train/observer.py), then on 20
held-out trajectories (new initial states from the same box) reports the estimate's RMSE after the
transient, t > 5 / |slowest pole|, as a percentage of the state range (per state, and the worst).
Then the speed/robustness trade-off: two pole sets trained and run on measurements with noise std 0.01,
reporting the settle time, the RMSE after it, and the time until the running error first stays under
5% of the range. Writes docs/observers_tradeoff.png.

    python benchmarks/kkl_observer.py            # all; ~minutes on 2 shared cores
    python benchmarks/kkl_observer.py --quick    # fewer epochs
"""

from __future__ import annotations

import argparse
import time

import torch

import nodedsl
from nodedsl.train.observer import build_observer, sample_initial, simulate_pairs, train_observer

SRC = """
model VanDerPol {
    state x1 = 1.0
    state x2 = 0.0
    param mu = 1.0
    der(x1) = x2
    der(x2) = mu * (1 - x1^2) * x2 - x1
}
model ReverseDuffing {
    state x1 = 1.0
    state x2 = 0.0
    der(x1) = x2^3
    der(x2) = -x1
}
observer VdP for VanDerPol {
    measure y = x1
    kind = kkl(dim = 5, poles = [-1, -1.5, -2, -2.5, -3])
    net T_inv(z[5]) -> 2 { hidden = [64, 64] }
    initial = { x1 = uniform(-2.5, 2.5), x2 = uniform(-3, 3) }
    trajectories = 200
    time = 15
    EPOCHS
}
observer Duffing for ReverseDuffing {
    measure y = x1
    kind = kkl(dim = 3, poles = [-1, -2, -3])
    net T_inv(z[3]) -> 2 { hidden = [64, 64] }
    initial = { x1 = uniform(-1, 1), x2 = uniform(-1, 1) }
    trajectories = 200
    time = 15
    EPOCHS
}
observer VdPFast for VanDerPol {
    measure y = x1
    kind = kkl(dim = 5, poles = [-5, -7.5, -10, -12.5, -15])
    net T_inv(z[5]) -> 2 { hidden = [64, 64] }
    initial = { x1 = uniform(-2.5, 2.5), x2 = uniform(-3, 3) }
    trajectories = 200
    time = 11
    EPOCHS
}
"""


def held_out(observer, noise: float, seed: int = 1):
    """(x [20, T, 2], estimate, t) on 20 new trajectories, measurements with noise std ``noise``."""
    tr = observer.spec.training
    g = torch.Generator().manual_seed(1000 + seed)
    dt = float(tr.get("step", 0.01))
    steps = int(round(float(tr["time"]) / dt))
    x = simulate_pairs(observer, sample_initial(observer.spec, 20, g, torch.float32), steps, dt)
    y = observer.h(x)
    y = y + noise * torch.randn(y.shape, generator=g)
    with torch.no_grad():
        est = observer.estimate(y, dt)
    return x, est, torch.arange(steps + 1) * dt


def rmse_after(x, est, t, after: float):
    keep = t > after
    span = (x.amax(dim=(0, 1)) - x.amin(dim=(0, 1))).clamp_min(1e-9)
    err = (est[:, keep] - x[:, keep]).pow(2).mean(dim=(0, 1)).sqrt()
    return (100 * err / span).tolist()


def time_to(x, est, t, level: float = 5.0):
    """The first time after which the running RMSE over the 20 trajectories stays under ``level``% of range."""
    span = (x.amax(dim=(0, 1)) - x.amin(dim=(0, 1))).clamp_min(1e-9)
    rel = 100 * ((est - x).pow(2).mean(dim=0).sqrt() / span).amax(dim=-1)  # [T]
    bad = (rel >= level).nonzero()
    return (
        float(t[int(bad[-1]) + 1])
        if len(bad) and int(bad[-1]) + 1 < len(t)
        else (0.0 if not len(bad) else float("inf"))
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    epochs = 60 if args.quick else 300
    prog = nodedsl.loads(SRC.replace("EPOCHS", f"epochs = {epochs}"), "kkl.node")
    results = {}
    for name in ("VdP", "Duffing", "VdPFast"):
        torch.manual_seed(0)
        obs = build_observer(prog, prog.checked.configs[f"observer {name}"])
        started = time.perf_counter()
        summary = train_observer(obs)
        wall = time.perf_counter() - started
        results[name] = obs
        x, est, t = held_out(obs, 0.0)
        pct = rmse_after(x, est, t, obs.settle_time())
        print(
            f"{name}: trained in {wall:.0f} s (loss {summary['loss']:.2e}); held-out RMSE after t > "
            f"{obs.settle_time():.2f}: x1 {pct[0]:.2f}%, x2 {pct[1]:.2f}% of range"
        )
    print(
        "\nnoise std 0.01 on y (Van der Pol): | poles | settle 5/|slowest| | RMSE after settle (x1, x2) | time to < 5% |"
    )
    curves = {}
    for name in ("VdP", "VdPFast"):
        obs = results[name]
        x, est, t = held_out(obs, 0.01)
        pct = rmse_after(x, est, t, obs.settle_time())
        clean = held_out(obs, 0.0)
        print(
            f"| {[round(p, 2) for p in obs.poles.tolist()]} | {obs.settle_time():.2f} s | "
            f"{pct[0]:.2f}%, {pct[1]:.2f}% | {time_to(x, est, t):.2f} s (noise-free {time_to(*clean):.2f} s) |"
        )
        curves[name] = (t, ((est - x).pow(2).mean(dim=0).sqrt()[:, 1]))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.2))
        for name, (t, e) in curves.items():
            poles = results[name].poles
            ax.semilogy(t, e, label=f"poles {float(poles.max()):.0f}..{float(poles.min()):.0f}")
        ax.set_xlabel("t")
        ax.set_ylabel("RMSE of x2 estimate (20 runs)")
        ax.set_title("KKL on Van der Pol, measurement noise std 0.01")
        ax.legend()
        fig.tight_layout()
        fig.savefig("docs/observers_tradeoff.png", dpi=110)
        print("wrote docs/observers_tradeoff.png")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
