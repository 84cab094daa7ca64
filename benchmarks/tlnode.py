"""Taylor-Lagrange (TL-NODE) vs dopri5: training time to equal test error, on CPU.

Reproduces the claim of Djeumou et al. 2022, "Taylor-Lagrange Neural Ordinary Differential
Equations: Toward Fast Training and Evaluation of Neural ODEs": training a neural ODE with a
fixed-step Taylor method plus a learned Lagrange remainder is >= 10x faster than with an adaptive
solver, at equal error. Not a test: run it by hand and paste the table into docs/benchmarks.md.

    python benchmarks/tlnode.py [--seed 1] [--problems vdp stiff]      # ~5 min
    python benchmarks/tlnode.py --quick         # smoke run (~1 min)

Two problems, each trained from the same initial parameters with the same optimizer (Adam,
full batch) by the same explicit loop, which calls ``nodedsl.solvers.solve`` once per iteration to
predict every training transition one step ahead (``x_k -> x_{k+1}``, the TL-NODE setting):

(a) **Van der Pol, mu = 8**, sampled every dt = 0.04 along 30 short trajectories (10 steps each)
    from random initial states in [-3, 3]^2: 300 training transitions (test: 15 more trajectories,
    150 transitions); the model is a neural ODE written in the DSL (``net f(x, v) -> 2``).
(b) **Stiff linear system** ``x' = A x``, eigenvalues -1000 and -1 (rotated, so A is full); the
    model learns the four entries of A. Transitions over dt = 0.004 from random states.

Methods: ``dopri5(rtol=1e-6, atol=1e-8)`` (the adaptive baseline) and ``taylor(order=p, step=h)``
with the learned remainder Gamma, refitted on the paper's schedule: every 10 (or 5) model steps one
Adam step on Gamma's ``remainder_loss`` at the solver's step (``Schedule``: lr 1e-2 on 64 random
training states against RK4 with 8 substeps; every 10 is what ``nodedsl.train.fit`` does; one row keeps the earlier, 20x
costlier schedule: lr 1e-3 on every state against 16 substeps, every 5). The compiled model is passed to ``solve`` itself, so
the Taylor coefficients come from ``CompiledModel.taylor_coefficients`` (Taylor-mode AD over the
compiled field, nets included: nodedsl/_fxjet.py).

Protocol: dopri5 trains for a fixed CPU-time budget; the threshold is the test error it reaches
at the end (its final error). Every method is then timed to the first evaluation at which its test
error (relative one-step error on held-out transitions: sum of squared errors over sum of squared
increments ``x_{k+1} - x_k``, components in units of the states' standard deviation, predicted
with the method's own solver; 1.0 is as bad as predicting no change) is at or below the threshold.
Because a fixed-step method may plateau above that threshold (its truncation error), the last column
also compares at the looser level each Taylor run did reach: dopri5's time to the Taylor run's final
error over the Taylor run's time to it. Times are process
CPU time (``time.process_time``, one intra-op thread; evaluations excluded), because the machine
is shared. "NFE / unit time" is forward field evaluations per unit of simulated time, averaged
over training iterations (``SolveStats.nfe`` / dt); the remainder fit's own evaluations are not
included in it (its time is included in the training time). Every evaluation also measures the
same model's test error under a tight dopri5 (rtol 1e-9): the "same model" column (at the end) shows
whether the learned *field* is good or whether the fixed-step integrator's error was absorbed into
the model, and the last column is the strict speed-up: time to dopri5's threshold with the method's
own solver *and*, under the tight dopri5, to dopri5's own level there (Taylor runs stop at that point).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass, field

import torch

import nodedsl
from nodedsl.solvers import make_solver, solve

DTYPE = torch.float64

VDP_SOURCE = """
model VanDerPolTruth {
    state x = 2
    state v = 0
    param mu = 8
    der(x) = v
    der(v) = mu * (1 - x^2) * v - x
}

model NeuralVdP {
    state x = 2
    state v = 0
    net f(x, v) -> 2 { hidden = [64, 64], activation = tanh }
    der(x) = 2 * f(x / 2, v / 4)[0]
    der(v) = 15 * f(x / 2, v / 4)[1]
}
"""

STIFF_SOURCE = """
model StiffLinear {
    state a = 1
    state b = 1
    param s = 1000
    param b11 = @b11@ learn
    param b12 = @b12@ learn
    param b21 = @b21@ learn
    param b22 = @b22@ learn
    der(a) = s * (b11 * a + b12 * b)
    der(b) = s * (b21 * a + b22 * b)
}
"""


@dataclass
class Problem:
    name: str
    model: torch.nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    dt: float
    scale: torch.Tensor
    lr: float


@dataclass
class Run:
    label: str
    evals: list[tuple[float, float, float]] = field(default_factory=list)  # (cpu s, test error, same, tight dopri5)
    iter_times: list[float] = field(default_factory=list)
    nfe: list[int] = field(default_factory=list)
    iterations: int = 0
    final_dopri_error: float = math.nan
    status: str = "ok"

    def time_to(self, threshold: float, tight_level: float | None = None) -> float | None:
        """First time the test error is at or below ``threshold`` and, given ``tight_level``, the same
        model's error under a tight dopri5 at or below that level."""
        for t, e, e_tight in self.evals:
            if e <= threshold and (tight_level is None or e_tight <= tight_level):
                return t
        return None


def _transitions(truth, x0: torch.Tensor, steps: int, dt: float) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.arange(steps + 1, dtype=DTYPE) * dt
    with torch.no_grad():
        ys = solve(truth, x0, t, solver=make_solver("dopri5", rtol=1e-10, atol=1e-12)).ys  # [T, N, n]
    return ys[:-1].reshape(-1, x0.shape[1]), ys[1:].reshape(-1, x0.shape[1])


def van_der_pol(seed: int) -> Problem:
    prog = nodedsl.loads(VDP_SOURCE)
    truth = prog.model("VanDerPolTruth").to(DTYPE)
    g = torch.Generator().manual_seed(seed)
    dt = 0.04

    def draw(n):
        return torch.empty(n, 2, dtype=DTYPE).uniform_(-3, 3, generator=g)

    x_tr, y_tr = _transitions(truth, draw(30), 10, dt)  # 300 training transitions
    x_te, y_te = _transitions(truth, draw(15), 10, dt)  # 150 test transitions
    torch.manual_seed(seed)
    model = prog.model("NeuralVdP").to(DTYPE)
    return Problem("Van der Pol (mu = 8), MLP field", model, x_tr, y_tr, x_te, y_te, dt, x_tr.std(0), lr=3e-3)


def _stiff_source(b: torch.Tensor) -> str:
    src = STIFF_SOURCE
    for i in range(2):
        for j in range(2):
            src = src.replace(f"@b{i + 1}{j + 1}@", f"{float(b[i, j]):.12f}")
    return src


def stiff(seed: int) -> Problem:
    theta = 0.5
    rot = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]], dtype=DTYPE)
    a_true = rot @ torch.diag(torch.tensor([-1000.0, -1.0], dtype=DTYPE)) @ rot.T
    g = torch.Generator().manual_seed(seed)
    b0 = a_true / 1000 + 0.2 * torch.randn(2, 2, generator=g, dtype=DTYPE)
    truth_src, model_src = _stiff_source(a_true / 1000), _stiff_source(b0)
    truth = nodedsl.loads(truth_src).model("StiffLinear").to(DTYPE)
    model = nodedsl.loads(model_src).model("StiffLinear").to(DTYPE)
    dt = 0.004
    x_tr, y_tr = _transitions(truth, torch.empty(300, 2, dtype=DTYPE).uniform_(-1, 1, generator=g), 1, dt)
    x_te, y_te = _transitions(truth, torch.empty(150, 2, dtype=DTYPE).uniform_(-1, 1, generator=g), 1, dt)
    return Problem(
        "Stiff linear (eigenvalues -1000, -1), learn A", model, x_tr, y_tr, x_te, y_te, dt, x_tr.std(0), lr=1e-2
    )


def _error(model, solver, x, y, scale, dt) -> float:
    """Relative one-step error: squared error over squared increment (1.0 = predicting no change)."""
    with torch.no_grad():
        pred = solve(model, x, torch.tensor([0.0, dt], dtype=DTYPE), solver=solver).ys[-1]
    return float(((pred - y) / scale).pow(2).sum() / ((y - x) / scale).pow(2).sum())


@dataclass
class Schedule:
    """How Gamma (the learned remainder) is refitted: every ``every`` model steps, one Adam step at
    ``lr`` on ``remainder_loss`` over ``rows`` random training states, reference RK4 with ``substeps``."""

    every: int = 5
    lr: float = 1e-3
    rows: int | None = None  # None: all training states
    substeps: int = 16


def train(
    problem: Problem,
    init: dict,
    label: str,
    solver,
    budget: float,
    threshold: float | None,
    eval_every: int,
    schedule: Schedule | None = None,
    tight_level: float | None = None,
) -> Run:
    """Adam on the one-step loss until ``budget`` CPU seconds (or ``threshold`` reached, and ``tight_level``
    under a tight dopri5)."""
    schedule = schedule or Schedule()
    gen = torch.Generator().manual_seed(0)
    model = problem.model
    model.load_state_dict(init)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=problem.lr)
    solver_params = [p for p in solver.parameters() if p.requires_grad]
    rem_opt = torch.optim.Adam(solver_params, lr=schedule.lr) if solver_params else None
    span = torch.tensor([0.0, problem.dt], dtype=DTYPE)
    run = Run(label)
    x, y, scale = problem.x_train, problem.y_train, problem.scale
    used = 0.0
    tight = make_solver("dopri5", rtol=1e-9, atol=1e-11)

    def evaluate(used: float) -> None:  # not timed
        own = _error(model, solver, problem.x_test, problem.y_test, scale, problem.dt)
        try:
            accurate = _error(model, tight, problem.x_test, problem.y_test, scale, problem.dt)
        except AssertionError:
            accurate = math.inf
        run.evals.append((used, own, accurate))

    evaluate(0.0)
    while used < budget:
        start = time.process_time()
        opt.zero_grad(set_to_none=True)
        try:
            res = solve(model, x, span, solver=solver)
        except AssertionError:  # torchdiffeq: underflow in dt
            run.status = "dt underflow"
            break
        loss = ((res.ys[-1] - y) / scale).pow(2).mean()
        if not bool(torch.isfinite(loss)):
            run.status = "diverged"
            break
        loss.backward()
        opt.step()
        run.iterations += 1
        if rem_opt is not None and run.iterations % schedule.every == 0:
            rows = x if schedule.rows is None else x[torch.randperm(len(x), generator=gen)[: schedule.rows]]
            rl = solver.remainder_loss(
                model, rows, solver.step_size, substeps=schedule.substeps
            )  # Gamma at the step it is used with
            grads = torch.autograd.grad(rl, solver_params, allow_unused=True)
            for p, gr in zip(solver_params, grads):
                p.grad = gr
            rem_opt.step()
            for p in solver_params:
                p.grad = None
        spent = time.process_time() - start
        used += spent
        run.iter_times.append(spent)
        run.nfe.append(res.stats.nfe)
        if run.iterations % eval_every == 0:
            evaluate(used)
            if threshold is not None and run.time_to(threshold, tight_level) is not None:
                break
    run.final_dopri_error = run.evals[-1][2]
    return run


def _own_level(base: Run, r: Run, threshold: float) -> str:
    """dopri5's time over ``r``'s time to reach ``r``'s final error (equal error, looser level)."""
    if r is base:
        return "-"
    level = max(r.evals[-1][1], threshold)
    t_r, t_b = r.time_to(level), base.time_to(level)
    if t_b is None:
        return f"dopri5 never reached {level:.3g}"
    return f"{t_b / t_r:.2g}x ({t_b:.1f} s vs {t_r:.1f} s)" if t_r else "-"


def _strict(t_base: float | None, r: Run, threshold: float, tight_level: float) -> str:
    """dopri5's time over ``r``'s time to reach the threshold with its own solver *and* ``tight_level``
    under a tight dopri5: guards against a fixed-step model that absorbed its integrator's error."""
    t_r = r.time_to(threshold, tight_level)
    if t_r is None:
        return "not reached"
    if t_base is None:
        return "dopri5 not reached"  # within its cap: the ratio is at least cap / this time (see the table)
    return f"{t_base / t_r:.2g}x" if t_r else "1.0x"


def compare(
    problem: Problem,
    taylors: list[tuple[str, dict, Schedule]],
    budget: float,
    eval_every: int,
    target: float | None = None,
    tol: tuple[float, float] = (1e-6, 1e-8),
) -> list[str]:
    """``target`` None: dopri5 trains for ``budget`` and its final error is the threshold. Else every
    method (dopri5 included) trains until ``target`` is reached with its own solver and, for the same
    model, under a tight dopri5 (the strict criterion), or until ``budget`` CPU seconds."""
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in problem.model.state_dict().items()}
    base = train(
        problem,
        init,
        f"dopri5(rtol={tol[0]:g}, atol={tol[1]:g})",
        make_solver("dopri5", rtol=tol[0], atol=tol[1]),
        budget,
        target,
        eval_every,
        tight_level=target,
    )
    threshold = base.evals[-1][1] if target is None else target
    # the learned field must be as good as dopri5's too: its error under a tight dopri5, at most dopri5's
    tight_level = max(threshold, base.evals[-1][2]) if target is None else target
    if threshold >= 0.5 * base.evals[0][1]:
        return [
            f"\n### {problem.name}: dopri5 did not learn within its budget (test error "
            f"{base.evals[0][1]:.3g} -> {threshold:.3g}); no comparison"
        ]
    runs = [base]
    for label, opts, schedule in taylors:
        torch.manual_seed(0)
        solver = make_solver("taylor", state_dim=2, **opts).to(DTYPE)
        runs.append(train(problem, init, label, solver, budget, threshold, eval_every, schedule, tight_level))
    t_base = base.time_to(threshold) if target is None else base.time_to(threshold, tight_level)
    rows = [
        f"\n### {problem.name}: {len(problem.x_train)} training / {len(problem.x_test)} test transitions, "
        f"dt = {problem.dt}\n",
        (
            f"threshold (dopri5's test error after its {budget:.0f} s budget): {threshold:.3g} "
            if target is None
            else f"fixed target {target:.3g}, own solver and tight dopri5 (cap {budget:.0f} CPU s per run) "
        )
        + f"(initial error {base.evals[0][1]:.3g}); strict speed-up: "
        + ", ".join(f"{r.label}: {_strict(t_base, r, threshold, tight_level)}" for r in runs[1:])
        + "\n",
        "| method | iterations | ms / iteration (median) | ms / iteration (mean, with Gamma's fits) | "
        "NFE / iteration (mean) | NFE / unit time | "
        "time to threshold (s) | speed-up vs dopri5 | final test error | same model, dopri5 1e-9 | "
        "speed-up at this method's final error | speed-up, same model under dopri5 1e-9 also at "
        f"{tight_level:.3g} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        tt = r.time_to(threshold)
        ms = 1e3 * statistics.median(r.iter_times) if r.iter_times else math.nan
        mean_ms = 1e3 * statistics.fmean(r.iter_times) if r.iter_times else math.nan
        nfe = statistics.fmean(r.nfe) if r.nfe else math.nan
        speed = f"{t_base / tt:.2g}x" if tt and t_base else "-"
        reached = f"{tt:.1f}" if tt is not None else f"not reached ({r.evals[-1][0]:.0f} s)"
        note = "" if r.status == "ok" else f" ({r.status})"
        rows.append(
            f"| {r.label}{note} | {r.iterations} | {ms:.1f} | {mean_ms:.1f} | {nfe:.1f} | {nfe / problem.dt:.0f} | "
            f"{reached} | {speed if r is not base else '1.0x'} | {r.evals[-1][1]:.3g} | "
            f"{r.final_dopri_error:.3g} | {_own_level(base, r, threshold)} | {_strict(t_base, r, threshold, tight_level)} |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short budgets (smoke run)")
    ap.add_argument("--budget-vdp", type=float, default=45.0, help="dopri5 CPU seconds on Van der Pol")
    ap.add_argument("--budget-stiff", type=float, default=20.0, help="dopri5 CPU seconds on the stiff system")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--problems", nargs="+", default=["vdp", "stiff"], choices=["vdp", "stiff"])
    ap.add_argument("--target-vdp", type=float, default=None, help="fixed target test error (budget: a cap)")
    ap.add_argument("--target-stiff", type=float, default=None, help="fixed target test error (budget: a cap)")
    ap.add_argument("--tol", type=float, nargs=2, default=[1e-6, 1e-8], metavar=("RTOL", "ATOL"))
    ap.add_argument("--main-only", action="store_true", help="only the main Taylor row per problem")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.quick:
        args.budget_vdp, args.budget_stiff = 10.0, 5.0
    started = time.perf_counter()
    print(f"torch {torch.__version__}, 1 thread, float64, seed {args.seed}")
    every5 = Schedule(every=5, lr=1e-2, rows=64, substeps=8)
    every10 = Schedule(every=10, lr=1e-2, rows=64, substeps=8)  # what nodedsl.train.fit does
    previous = Schedule(every=5, lr=1e-3, rows=None, substeps=16)
    if "vdp" in args.problems:
        rows = compare(
            van_der_pol(args.seed),
            [
                ("taylor(order=2, step=0.04) + remainder, Gamma fit every 5", {"order": 2, "step": 0.04}, every5),
                ("taylor(order=2, step=0.04) + remainder, Gamma fit every 10", {"order": 2, "step": 0.04}, every10),
                ("taylor(order=3, step=0.04) + remainder, Gamma fit every 5", {"order": 3, "step": 0.04}, every5),
                ("taylor(order=2, step=0.04) + remainder, previous schedule", {"order": 2, "step": 0.04}, previous),
            ][: 2 if args.main_only else None][-1 if args.main_only else 0 :],
            args.budget_vdp,
            eval_every=10,
            target=args.target_vdp,
            tol=tuple(args.tol),
        )
        print("\n".join(rows), flush=True)
    if "stiff" in args.problems:
        rows = compare(
            stiff(args.seed),
            [
                (
                    "taylor(order=4, step=0.002) + remainder (2 steps per transition)",
                    {"order": 4, "step": 0.002},
                    every10,
                ),
                ("taylor(order=3, step=0.001) + remainder (4 steps)", {"order": 3, "step": 0.001}, every10),
                ("taylor(order=3, step=0.002) + remainder (2 steps)", {"order": 3, "step": 0.002}, every10),
                (
                    "taylor(order=3, step=0.004, gamma=matrix) + remainder (1 step)",
                    {"order": 3, "step": 0.004, "gamma": "matrix"},
                    every10,
                ),
            ][: 1 if args.main_only else None],
            args.budget_stiff,
            eval_every=10,
            target=args.target_stiff,
            tol=tuple(args.tol),
        )
        print("\n".join(rows))
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
