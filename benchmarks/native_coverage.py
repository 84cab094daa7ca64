"""Which models the native path covers, and whether it agrees with eager on each (issue 19).

Not a test (it takes a minute or two): every deterministic model of every ``.node`` file under examples/,
tests/, benchmarks/ and stdlib/ (the error corpus excepted) is built in float64 and rolled out for two RK4
steps from perturbed initial states, by the native path and by the eager solver; the states, every
parameter gradient and the initial states' gradient must agree to 1e-10 (relative to 1 + |eager|). Prints
one line per model that falls back (its reason) or disagrees, then the counts. On 2026-12-02: 68 models,
all covered, all agree.

    python benchmarks/native_coverage.py
"""

from __future__ import annotations

import collections
from pathlib import Path

import torch

import nodedsl
from nodedsl.compiler.cgen import Unsupported
from nodedsl.solvers import make_solver, solve
from nodedsl.train.native import NativeStep
from nodedsl.train.rollout import WindowField, observation_map

ROOT = Path(__file__).resolve().parents[1]


def _grads(out, params):
    grads = torch.autograd.grad(out.pow(2).sum(), params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def check(model) -> float:
    """The largest relative difference of states and gradients, native against eager."""
    n, m = len(model.state_names), model.u_default.numel()
    g = torch.Generator().manual_seed(2)
    x0 = (model.x0_default + 0.1 * torch.randn(3, n, generator=g, dtype=torch.float64)).requires_grad_(True)
    t0 = torch.rand(3, generator=g, dtype=torch.float64)
    grid = torch.arange(3, dtype=torch.float64) * 0.01
    u = model.u_default + 0.1 * torch.randn(3, 3, m, generator=g, dtype=torch.float64)
    solver = make_solver("rk4", step=0.01)
    fast = NativeStep(model, solver, observation_map(model), False)
    eager = solve(WindowField(model, t0, grid, u, False), x0, grid, solver=solver).ys.transpose(0, 1)
    states, _ = fast(x0, t0, u, t0[:, None] + grid, grid)
    worst = float(((states - eager).abs() / (1 + eager.abs())).detach().nan_to_num(0.0).max())
    params = [p for p in model.parameters() if p.requires_grad] + [x0]
    for a, b in zip(_grads(states, params), _grads(eager, params)):
        if a.numel():
            worst = max(worst, float(((a - b).abs() / (1 + b.abs())).nan_to_num(0.0).max()))
    return worst


def main() -> int:
    counts: collections.Counter = collections.Counter()
    files = sorted(
        p
        for d in ("examples", "tests", "benchmarks", "stdlib")
        for p in (ROOT / d).rglob("*.node")
        if "errors" not in p.parts
    )
    for path in files:
        try:
            prog = nodedsl.load(path)
            names = prog.model_names()
        except Exception:  # files that are not whole programs (fragments of other tests)
            continue
        for name in names:
            try:
                torch.manual_seed(0)
                model = prog.model(name, torch.float64)
            except Exception:
                continue
            if getattr(model, "noise", None) is not None or not model.state_names:
                continue
            try:
                worst = check(model)
            except Unsupported as err:
                print(f"{path.relative_to(ROOT)} {name}: falls back: {err}")
                counts["falls back"] += 1
                continue
            ok = worst <= 1e-10
            counts["agrees" if ok else "DISAGREES"] += 1
            if not ok:
                print(f"{path.relative_to(ROOT)} {name}: differs by {worst:.3g}")
    print(dict(counts))
    return 0 if not counts["DISAGREES"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
