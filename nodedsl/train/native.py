"""The native fast path of training (``compile = native``): generated C for the whole rollout and its adjoint.

Per-operation dispatch dominates the training of small models (tens of fx nodes per field call, ``stages x
steps`` field calls per window, as many backward). Here the field and its vector-Jacobian product are
generated as plain C (:mod:`nodedsl.compiler.cgen`, no torch headers), with a fixed-step explicit
Runge-Kutta rollout of a whole batch of windows and its discrete adjoint (:mod:`nodedsl.train.native_rk`),
compiled by gcc in about a second and loaded with ctypes. One C call rolls out every window of the batch
and keeps each stage's input; one C call walks the steps back and returns the gradients of the parameter
vector and of the initial states. :class:`NativeStep` has the call signature of
:class:`nodedsl.train.fast.WholeStep`, so the trainer uses it where it uses that: the loss, continuity,
constraints, the observation (when not a selection of states) and the optimizer stay eager torch.

The shared objects are cached under ``$XDG_CACHE_HOME/nodedsl/native`` (default ``~/.cache``), named by a
hash of the C source, the compiler's version and flags, so a second run of the same model compiles
nothing; they are written atomically (a temporary file, then a rename). What the generator does not
cover (an op without a native rule, no C compiler, a compile error) falls back to eager with the reason.

Example:
    >>> import torch, nodedsl, shutil
    >>> from nodedsl.solvers import make_solver
    >>> model = nodedsl.loads("model M { state x = 1\\n param k = 2 learn\\n der(x) = -k*x }").model("M")
    >>> if shutil.which("gcc"):
    ...     fast = NativeStep(model, make_solver("rk4", step=0.1), [0], True)
    ...     grid = [0.0, 0.1, 0.2]
    ...     states, yhat = fast(torch.ones(3, 1), torch.zeros(3), torch.zeros(3, 3, 0), torch.zeros(3, 3), grid)
    ...     print(round(float(states[0, -1, 0].detach()), 4))
    ... else:
    ...     print(0.6703)
    0.6703
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..compiler.cgen import Unsupported, field_code, param_vector
from .fast import WholeStep, coverage
from .fast import make_fast as make_compiled
from .native_rk import rollout_source

__all__ = ["NativeStep", "make_fast", "native_cache_dir", "native_coverage"]

FLAGS = ("-O3", "-shared", "-fPIC", "-fno-math-errno", "-march=native")  # no -ffast-math: float64 must match eager
_LOADED: dict[str, ctypes.CDLL] = {}
# compile = auto takes the native path for runs of at least this many optimizer steps: its compile (1-3 s
# on the loaded 2-core machine, nothing when cached) pays back after 20-80 steps of the peer benchmark's
# models (docs/benchmarks.md); whole_step keeps its own threshold (fast.AUTO_MIN_STEPS)
AUTO_NATIVE_MIN_STEPS = 100


class NativeUnavailable(Exception):
    """No C compiler, or it failed: the message is the fallback reason."""


def native_cache_dir() -> Path:
    """Where compiled shared objects are cached: ``$XDG_CACHE_HOME/nodedsl/native`` (default ``~/.cache``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nodedsl" / "native"


def compiler() -> str | None:
    """The C compiler (``$NODEDSL_CC``, else ``gcc``), None when there is none."""
    return shutil.which(os.environ.get("NODEDSL_CC", "gcc"))


@functools.cache
def _compiler_id(cc: str) -> str:
    """The compiler's version line and the CPU (``-march=native`` code runs only on the CPU it was built on)."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout.split("\n")[0]
    cpu = platform.machine()
    try:
        flags = [ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith(("flags", "Features"))]
        cpu += flags[0] if flags else ""
    except OSError:
        pass
    return version + "|" + cpu


def build(source: str) -> tuple[ctypes.CDLL, float]:
    """Compile ``source`` to a shared object (or take it from the cache) and load it; (library, seconds spent
    compiling: 0 when cached). Raises :class:`NativeUnavailable` with the reason."""
    cc = compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (gcc; set NODEDSL_CC to use another)")
    digest = hashlib.sha256("\n".join([source, _compiler_id(cc), *FLAGS]).encode()).hexdigest()[:32]
    if digest in _LOADED:
        return _LOADED[digest], 0.0
    folder = native_cache_dir()
    target = folder / f"{digest}.so"
    spent = 0.0
    if not target.exists():
        started = time.perf_counter()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                src, out = Path(tmp) / "field.c", Path(tmp) / "field.so"
                src.write_text(source)
                cmd = [cc, *FLAGS, str(src), "-o", str(out), "-lm"]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    raise NativeUnavailable(f"the C compiler failed: {proc.stderr.strip()[:300]}")
                os.replace(out, target)  # atomic: a concurrent run sees the whole file or none
        except (OSError, subprocess.SubprocessError) as err:
            raise NativeUnavailable(f"the native build failed: {type(err).__name__}: {err}") from None
        spent = time.perf_counter() - started
    try:
        lib = ctypes.CDLL(str(target))
    except OSError as err:
        raise NativeUnavailable(f"the native library does not load: {err}") from None
    for name in ("nd_forward", "nd_backward"):
        getattr(lib, name).restype = ctypes.c_int
    _LOADED[digest] = lib
    return lib, spent


def _environment(model) -> str | None:
    if model.x0_default.device.type != "cpu":
        return f"the model is on {model.x0_default.device}: native code runs on the CPU"
    if compiler() is None:
        return "no C compiler found (gcc; set NODEDSL_CC to use another)"
    return None


def native_coverage(model) -> str | None:
    """Why the native path does not apply to this model beyond :func:`nodedsl.train.fast.coverage` (None:
    it applies): a model on another device than the CPU, an op without a native rule, no C compiler.

    Example:
        >>> import nodedsl
        >>> m = nodedsl.loads("model M { state x = 1\\n der(x) = -x }").model("M")
        >>> native_coverage(m) in (None, "no C compiler found (gcc; set NODEDSL_CC to use another)")
        True
    """
    reason = _environment(model)
    if reason is not None:
        return reason
    try:
        field_code(model)
    except Unsupported as err:
        return str(err)
    return None


def _ptr(t: torch.Tensor | None) -> ctypes.c_void_p:
    return ctypes.c_void_p(0 if t is None else t.data_ptr())


class _Rollout(torch.autograd.Function):
    """``(x0, t0, u, P) -> states [B, K+1, n]``: one C call forward, one backward (to ``x0`` and ``P``)."""

    @staticmethod
    def forward(ctx, x0, t0, u, P, step, tables):
        lib, hs, ts, ks, ws, marks = tables
        B, n = x0.shape
        S, K1 = hs.shape[0], u.shape[1]
        dt = x0.dtype
        x0c, t0c, uc, Pc = (v.detach().to(dt).contiguous() for v in (x0, t0, u, P))
        states = torch.empty(B, K1, n, dtype=dt)
        keep = any(ctx.needs_input_grad)
        Y = torch.empty(B, S, len(step.solver._stages), n, dtype=dt) if keep else None
        args = [ctypes.c_int(B), ctypes.c_int(S), ctypes.c_int(K1), *map(_ptr, (x0c, t0c, uc, Pc, hs, ts, ks, ws))]
        if lib.nd_forward(*args, _ptr(marks), _ptr(states), _ptr(Y)) != 0:
            raise MemoryError("native rollout: out of memory")
        if keep:
            ctx.save_for_backward(t0c, uc, Pc, Y)
            ctx.tables = tables
        return states

    @staticmethod
    def backward(ctx, gstates):
        lib, hs, ts, ks, ws, marks = ctx.tables
        t0c, uc, Pc, Y = ctx.saved_tensors
        B, S, _, n = Y.shape
        g = gstates.to(Y.dtype).contiguous()
        gx0 = torch.empty(B, n, dtype=Y.dtype)
        gP = torch.zeros(Pc.shape[0], dtype=Y.dtype)
        args = [ctypes.c_int(B), ctypes.c_int(S), ctypes.c_int(uc.shape[1]), *map(_ptr, (t0c, uc, Pc, hs, ts))]
        if lib.nd_backward(*args, *map(_ptr, (ks, ws, marks, Y, g, gx0, gP))) != 0:
            raise MemoryError("native rollout adjoint: out of memory")
        need = ctx.needs_input_grad
        return gx0 if need[0] else None, None, None, gP if need[3] else None, None, None


class NativeStep(WholeStep):
    """``(x0 [B, n], t0 [B], u [B, K+1, m], tb [B, K+1], grid) -> (states [B, K+1, n], outputs)`` by
    generated C (see the module docstring); the step tables are :class:`WholeStep`'s. Raises
    :class:`nodedsl.compiler.cgen.Unsupported` when the field has an op without a native rule."""

    def __init__(self, model, solver, obs_map: Sequence[int | None], autonomous: bool):
        super().__init__(model, solver, obs_map, autonomous, backend="native")
        self.code = field_code(model)
        self.libs: dict = {}
        self.ctables: dict = {}

    def lib(self, dtype: torch.dtype) -> ctypes.CDLL:
        """The compiled library for ``dtype`` (float64 or float32: the C ``real`` type)."""
        if dtype not in self.libs:
            if dtype not in (torch.float64, torch.float32):
                raise NativeUnavailable(f"native code is float64 or float32, not {dtype}")
            real = "double" if dtype == torch.float64 else "float"
            c = self.code
            rk = rollout_source(self.solver, self.autonomous, c.n_state, c.n_input, c.n_param)
            flag = "#define ND_FLOAT32 1\n" if real == "float" else ""
            head = f"#include <tgmath.h>\n#include <stdint.h>\n#include <stdlib.h>\n{flag}typedef {real} real;\n"
            self.libs[dtype], spent = build(head + c.source + rk)
            self.compile_seconds += spent
        return self.libs[dtype]

    def __call__(self, x0, t0, u, tb, grid) -> tuple[torch.Tensor, torch.Tensor]:
        key = tuple(float(g) for g in (grid.tolist() if isinstance(grid, torch.Tensor) else grid))
        ck = (key, x0.dtype)
        if ck not in self.ctables:
            hs, marks, ts, ks, ws = self._tables(key, x0.dtype, x0.device)
            m = torch.tensor(marks, dtype=torch.uint8)
            self.ctables[ck] = (self.lib(x0.dtype), hs, ts.contiguous(), ks.contiguous(), ws.contiguous(), m)
        if u.shape[1] != len(key):
            raise ValueError(f"inputs cover {u.shape[1]} samples, the grid {len(key)}")
        states = _Rollout.apply(x0, t0, u, param_vector(self.model), self, self.ctables[ck])
        if all(i is not None for i in self.obs_map):
            return states, states[..., self.obs_map]
        flat = self.model.observe(tb.reshape(-1), states.reshape(-1, states.shape[-1]), u.reshape(tb.numel(), -1))
        return states, flat.reshape(*states.shape[:-1], flat.shape[-1])


def make_native(model, solver, obs_map, autonomous: bool, info: dict) -> tuple[NativeStep | None, dict]:
    """The trainer's native fast path (None: eager, with the reason in ``info``); builds the code now, so a
    compiler failure falls back before training starts."""
    reason = _environment(model)
    if reason is None:
        try:
            step = NativeStep(model, solver, obs_map, autonomous)
            step.lib(model.x0_default.dtype)
        except (Unsupported, NativeUnavailable) as err:
            reason = str(err)
    if reason is not None:
        info.update(used=False, reason=reason)
        return None, info
    info.update(backend="native", cache=str(native_cache_dir()))
    return step, info


def make_fast(model, solver, cfg, obs_map, autonomous: bool, train) -> tuple[WholeStep | None, dict]:
    """The trainer's fast path for ``cfg.compile`` (None: eager) and what the run's metrics record about it:
    ``native`` here, and ``auto`` when the native path covers the run and it has at least
    :data:`AUTO_NATIVE_MIN_STEPS` optimizer steps; the rest by :func:`nodedsl.train.fast.make_fast`."""
    mode = getattr(cfg, "compile", "off")
    if mode == "auto":
        steps = sum(-(-len(rows) // cfg.batch) for rows, _ in train.groups) * cfg.epochs
        as_native = cfg.model_copy(update={"compile": "native"})
        if steps >= AUTO_NATIVE_MIN_STEPS and coverage(model, solver, as_native, steps) is None:
            step, info = make_native(model, solver, obs_map, autonomous, {"mode": "auto", "used": True, "reason": None})
            if step is not None:
                return step, info
    if mode != "native":
        return make_compiled(model, solver, cfg, obs_map, autonomous, train)
    reason = coverage(model, solver, cfg, 0)
    info = {"mode": "native", "used": reason is None, "reason": reason}
    if reason is not None:
        return None, info
    return make_native(model, solver, obs_map, autonomous, info)
