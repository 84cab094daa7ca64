"""Exponential integrators (``etd``) vs Runge-Kutta on a stiff semilinear PDE: steps and wall time
to a relative error of 1e-6.

The problem is the Allen-Cahn equation ``u_t = eps u_xx + u - u^3`` on a periodic domain of length 2,
discretized by central differences on 64 points: ``benchmarks/allen_cahn.node``, a model with one
vector state ``u[64]`` whose Laplacian is written with two shifted vector literals (this script
writes the file). With ``eps = 0.1`` the diffusion coefficient is ``D = eps / dx^2 = 102.4``, so the
linear part has eigenvalues down to ``-4 D + 1 = -408.6``: explicit methods are held near
``h |lambda| <= 2.8`` (rk4) by stability, while the solution's own time scale is O(1). The compiler
splits the field into ``A u + N(u)`` with ``N(u) = -u^3`` (``nodedsl.compiler.semilinear``).

For every fixed-step method the step is halved (from ``T / 4``) until the relative error at all
output times (max absolute error over max |reference|) is at most 1e-6; for ``dopri5`` the tolerance
``rtol`` (with ``atol = rtol / 100``) is lowered by 10x instead. The reference is rk4 at
``h = 1e-4`` (``h |lambda| = 0.04``), checked against etd4 at ``h = 1e-3``. Wall time: median of
``--repeats`` runs, methods interleaved, one intra-op thread, float64, no autograd.

    python benchmarks/exponential.py             # ~1 min on 2 shared cores
    python benchmarks/exponential.py --quick     # smoke run
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.solvers import make_solver, solve

HERE = Path(__file__).resolve().parent
NODE = HERE / "allen_cahn.node"
N, LENGTH, EPS, T_END = 64, 2.0, 0.1, 1.0
TARGET = 1e-6


def write_model(path: Path = NODE) -> str:
    """The Allen-Cahn ``.node`` source (64 points, periodic), written to ``path``."""
    dx = LENGTH / N
    xs = [i * dx for i in range(N)]
    u0 = [0.4 * math.sin(math.pi * x) + 0.3 * math.cos(3 * math.pi * x) + 0.1 for x in xs]
    left = ", ".join(f"u[{(i - 1) % N}]" for i in range(N))
    right = ", ".join(f"u[{(i + 1) % N}]" for i in range(N))
    src = (
        f"# Allen-Cahn u_t = eps u_xx + u - u^3, eps = {EPS:g}, periodic domain of length {LENGTH:g}, {N} points.\n"
        "# Written by benchmarks/exponential.py; the Laplacian is (left - 2 u + right) / dx^2.\n"
        "model AllenCahn {\n"
        f"    state u[{N}] = [{', '.join(f'{v:.6f}' for v in u0)}]\n"
        f"    param D = {EPS / dx**2:g}   # eps / dx^2\n"
        f"    let left = [{left}]\n"
        f"    let right = [{right}]\n"
        "    der(u) = D * (left - 2 * u + right) + u - u^3\n"
        "}\n"
    )
    path.write_text(src)
    return src


def run(field, x0, t, name: str, **options):
    with torch.no_grad():
        start = time.perf_counter()
        res = solve(field, x0, t, solver=make_solver(name, **options))
        return res, time.perf_counter() - start


def rel_error(ys: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ys - ref).abs().max() / ref.abs().max())


def largest_step(field, x0, t, ref, name: str, extra: dict, max_halvings: int) -> tuple[float, int, float]:
    """The largest ``T / 2^k`` step meeting the target: ``(step, steps, error)``."""
    for k in range(2, 2 + max_halvings):
        h = T_END / 2**k
        res, _ = run(field, x0, t, name, step=h, **extra)
        err = rel_error(res.ys, ref)
        if math.isfinite(err) and err <= TARGET:
            return h, res.stats.steps, err
    raise RuntimeError(f"{name} {extra}: no step down to T / 2^{1 + max_halvings} reaches {TARGET:g}")


def loosest_rtol(field, x0, t, ref) -> tuple[float, int, float]:
    for k in range(3, 14):
        rtol = 10.0**-k
        res, _ = run(field, x0, t, "dopri5", rtol=rtol, atol=rtol / 100, stiff_check=False)
        err = rel_error(res.ys, ref)
        if err <= TARGET:
            return rtol, res.stats.steps, err
    raise RuntimeError("dopri5 did not reach the target")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    write_model()
    model = nodedsl.load(NODE).model("AllenCahn", dtype=torch.float64)
    field, x0 = model.driven(None), model.x0_default[None]
    t = torch.linspace(0, T_END, 11, dtype=torch.float64)
    A, _ = field.semilinear()
    lam = torch.linalg.eigvals(A).real
    print(f"Allen-Cahn, {N} states, eps = {EPS:g}: eigenvalues of A in [{lam.min():.1f}, {lam.max():.2f}]")
    h_ref = 1e-3 if args.quick else 1e-4
    ref, _ = run(field, x0, t, "rk4", step=h_ref)
    check, _ = run(field, x0, t, "etd", order=4, step=1e-3)
    print(f"reference rk4(h = {h_ref:g}) vs etd4(h = 1e-3): relative difference {rel_error(check.ys, ref.ys):.1e}")
    rows = []
    methods = [("etd", {"order": 1}), ("etd", {"order": 2}), ("etd", {"order": 4}), ("rk4", {}), ("midpoint", {})]
    for name, extra in methods:
        if args.quick and name == "etd" and extra["order"] == 1:
            continue
        h, steps, err = largest_step(field, x0, t, ref.ys, name, extra, 18)
        label = f"etd{extra['order']}" if name == "etd" else name
        rows.append((label, name, {"step": h, **extra}, f"h = 1/{round(1 / h)}", steps, err))
    rtol, steps, err = loosest_rtol(field, x0, t, ref.ys)
    rows.append(
        ("dopri5", "dopri5", {"rtol": rtol, "atol": rtol / 100, "stiff_check": False}, f"rtol = {rtol:g}", steps, err)
    )
    times: dict[str, list[float]] = {r[0]: [] for r in rows}
    for _ in range(1 if args.quick else args.repeats):
        for label, name, opts, *_ in rows:  # interleaved
            times[label].append(run(field, x0, t, name, **opts)[1])
    print(f"\n| method | setting for rel. error <= {TARGET:g} | steps | rel. error | wall time (median) |")
    print("|---|---|---|---|---|")
    for label, _, _, setting, steps, err in rows:
        print(f"| {label} | {setting} | {steps} | {err:.1e} | {statistics.median(times[label]) * 1e3:.1f} ms |")
    by = {r[0]: r for r in rows}
    t_by = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\netd4 vs rk4: {by['rk4'][4] / by['etd4'][4]:.1f}x fewer steps, "
        f"{t_by['rk4'] / t_by['etd4']:.1f}x less wall time; vs dopri5: {by['dopri5'][4] / by['etd4'][4]:.1f}x "
        f"fewer steps, {t_by['dopri5'] / t_by['etd4']:.1f}x less wall time"
    )


if __name__ == "__main__":
    main()
