"""The compiled fast path of training (``compile = whole_step``): each solver step compiled as one graph.

Small models on fixed-step solvers spend their training time in per-operation dispatch: tens of fx
nodes per field call, ``stages x steps`` field calls per window, and as many again backward. Here a
whole solver step (every stage's field call and the Runge-Kutta update) is handed to ``torch.compile``
(AOTAutograd compiles its backward the same way) and called once per step of the window: the stage
times and the interpolated inputs of all the window's stages are computed up front in two ops and
passed in, so one graph serves every step of every window. Unrolling the whole window into one graph
was tried first: its inductor compile took over 10 minutes for the pendulum on the loaded machine (a
per-step graph is ``steps`` times smaller). The loss, the continuity and constraint terms and the
optimizer step stay eager (a few ops).

The eager path stays the reference: ``tests/test_fast_path.py`` compares losses and gradients in
float64. What the fast path does not cover falls back to eager with a stated reason (``coverage``),
recorded in the run's metrics (``metrics.json``: ``compile``).

Compiled code is cached by torch's inductor cache (``TORCHINDUCTOR_CACHE_DIR``; when unset, nodedsl
sets it to ``$XDG_CACHE_HOME/nodedsl/inductor``, default ``~/.cache/nodedsl/inductor``), so a second
run of the same model and window shape skips most of the compile.

Example:
    >>> import torch, nodedsl
    >>> from nodedsl.solvers import make_solver
    >>> model = nodedsl.loads("model M { state x = 1\\n param k = 2 learn\\n der(x) = -k*x }").model("M")
    >>> fast = WholeStep(model, make_solver("rk4", step=0.1), [0], True, backend="eager")
    >>> states, yhat = fast(torch.ones(3, 1), torch.zeros(3), torch.zeros(3, 3, 0), torch.zeros(3, 3), [0.0, 0.1, 0.2])
    >>> states.shape, round(float(states[0, -1, 0].detach()), 4)
    (torch.Size([3, 3, 1]), 0.6703)
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["WholeStep", "coverage", "inductor_cache_dir", "make_fast"]

MODES = ("auto", "off", "whole_step", "native")  # native: generated C (native.py)
AUTO_MIN_STEPS = 2000  # ``auto`` compiles only runs of at least this many optimizer steps (see training.md)


def inductor_cache_dir() -> str:
    """Where compiled kernels are cached: ``TORCHINDUCTOR_CACHE_DIR`` if set, else nodedsl's cache folder
    (set for this process, so torch uses it)."""
    if "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(base / "nodedsl" / "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


def coverage(model, solver, cfg, steps_planned: int) -> str | None:
    """Why the fast path does not apply to this run (None: it applies). ``steps_planned``: optimizer steps."""
    from ..solvers.explicit import ExplicitRK

    mode = getattr(cfg, "compile", "off")
    if mode == "off":
        return "compile = off"
    if mode == "auto" and steps_planned < AUTO_MIN_STEPS:
        return (
            f"compile = auto: {steps_planned} optimizer steps, fewer than {AUTO_MIN_STEPS} (the compile would not pay)"
        )
    if not isinstance(solver, ExplicitRK):
        return f"solver '{solver.name}' is not a fixed-step explicit Runge-Kutta method (adaptive, implicit, Taylor...)"
    if cfg.gradient_mode() != "backprop":
        return f"gradient = {cfg.gradient_mode()!r}: only backprop is compiled"
    system = getattr(model, "system", None)
    if getattr(system, "events", None):
        return "the model has events (when blocks)"
    if getattr(model, "noise", None) is not None:
        return "the model is stochastic (an SDE)"
    if cfg.assimilate is not None:
        return "assimilate (nudging) is not compiled"
    if mode != "native" and _differentiates_a_net(model):
        return "the field differentiates a net (e.g. grad of a learned H): AOTAutograd has no double backward"
    return None


def _differentiates_a_net(model) -> bool:
    from ..compiler import ops

    graph = getattr(getattr(model, "_field", None), "graph", None)
    # mlp_grad (closed form, autograd only as its fallback) is excluded too: not yet measured compiled
    grads = {ops.net_grad, getattr(ops, "mlp_grad", ops.net_grad)}
    return graph is not None and any(node.target in grads for node in graph.nodes)


class WholeStep:
    """``(x0 [B, n], t0 [B], u [B, K+1, m], tb [B, K+1], grid) -> (states [B, K+1, n], outputs)``; the step
    is compiled once (and by torch per batch size and grad mode).

    ``obs_map``: the state index of each output, None where the output is computed (``model.observe``).
    ``backend``: torch.compile's backend (``inductor``; ``aot_eager`` traces and differentiates the same
    graph without generating code, what the tests use)."""

    def __init__(self, model, solver, obs_map: Sequence[int | None], autonomous: bool, backend: str = "inductor"):
        self.model, self.solver, self.autonomous = model, solver, autonomous
        self.obs_map = list(obs_map)
        self.backend = backend
        self.compiled = None  # the compiled step
        self.tables: dict = {}
        self.seen: set = set()
        self.compile_seconds = 0.0  # the first call of each compiled function (tracing and code generation)
        if backend == "inductor":
            inductor_cache_dir()

    def plan(self, grid: list[float]) -> list[tuple[float, list[tuple[float, int, float]]]]:
        """Per step: ``h`` and per stage node ``(s, k, w)``: local time, input sample and weight (Python numbers)."""
        from ..solvers.base import step_plan

        steps = []
        last = len(grid) - 2
        for a, (n, h) in zip(grid, step_plan(grid, self.solver.step_size)):
            for j in range(n):
                nodes = []
                for c in self.solver.nodes:
                    s = a + (j + c) * h
                    k = min(max(bisect.bisect_right(grid, s) - 1, 0), last)
                    w = min(max((s - grid[k]) / (grid[k + 1] - grid[k]), 0.0), 1.0)
                    nodes.append((s, k, w))
                steps.append((h, nodes))
        return steps

    def _step(self):
        """The compiled step: every stage's field call and the update, one graph (and its backward). The
        step size, stage times and inputs are arguments (tensors), so one graph serves every step of every
        window (float32 grids give steps that differ in the last bits: constants would recompile)."""
        if self.compiled is None:
            model, autonomous = self.model, self.autonomous
            stages, b = self.solver._stages, self.solver._b

            def step(x, t0, ts, us, h):
                ks: list = []
                for node, row in stages:
                    y = x
                    for j, a in row:
                        y = y + ks[j] * (a * h)
                    s = ts[node]
                    ks.append(model.field(s if autonomous else t0 + s, y, us[node]))
                for j, bj in b:
                    x = x + ks[j] * (bj * h)
                return x

            self.compiled = torch.compile(step, backend=self.backend, dynamic=False)
        return self.compiled

    def _tables(self, grid: tuple, dtype, device):
        """Per grid: the steps' sizes, whether each ends on a sample, the stage times ``[steps, nodes]`` and
        the inputs' sample indices and weights ``[steps * nodes]``."""
        key = (grid, dtype, device)
        if key not in self.tables:
            from ..solvers.base import step_plan

            plan = self.plan(list(grid))
            marks, i = set(), 0  # the steps that end on a grid time: their states are the outputs
            for n, _ in step_plan(list(grid), self.solver.step_size):
                i += n
                marks.add(i - 1)
            ts = torch.tensor([[s for s, _, _ in nodes] for _, nodes in plan], dtype=dtype, device=device)
            ks = torch.tensor([k for _, nodes in plan for _, k, _ in nodes], dtype=torch.long, device=device)
            ws = torch.tensor([w for _, nodes in plan for _, _, w in nodes], dtype=dtype, device=device)
            hs = torch.tensor([h for h, _ in plan], dtype=dtype, device=device)
            self.tables[key] = (hs, [m in marks for m in range(len(plan))], ts, ks, ws)
        return self.tables[key]

    def __call__(self, x0, t0, u, tb, grid) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(float(g) for g in (grid.tolist() if isinstance(grid, torch.Tensor) else grid))
        hs, marks, ts, ks, ws = self._tables(key, x0.dtype, x0.device)
        nodes = ts.shape[1]
        # every stage's input at once: [steps, nodes, B, m] (linear interpolation between the samples)
        du = u[:, 1:] - u[:, :-1]
        us = u[:, ks] + ws[:, None] * du[:, ks]
        us = us.transpose(0, 1).reshape(len(marks), nodes, *u.shape[:1], u.shape[-1])
        x, ys = x0, [x0]
        fn = self._step()
        for i in range(len(marks)):
            signature = (tuple(x.shape), torch.is_grad_enabled())
            if signature in self.seen:
                x = fn(x, t0, ts[i], us[i], hs[i])
            else:
                started = time.perf_counter()
                x = fn(x, t0, ts[i], us[i], hs[i])
                self.compile_seconds += time.perf_counter() - started
                self.seen.add(signature)
            if marks[i]:
                ys.append(x)
        states = torch.stack(ys, dim=1)
        if all(i is not None for i in self.obs_map):
            return states, states[..., self.obs_map]
        flat = self.model.observe(tb.reshape(-1), states.reshape(-1, states.shape[-1]), u.reshape(tb.numel(), -1))
        return states, flat.reshape(*states.shape[:-1], flat.shape[-1])


def make_fast(model, solver, cfg, obs_map, autonomous: bool, train) -> tuple[WholeStep | None, dict]:
    """The trainer's fast path (None: eager) and what the run's metrics record about it."""
    mode = getattr(cfg, "compile", "off")
    batches = sum(-(-len(rows) // cfg.batch) for rows, _ in train.groups)
    reason = coverage(model, solver, cfg, batches * cfg.epochs)
    info = {"mode": mode, "used": reason is None, "reason": reason}
    if reason is not None:
        return None, info
    backend = os.environ.get("NODEDSL_COMPILE_BACKEND", "inductor")  # tests: aot_eager (no code generation)
    info["backend"] = backend
    if backend == "inductor":
        info["cache"] = inductor_cache_dir()
    return WholeStep(model, solver, obs_map, autonomous, backend=backend), info
