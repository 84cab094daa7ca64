"""Pre-train the neural differential operator (reproducible: seeded, CPU, about a minute on one core).

    python -m nodedsl.train.ndo_pretrain -o nodedsl/train/ndo_operator.safetensors

The library: functions on the window's unit interval and their exact derivatives, drawn from
polynomials (degree 1-5), sinusoids (up to 3 cycles per window), exponentials (rates in [-5, 5]),
damped sinusoids, and random sums of two or three of these. Half the windows get Gaussian noise (up to
5% of their standard deviation) on the samples, never on the target, so the operator also smooths.

Example:
    >>> t, y, d = basis_library(4, np.random.default_rng(0))
    >>> fd = np.gradient(y[0], t, edge_order=2)  # window 0 is clean (odd windows are noisy)
    >>> y.shape, d.shape, bool(np.abs(fd - d[0]).max() < 0.1 * np.abs(d[0]).max())
    ((4, 16), (4, 16), True)
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from .ndo import WINDOW, NdoNet, normalize

__all__ = ["basis_library", "held_out_error", "pretrain"]


def _one(kind: int, tau: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One basis function and its derivative on ``tau``."""
    if kind == 0:  # polynomial around a random centre
        c = rng.uniform(0, 1)
        coef = rng.normal(size=rng.integers(2, 7))
        p = np.polynomial.Polynomial(coef)
        return p(tau - c), p.deriv()(tau - c)
    if kind == 1:  # sinusoid
        w, ph, a = 2 * math.pi * rng.uniform(0.05, 3.0), rng.uniform(0, 2 * math.pi), rng.normal()
        return a * np.sin(w * tau + ph), a * w * np.cos(w * tau + ph)
    if kind == 2:  # exponential
        b, a = rng.uniform(-5, 5), rng.normal()
        return a * np.exp(b * tau), a * b * np.exp(b * tau)
    w, ph, b = 2 * math.pi * rng.uniform(0.05, 2.5), rng.uniform(0, 2 * math.pi), rng.uniform(-4, 2)
    s, c, e = np.sin(w * tau + ph), np.cos(w * tau + ph), np.exp(b * tau)
    return e * s, e * (b * s + w * c)  # damped (or growing) sinusoid


def basis_library(n: int, rng: np.random.Generator, noise: float = 0.05) -> tuple[np.ndarray, ...]:
    """``(tau [W], samples [n, W], exact derivatives [n, W])``; every other window noisy."""
    tau = np.linspace(0.0, 1.0, WINDOW)
    ys, ds = np.empty((n, WINDOW)), np.empty((n, WINDOW))
    for i in range(n):
        terms = 1 if rng.uniform() < 0.5 else int(rng.integers(2, 4))
        y, d = np.zeros(WINDOW), np.zeros(WINDOW)
        for _ in range(terms):
            yk, dk = _one(int(rng.integers(0, 4)), tau, rng)
            y, d = y + yk, d + dk
        y = y + rng.normal() * 2  # an offset: the operator must not care
        if noise and i % 2:
            y = y + rng.normal(size=WINDOW) * rng.uniform(0, noise) * (y.std() + 1e-12)
        ys[i], ds[i] = y, d
    return tau, ys, ds


def _loss(net: torch.nn.Module, y: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    z, scale = normalize(y)
    target = d / scale  # the derivative in the normalized window's units
    err = (net(z) - target).pow(2).mean(dim=1)
    return (err / (target.pow(2).mean(dim=1) + 1.0)).mean()


def pretrain(seed: int = 0, samples: int = 60_000, steps: int = 4000, batch: int = 256) -> NdoNet:
    """A freshly pre-trained operator (deterministic for a given seed on one thread)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _, ys, ds = basis_library(samples, rng)
    y, d = torch.tensor(ys, dtype=torch.float32), torch.tensor(ds, dtype=torch.float32)
    net = NdoNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-5)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, samples, (batch,), generator=g)
        opt.zero_grad()
        _loss(net, y[idx], d[idx]).backward()
        opt.step()
        sched.step()
    return net.train(False)


def held_out_error(net: torch.nn.Module, seed: int = 12345, n: int = 4000, noise: float = 0.0) -> dict[str, float]:
    """Median and 90th-percentile relative L2 error of the operator's derivatives on held-out basis
    functions (a seed the pre-training never drew), beside second-order finite differences."""
    from .ndo import window_derivatives

    tau, ys, ds = basis_library(n, np.random.default_rng(seed), noise=0.0)
    if noise:
        ys = ys + np.random.default_rng(seed + 1).normal(size=ys.shape) * noise * ys.std(axis=1, keepdims=True)
    with torch.no_grad():
        pred = window_derivatives(net, torch.tensor(ys, dtype=torch.float32)).double().numpy()
    fd = np.gradient(ys, tau, axis=1, edge_order=2)
    norm = np.linalg.norm(ds, axis=1) + 1e-12
    rel = np.linalg.norm(pred - ds, axis=1) / norm
    rel_fd = np.linalg.norm(fd - ds, axis=1) / norm
    return {
        "median": float(np.median(rel)),
        "p90": float(np.quantile(rel, 0.9)),
        "fd_median": float(np.median(rel_fd)),
        "fd_p90": float(np.quantile(rel_fd, 0.9)),
    }


def main() -> None:
    from safetensors.torch import save_file

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default="nodedsl/train/ndo_operator.safetensors")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=4000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = pretrain(args.seed, steps=args.steps)
    clean, noisy = held_out_error(net), held_out_error(net, noise=0.02)
    meta = {"window": str(WINDOW), "seed": str(args.seed), "steps": str(args.steps)}
    meta.update({f"clean_{k}": f"{v:.4g}" for k, v in clean.items()})
    meta.update({f"noisy_{k}": f"{v:.4g}" for k, v in noisy.items()})
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, args.output, metadata=meta)
    print(meta)


if __name__ == "__main__":
    main()
