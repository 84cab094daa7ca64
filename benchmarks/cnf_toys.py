"""Continuous normalizing flows on two 2-D toy densities: test NLL against a Gaussian mixture (EM in
numpy, full covariances) and a Gaussian KDE (scipy, Scott's bandwidth) fitted to the same samples.

Not a test: run it by hand and paste the table into docs/benchmarks.md; it also draws docs/flows.png.

    python benchmarks/cnf_toys.py                      # ~ a few CPU minutes on 1 thread
    python benchmarks/cnf_toys.py --epochs 20 --no-plot

Data: two moons (noise 0.1) and a ring of 8 Gaussians (radius 2, std 0.15), 1000 training and 2000 test
samples each (seeded). The flow: ``der(a, b) = f(a, b, t)``, an MLP 32x32 tanh with time as an input,
``objective = density(trace = exact, steps = 6)`` over t in [0, 1], Adam 1e-2 with a cosine schedule,
batch 250, through ``nodedsl.train.density_run.fit_density`` (what ``nodedsl train`` runs). Test NLL is
in nats per point (lower is better).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from scipy.special import logsumexp
from scipy.stats import gaussian_kde

import nodedsl
from nodedsl.frontend.config import validate_train
from nodedsl.train.density import log_likelihood, sample
from nodedsl.train.density_run import fit_density, mean_nll
from nodedsl.train.inputs import compiled_model

SRC = """
model Flow {
    state a = 0
    state b = 0
    net f(a, b, t) -> 2 { hidden = [32, 32], activation = tanh }
    der(a) = f(a, b, t)[0]
    der(b) = f(a, b, t)[1]
}
train Flow {
    data = "points.csv"
    objective = density(trace = exact, steps = 6)
    epochs = EPOCHS
    batch = 250
    optimizer = adam(lr = 1e-2)
    schedule = cosine(min_lr = 1e-4)
}
"""


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0, math.pi, n)
    lab = rng.integers(0, 2, n)
    x = np.where(lab == 0, np.cos(a), 1 - np.cos(a)) - 0.5
    y = np.where(lab == 0, np.sin(a), 0.5 - np.sin(a)) - 0.25
    return np.stack([x, y], 1) * 1.5 + rng.normal(size=(n, 2)) * 0.1


def ring8(n: int, rng: np.random.Generator) -> np.ndarray:
    k = rng.integers(0, 8, n) * (2 * math.pi / 8)
    return 2 * np.stack([np.cos(k), np.sin(k)], 1) + rng.normal(size=(n, 2)) * 0.15


def gmm_nll(train: np.ndarray, test: np.ndarray, k: int, seed: int = 0, iters: int = 200) -> float:
    """Test NLL of a k-component full-covariance Gaussian mixture fitted by EM (k-means++-style start)."""
    rng = np.random.default_rng(seed)
    n, d = train.shape
    mu = train[rng.choice(n, k, replace=False)]
    cov = np.repeat(np.cov(train.T)[None] * 0.1, k, 0)
    w = np.full(k, 1 / k)

    def logpdf(x):
        out = np.empty((x.shape[0], k))
        for j in range(k):
            c = cov[j] + 1e-6 * np.eye(d)
            diff = x - mu[j]
            sol = np.linalg.solve(c, diff.T).T
            out[:, j] = -0.5 * (diff * sol).sum(1) - 0.5 * np.linalg.slogdet(c)[1] - 0.5 * d * math.log(2 * math.pi)
        return out + np.log(w)

    for _ in range(iters):
        lp = logpdf(train)
        r = np.exp(lp - logsumexp(lp, axis=1, keepdims=True))
        nk = r.sum(0) + 1e-12
        w = nk / n
        mu = (r.T @ train) / nk[:, None]
        for j in range(k):
            diff = train - mu[j]
            cov[j] = (r[:, j, None] * diff).T @ diff / nk[j]
    return float(-logsumexp(logpdf(test), axis=1).mean())


def train_flow(train: np.ndarray, epochs: int, seed: int):
    prog = nodedsl.loads(SRC.replace("EPOCHS", str(epochs)))
    cfg = validate_train(prog.trains[0])[0].model_copy(update={"seed": seed})
    model = compiled_model(prog, "Flow", seed).double()
    started = time.perf_counter()
    fit_density(model, torch.tensor(train), None, cfg)
    return model, cfg, time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    results, flows = {}, {}
    for name, gen in (("two moons", moons), ("ring of 8 Gaussians", ring8)):
        train, test = gen(1000, rng), gen(2000, rng)
        model, cfg, wall = train_flow(train, args.epochs, args.seed)
        flows[name] = (model, cfg, train)
        nll = mean_nll(model, torch.tensor(test), cfg.objective, 0)
        kde = float(-np.log(gaussian_kde(train.T)(test.T)).mean())
        results[name] = {
            "flow": nll,
            "wall": wall,
            "kde": kde,
            **{f"gmm{k}": gmm_nll(train, test, k) for k in (4, 8, 16)},
        }
    print(f"test NLL, nats per point (2000 test samples), flow trained {args.epochs} epochs")
    print("| density | CNF (exact trace) | GMM k=4 | GMM k=8 | GMM k=16 | KDE (Scott) | CNF train s |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['flow']:.3f} | {r['gmm4']:.3f} | {r['gmm8']:.3f} | {r['gmm16']:.3f} | {r['kde']:.3f} | "
            f"{r['wall']:.0f} |"
        )
    if not args.no_plot:
        plot(flows, "docs/flows.png")


def plot(flows: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(10, 6.6))
    for row, (name, (model, cfg, train)) in enumerate(flows.items()):
        g = np.linspace(-3.2, 3.2, 90)
        xx, yy = np.meshgrid(g, g)
        grid = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1))
        lp = log_likelihood(model, grid, cfg.objective).numpy().reshape(xx.shape)
        s = sample(model, 2000, cfg.objective, seed=1).numpy()
        axes[row, 0].scatter(train[:, 0], train[:, 1], s=2, color="k")
        axes[row, 1].pcolormesh(xx, yy, np.exp(lp), shading="auto", cmap="viridis")
        axes[row, 2].scatter(s[:, 0], s[:, 1], s=2, color="tab:blue")
        for ax, title in zip(axes[row], ("training samples", "CNF density", "CNF samples (nodedsl sample)")):
            ax.set_title(f"{name}: {title}", fontsize=9)
            ax.set_xlim(-3.2, 3.2)
            ax.set_ylim(-3.2, 3.2)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
