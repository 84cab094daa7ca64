"""The IVP test set at full horizons: nodedsl's solvers against published references and scipy.

For every problem in tests/ivp/ and every solver given, prints: problem, method, relative error at
the final time (max over components, floor 1e-6 of the largest), accepted steps, rejections,
nodedsl's solver time, scipy's time and step count with the same method family (Radau for the
stiff solvers, DOP853 for the explicit ones) at the same tolerances, and the whole-process time
of ``nodedsl simulate`` on the same problem (start-up, import of torch, compile, solve, CSV).

scipy gets the same compiled vector field (and its symbolic Jacobian) wrapped as NumPy functions,
so the two solver times compare the integrators, not the right-hand sides.

    python benchmarks/ivp_testset.py                      # everything (long on 2 shared cores)
    python benchmarks/ivp_testset.py robertson hires      # some problems
    python benchmarks/ivp_testset.py --no-process         # skip the whole-process runs
    python benchmarks/ivp_testset.py --process-only       # only the whole-process runs
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_stiff import E5_PUBLISHED, PUBLISHED, relative_error

import nodedsl
from nodedsl.solvers import make_solver, solve

E5_REF = E5_PUBLISHED
# E5Reduced's states are y1, y2, y4 (y3 = y2 - y4, the exact invariant): the published y1, y2, y4
E5_REDUCED_REF = (E5_REF[0], E5_REF[1], E5_REF[3])
FILES = {"e5_reduced": "e5"}  # problems whose model lives in another problem's file
POLLU_REF = None  # filled from tests/test_stiff.py's SHORT table (the horizon there is the full one)

# name -> (model, t_end, reference, source, [(solver, rtol, atol)])
STIFF_TOL = [("radau", 1e-8), ("rodas4", 1e-8)]
PROBLEMS = {
    "robertson": ("Robertson", 1e11, PUBLISHED["robertson"][1], "bari", STIFF_TOL, 1e-14),
    "hires": ("Hires", 321.8122, PUBLISHED["hires"][1], "bari", STIFF_TOL, 1e-10),
    "orego": ("Oregonator", 360.0, PUBLISHED["orego"][1], "bari", STIFF_TOL, 1e-8),
    "vdpol": ("VanDerPol", 2000.0, PUBLISHED["vdpol"][1], "bari", STIFF_TOL, 1e-8),
    "e5": ("E5", 1e13, E5_REF, "hairer-wanner", STIFF_TOL, 1e-30),
    "e5_reduced": ("E5Reduced", 1e13, E5_REDUCED_REF, "bari", STIFF_TOL, 1e-30),
    "pollution": ("Pollution", 60.0, None, "bari", STIFF_TOL, 1e-12),
    "arenstorf": (
        "Arenstorf", 17.0652165601579625588917206249, (0.994, 0.0, 0.0, -2.00158510637908252240537862224),
        "period", [("dopri5", 1e-10), ("dopri8", 1e-10)], 1e-12,
    ),
    "kepler": ("Kepler", 2 * math.pi, (0.4, 0.0, 0.0, 2.0), "period", [("dopri5", 1e-10), ("dopri8", 1e-10)], 1e-12),
    "lorenz": (
        "Lorenz", 16.0, (-9.13131565339416, -12.476182350417863, 22.843341689264143), "scipy",
        [("dopri5", 1e-10), ("dopri8", 1e-10)], 1e-12,
    ),
    "pleiades": ("Pleiades", 3.0, None, "scipy", [("dopri5", 1e-8), ("dopri8", 1e-8)], 1e-10),
    "brusselator": ("Brusselator20", 10.0, None, "scipy", [("dopri5", 1e-8), ("dopri8", 1e-8)], 1e-10),
}  # fmt: skip


def scipy_run(field, x0, t_end: float, method: str, rtol: float, atol: float) -> tuple[list[float], int, float]:
    import numpy as np
    from scipy.integrate import solve_ivp

    def fun(t, y):
        with torch.no_grad():
            return field(torch.tensor(t), torch.as_tensor(y)[None])[0].numpy()

    def jac(t, y):
        with torch.no_grad():
            return field.jacobian(torch.tensor(t), torch.as_tensor(y)[None])[0].numpy()

    kw = {"jac": jac} if method == "Radau" else {}
    start = time.perf_counter()
    sol = solve_ivp(fun, (0.0, t_end), np.asarray(x0[0]), method=method, rtol=rtol, atol=atol, **kw)
    return sol.y[:, -1].tolist(), len(sol.t) - 1, time.perf_counter() - start


def process_time(name: str, model: str, t_end: float, solver: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "nodedsl.cli.main", "simulate", str(ROOT / "tests" / "ivp" / f"{name}.node"),
         "--model", model, "--t-end", repr(t_end), "--step", repr(t_end), "--solver", solver, "-o", "/dev/null"],
        check=False, capture_output=True,
    )  # fmt: skip
    if done.returncode != 0:  # a failed run's time means nothing
        print(f"{name}: nodedsl simulate failed: {done.stderr.decode()[-500:]}", file=sys.stderr)
        return float("nan")
    return time.perf_counter() - start


def process_only(names: list[str]) -> None:
    print("machine: 2 shared CPU cores (other jobs running); whole-process seconds of `nodedsl simulate`")
    for name in names:
        model, t_end, _, _, runs, atol = PROBLEMS[name]
        for solver, rtol in runs:
            spec = f"{solver}(rtol = {rtol:g}, atol = {atol:g})"
            print(f"{name:12} {solver:8} {rtol:7.0e} {process_time(FILES.get(name, name), model, t_end, spec):8.2f}",
                  flush=True)  # fmt: skip


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    with_process = "--no-process" not in argv
    if "--process-only" in argv:
        return process_only([a for a in argv if not a.startswith("--")] or list(PROBLEMS))
    names = [a for a in argv if not a.startswith("--")] or list(PROBLEMS)
    from test_stiff import SHORT

    print("machine: 2 shared CPU cores (other jobs running); times in seconds")
    print(f"{'problem':12} {'method':8} {'rtol':>7} {'rel.err':>9} {'steps':>6} {'rej':>4} {'time':>7} "
          f"{'scipy':>7} {'sp.steps':>8} {'sp.err':>9} {'process':>8}")  # fmt: skip
    for name in names:
        model, t_end, ref, source, runs, atol = PROBLEMS[name]
        m = nodedsl.load(ROOT / "tests" / "ivp" / f"{FILES.get(name, name)}.node").model(model)
        field, x0 = m.driven(None), m.x0_default[None]
        if ref is None and name == "pollution":
            ref = SHORT["pollution"][5]
        for solver, rtol in runs:
            start = time.perf_counter()
            with torch.no_grad():
                res = solve(field, x0, torch.tensor([0.0, t_end]), solver=make_solver(solver, rtol=rtol, atol=atol))
            ours = time.perf_counter() - start
            family = "Radau" if solver in ("radau", "rodas4") else "DOP853"
            sp_y, sp_steps, sp_time = scipy_run(field, x0, t_end, family, rtol, atol)
            if ref is None:  # no published value: scipy at rtol 1e-13 is the reference
                ref = tuple(scipy_run(field, x0, t_end, "DOP853", 1e-13, 1e-13)[0])
            floor = 1.0 if source == "period" else 1e-6
            err = relative_error(res.ys[-1, 0], ref, floor)
            sp_err = relative_error(torch.tensor(sp_y), ref, floor)
            spec = f"{solver}(rtol = {rtol:g}, atol = {atol:g})"
            proc = process_time(FILES.get(name, name), model, t_end, spec) if with_process else float("nan")
            print(f"{name:12} {solver:8} {rtol:7.0e} {err:9.2e} {res.stats.steps:6d} {res.stats.rejected:4d} "
                  f"{ours:7.2f} {sp_time:7.2f} {sp_steps:8d} {sp_err:9.2e} {proc:8.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
