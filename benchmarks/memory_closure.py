"""Closures with and without memory for the two-scale Lorenz '96 system (Levine & Stuart's test).

Truth: K = 9 slow variables X (observed) and J = 8 fast ones Y per slow one (hidden), F = 10, h = 1,
c = b = 10 (the standard coupling):

    X_k' = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - (h c / b) sum_j Y_{j,k}
    Y_{j,k}' = -c b Y_{j+1,k} (Y_{j+2,k} - Y_{j-1,k}) - c Y_{j,k} + (h c / b) X_k

The learned models keep the known slow dynamics f0(X) (the first line without the Y sum) and add a
closure, the same net for every k (the system is translation invariant):

  (a) memoryless: X_k' = f0(X)_k + g(X_{k-1}, X_k, X_{k+1})
  (b) memory:     X_k' = f0(X)_k + g(X_{k-1}, X_k, X_{k+1}, r_k),  r_k' = q(X_{k-1}, X_k, X_{k+1}, r_k)
      with d latent states r_k per slot (`state r[...] latent` in the language); each window's r(0)
      comes from a GRU encoder over the 10 observations before the window (trained jointly).

Both are trained by multiple shooting on windows of 0.2 time units of one trajectory and evaluated on a
held-out trajectory from 20 start points: RMSE of X over one model time unit (normalized by the std of
X) and the validity time (first time the normalized error exceeds 0.5). Run:

    python benchmarks/memory_closure.py [--steps 1500] [--latent 2]
"""

from __future__ import annotations

import argparse
import time

import torch

K, J, F, H, C, B = 9, 8, 10.0, 1.0, 10.0, 10.0
DT = 0.01  # sampling and model step


def truth_rhs(X, Y):
    Xd = -torch.roll(X, 1, -1) * (torch.roll(X, 2, -1) - torch.roll(X, -1, -1)) - X + F
    Xd = Xd - (H * C / B) * Y.sum(-1)
    Yf = Y.reshape(*Y.shape[:-2], K * J)  # the fast ring runs over all K * J variables
    Yd = -C * B * torch.roll(Yf, -1, -1) * (torch.roll(Yf, -2, -1) - torch.roll(Yf, 1, -1)) - C * Yf
    Yd = Yd.reshape(Y.shape) + (H * C / B) * X[..., None]
    return Xd, Yd


def simulate_truth(T: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(K, generator=g, dtype=torch.float64) * 2
    Y = torch.randn(K, J, generator=g, dtype=torch.float64) * 0.1
    h, sub = 0.002, int(round(DT / 0.002))
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
    return torch.stack([torch.roll(X, 1, -1), X, torch.roll(X, -1, -1)], -1)  # [..., K, 3]


def mlp(i, o, w=32):
    return torch.nn.Sequential(
        torch.nn.Linear(i, w), torch.nn.Tanh(), torch.nn.Linear(w, w), torch.nn.Tanh(), torch.nn.Linear(w, o)
    )


class Closure(torch.nn.Module):
    def __init__(self, d: int, history: int):
        super().__init__()
        self.d, self.history = d, history
        self.g = mlp(3 + d, 1)
        if d:
            self.q = mlp(3 + d, d)
            self.enc = torch.nn.GRU(3, 32, batch_first=True)
            self.head = torch.nn.Linear(32, d)

    def rhs(self, X, r):
        L = local(X) / 5
        inp = torch.cat([L, r], -1) if self.d else L
        dX = f0(X) + self.g(inp).squeeze(-1)
        dr = self.q(inp) if self.d else r
        return dX, dr

    def init_r(self, past):  # past [B, history, K] -> r [B, K, d]
        if not self.d:
            return past.new_zeros(past.shape[0], K, 0)
        seq = local(past).permute(0, 2, 1, 3).reshape(-1, past.shape[1], 3) / 5
        _, h = self.enc(seq)
        return self.head(h[-1]).reshape(past.shape[0], K, self.d)

    def rollout(self, X, r, steps):
        out = [X]
        for _ in range(steps):
            a = self.rhs(X, r)
            b = self.rhs(X + DT / 2 * a[0], r + DT / 2 * a[1])
            c = self.rhs(X + DT / 2 * b[0], r + DT / 2 * b[1])
            d = self.rhs(X + DT * c[0], r + DT * c[1])
            X = X + DT / 6 * (a[0] + 2 * b[0] + 2 * c[0] + d[0])
            r = r + DT / 6 * (a[1] + 2 * b[1] + 2 * c[1] + d[1])
            out.append(X)
        return torch.stack(out, 1)


def train(model: Closure, data, steps: int, window: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    hist = model.history
    starts_all = torch.arange(hist, data.shape[0] - window - 1)
    for _ in range(steps):
        s = starts_all[torch.randint(len(starts_all), (64,), generator=g)]
        idx = s[:, None] + torch.arange(window + 1)
        target = data[idx]
        past = data[s[:, None] - hist + torch.arange(hist)]
        pred = model.rollout(target[:, 0], model.init_r(past), window)
        loss = (pred - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    return float(loss.detach())


def evaluate(model: Closure, data, horizon: int, starts):
    std = float(data.std())
    with torch.no_grad():
        idx = starts[:, None] + torch.arange(horizon + 1)
        target = data[idx]
        past = data[starts[:, None] - model.history + torch.arange(model.history)]
        pred = model.rollout(target[:, 0], model.init_r(past), horizon)
    err = (pred - target).pow(2).mean(-1).sqrt() / std  # [N, T]
    one = int(round(1.0 / DT))
    rmse1 = float(err[:, 1 : one + 1].pow(2).mean().sqrt())
    valid = []
    for row in err:
        bad = (row > 0.5).nonzero()
        valid.append(float(bad[0]) * DT if len(bad) else horizon * DT)
    return rmse1, sum(valid) / len(valid)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--latent", type=int, default=2)
    ap.add_argument("--train-time", type=float, default=30.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    data = simulate_truth(args.train_time, seed=0)
    held = simulate_truth(12.0, seed=1)
    print(f"truth simulated in {time.perf_counter() - t0:.0f} s: {data.shape[0]} training samples, K = {K}, J = {J}")
    starts = torch.linspace(20, held.shape[0] - 401, 20).long()
    none = Closure(0, 10)
    results = {}
    for name, model in (
        ("no closure (f0 only)", none),
        ("memoryless", Closure(0, 10)),
        ("memory", Closure(args.latent, 10)),
    ):
        torch.manual_seed(0)
        t1 = time.perf_counter()
        if name == "no closure (f0 only)":
            for p in model.g.parameters():
                torch.nn.init.zeros_(p)
            loss = float("nan")
        else:
            loss = train(model, data, args.steps, 20, seed=0)
        rmse1, valid = evaluate(model, held, 400, starts)
        results[name] = (rmse1, valid)
        print(
            f"{name:22s}: train loss {loss:.3g}, held-out normalized RMSE over 1 time unit {rmse1:.3f}, "
            f"validity time {valid:.2f} ({time.perf_counter() - t1:.0f} s)"
        )
    (a1, av), (b1, bv) = results["memoryless"], results["memory"]
    print(f"memory vs memoryless: RMSE x{a1 / b1:.2f} lower, validity time x{bv / av:.2f}")


if __name__ == "__main__":
    main()
