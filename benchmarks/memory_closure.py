"""Closures with and without memory for the two-scale Lorenz '96 system (Levine & Stuart's test).

Truth, in Levine & Stuart's (Fatkullin & Vanden-Eijnden's) scaling: K = 9 slow variables X
(observed), J = 8 fast ones Y per slow one (hidden), F = 10, h_x = -0.8, h_y = 1, eps = 1 / c:

    X_k' = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F + h_x mean_j Y_{j,k}
    Y_{j,k}' = c (-Y_{j+1,k} (Y_{j+2,k} - Y_{j-1,k}) - Y_{j,k} + h_y X_k)   (one ring of K J fast ones)

With c = 10 this is the standard system (h = 1, c = b = 10: Y here is b times the usual Y). Smaller c
means less scale separation: the fast variables remember the slow history, and a closure that is a
function of the current X cannot represent their effect (Levine & Stuart vary eps = 1/c for this).

The learned models keep the known slow dynamics f0(X) (the first line without the Y term) and add a
closure, the same nets for every k (the system is translation invariant), L_k = (X_{k-1}, X_k, X_{k+1}):

  (a) memoryless: X_k' = f0(X)_k + g(L_k)
  (b) memory:     X_k' = f0(X)_k + g(L_k) + m(L_k, r_k),  r_k' = -r_k / tau + q(L_k, r_k)
      with d latent states r_k per slot (`state r[...] latent` in the language). m's last layer starts
      at zero, so training starts exactly at the memoryless model; the linear decay (tau > 0 learned,
      per latent) keeps the latents bounded outside the training windows. Each window's r(0) comes
      from data assimilation: r starts at 0 `--history` samples before the window and is integrated
      with X held at the observations (the strongest nudging), so the latents are synchronized by the
      observed slow history; the memoryless model has no use for history (that is the point).

Both are trained with the same widths, data, steps and windows (multiple shooting, `--window` samples)
on one trajectory, and evaluated on a held-out trajectory of 25 time units from 50 start points: RMSE of X over one
model time unit (normalized by the std of X) and the validity time (first time the normalized error
exceeds 0.5). Run, one regime per command (results in docs/benchmarks.md):

    python benchmarks/memory_closure.py --c 2 --steps 400 [--seed 1]   # eps = 1/2
    python benchmarks/memory_closure.py --c 10 --steps 400 [--seed 1]  # the standard system

Measured (400 steps; normalized RMSE over 1 time unit, memoryless -> memory): c = 2,
0.114 -> 0.090, 0.116 -> 0.084, 0.107 -> 0.090 (seeds 0-2: 1.26x, 1.38x, 1.18x lower; validity time
1.03x, 1.13x, 1.10x longer); c = 4, 0.074 -> 0.069 and 0.069 -> 0.066 (1.07x, 1.04x); c = 10,
0.054 -> 0.049 and 0.048 -> 0.045 (1.10x, 1.06x): memory pays clearly only when the scales are not
separated (c = 2). Training is about 3x longer with memory (the assimilation over the history).
"""

from __future__ import annotations

import argparse
import time

import torch

K, J, F = 9, 8, 10.0
DT = 0.01  # sampling and model step
BPTT = 25  # assimilation steps differentiated through, before each window
P = {"c": 10.0, "hx": -0.8, "hy": 1.0}  # set from the command line


def truth_rhs(X, Y):
    Xd = -torch.roll(X, 1, -1) * (torch.roll(X, 2, -1) - torch.roll(X, -1, -1)) - X + F
    Xd = Xd + P["hx"] * Y.mean(-1)
    Yf = Y.reshape(*Y.shape[:-2], K * J)  # the fast ring runs over all K * J variables
    Yd = -torch.roll(Yf, -1, -1) * (torch.roll(Yf, -2, -1) - torch.roll(Yf, 1, -1)) - Yf
    Yd = P["c"] * (Yd.reshape(Y.shape) + P["hy"] * X[..., None])
    return Xd, Yd


def simulate_truth(T: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, generator=g, dtype=torch.float64) * 2
    Y = torch.randn(K, J, generator=g, dtype=torch.float64)
    sub = 5 if P["c"] > 5 else 2  # RK4 at 0.002 (0.005 for slow fast variables): converged to 1e-6
    h = DT / sub
    out = []
    for n in range(int(round((T + 5) / DT))):
        for _ in range(sub):
            a = truth_rhs(X, Y)
            b = truth_rhs(X + h / 2 * a[0], Y + h / 2 * a[1])
            c = truth_rhs(X + h / 2 * b[0], Y + h / 2 * b[1])
            d = truth_rhs(X + h * c[0], Y + h * c[1])
            X = X + h / 6 * (a[0] + 2 * b[0] + 2 * c[0] + d[0])
            Y = Y + h / 6 * (a[1] + 2 * b[1] + 2 * c[1] + d[1])
        if n * DT >= 5:  # after a burn-in onto the attractor
            out.append(X.clone())
    return torch.stack(out).float()


def f0(X):
    return -torch.roll(X, 1, -1) * (torch.roll(X, 2, -1) - torch.roll(X, -1, -1)) - X + F


def local(X):
    return torch.stack([torch.roll(X, 1, -1), X, torch.roll(X, -1, -1)], -1) / 5  # [..., K, 3]


def mlp(i, o, w=32, zero_last=False):
    net = torch.nn.Sequential(
        torch.nn.Linear(i, w), torch.nn.Tanh(), torch.nn.Linear(w, w), torch.nn.Tanh(), torch.nn.Linear(w, o)
    )
    if zero_last:  # the term starts at exactly 0
        torch.nn.init.zeros_(net[-1].weight)
        torch.nn.init.zeros_(net[-1].bias)
    return net


def rk4(rhs, X, r, h, Xmid=None, Xend=None):
    """One RK4 step; with Xmid/Xend given, X is held at the observations (only r is integrated)."""
    a = rhs(X, r)
    b = rhs(X + h / 2 * a[0] if Xmid is None else Xmid, r + h / 2 * a[1])
    c = rhs(X + h / 2 * b[0] if Xmid is None else Xmid, r + h / 2 * b[1])
    d = rhs(X + h * c[0] if Xend is None else Xend, r + h * c[1])
    r = r + h / 6 * (a[1] + 2 * b[1] + 2 * c[1] + d[1])
    X = X + h / 6 * (a[0] + 2 * b[0] + 2 * c[0] + d[0]) if Xend is None else Xend
    return X, r


class Closure(torch.nn.Module):
    def __init__(self, d: int, history: int, width: int = 32):
        super().__init__()
        self.d, self.history = d, history
        self.g = mlp(3, 1, width)
        if d:
            self.m = mlp(3 + d, 1, width, zero_last=True)
            self.q = mlp(3 + d, d, width)
            self.log_tau = torch.nn.Parameter(torch.full((d,), float(torch.log(torch.tensor(0.3)))))

    def latent_rhs(self, X, r):  # only r' (X is observed while assimilating)
        return X, -r / self.log_tau.exp() + self.q(torch.cat([local(X), r], -1))

    def rhs(self, X, r):
        L = local(X)
        dX = f0(X) + self.g(L).squeeze(-1)
        if not self.d:
            return dX, r
        inp = torch.cat([L, r], -1)
        dX = dX + self.m(inp).squeeze(-1)
        return dX, -r / self.log_tau.exp() + self.q(inp)

    def init_r(self, past):
        """Latents at the last of `past` [B, history + 1, K]: assimilated from r = 0 with X observed."""
        r = past.new_zeros(past.shape[0], K, self.d)
        if not self.d:
            return r
        n = past.shape[1] - 1
        for i in range(n):
            # gradients through the last BPTT steps only (the earlier ones only forget r = 0)
            with torch.set_grad_enabled(torch.is_grad_enabled() and i >= n - BPTT):
                mid = (past[:, i] + past[:, i + 1]) / 2  # the observed X at the half step, interpolated
                _, r = rk4(self.latent_rhs, past[:, i], r, DT, mid, past[:, i + 1])
        return r

    def rollout(self, X, r, steps):
        out = [X]
        for _ in range(steps):
            X, r = rk4(self.rhs, X, r, DT)
            out.append(X)
        return torch.stack(out, 1)


def windows(data, starts, length: int, history: int):
    """Targets [B, length + 1, K] from each start, and the history [B, history + 1, K] ending there."""
    target = data[starts[:, None] + torch.arange(length + 1)]
    past = data[starts[:, None] - history + torch.arange(history + 1)]
    return target, past


def train(model: Closure, data, steps: int, window: int, seed: int, batch: int = 64):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    starts_all = torch.arange(model.history, data.shape[0] - window - 1)
    for _ in range(steps):
        s = starts_all[torch.randint(len(starts_all), (batch,), generator=g)]
        target, past = windows(data, s, window, model.history)
        pred = model.rollout(target[:, 0], model.init_r(past), window)
        loss = (pred - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return float(loss.detach())


def evaluate(model: Closure, data, horizon: int, starts, history: int):
    std = float(data.std())
    with torch.no_grad():
        target, past = windows(data, starts, horizon, history)
        pred = model.rollout(target[:, 0], model.init_r(past), horizon)
    err = (pred - target).pow(2).mean(-1).sqrt() / std  # [N, T]
    one = int(round(1.0 / DT))
    rmse1 = float(err[:, 1 : one + 1].pow(2).mean().sqrt())
    valid = []
    for row in err:
        bad = (row > 0.5).nonzero()
        valid.append(float(bad[0]) * DT if len(bad) else horizon * DT)
    return rmse1, sum(valid) / len(valid)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--c", type=float, default=2.0, help="time-scale ratio 1/eps (10: the standard system)")
    ap.add_argument("--hx", type=float, default=-0.8, help="coupling of the fast variables into X")
    ap.add_argument("--steps", type=int, default=400, help="Adam steps (batches of 64 windows)")
    ap.add_argument("--latent", type=int, default=2, help="latent states per slow variable")
    ap.add_argument("--window", type=int, default=50, help="training window, in samples of 0.01")
    ap.add_argument("--history", type=int, default=100, help="samples assimilated before each window")
    ap.add_argument("--train-time", type=float, default=40.0, help="length of the training trajectory")
    ap.add_argument("--seed", type=int, default=0, help="seed of the nets, batches and both trajectories")
    ap.add_argument("--skip-f0", action="store_true", help="do not report the model without closure")
    return ap.parse_args()


def main() -> None:
    args = parse()
    P["c"], P["hx"] = args.c, args.hx
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = simulate_truth(args.train_time, seed=2 * args.seed)
    held = simulate_truth(25.0, seed=2 * args.seed + 1)
    print(
        f"c = {args.c:g}, h_x = {args.hx:g}, seed {args.seed}, window {args.window}, history {args.history}, "
        f"{args.steps} steps; truth simulated in {time.perf_counter() - t0:.0f} s ({data.shape[0]} samples)"
    )
    starts = torch.linspace(args.history, held.shape[0] - 401, 50).long()
    results = {}
    runs = [("memoryless", 0), ("memory", args.latent)]
    if not args.skip_f0:
        runs.insert(0, ("no closure (f0 only)", 0))
    for name, d in runs:
        torch.manual_seed(args.seed)
        model = Closure(d, args.history)
        t1 = time.perf_counter()
        if name.startswith("no closure"):
            for p in model.g.parameters():
                torch.nn.init.zeros_(p)
            loss = float("nan")
        else:
            loss = train(model, data, args.steps, args.window, seed=args.seed)
        rmse1, valid = evaluate(model, held, 400, starts, args.history)
        results[name] = (rmse1, valid)
        extra = f", tau {model.log_tau.exp().detach().numpy().round(3)}" if d else ""
        print(
            f"{name:22s}: train loss {loss:.3g}, held-out normalized RMSE over 1 time unit {rmse1:.3f}, "
            f"validity time {valid:.2f} ({time.perf_counter() - t1:.0f} s{extra})",
            flush=True,
        )
    (a1, av), (b1, bv) = results["memoryless"], results["memory"]
    print(f"memory vs memoryless: RMSE x{a1 / b1:.2f} lower, validity time x{bv / av:.2f}")


if __name__ == "__main__":
    main()
