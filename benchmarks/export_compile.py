"""grad H of a net as explicit operations (``ops.mlp_grad``) against the autograd form (``ops.net_grad``),
and what it enables: ``torch.compile(fullgraph=True)`` and the exporters.

On the MSD (examples/msd.node, port-Hamiltonian, the potential V a net inside H), float64:

* field time, forward (``no_grad``) and forward + backward (loss = sum of squares, gradients for every
  parameter), explicit vs autograd, blocks interleaved, medians; ratio = explicit / autograd;
* ``torch.compile(model.field, fullgraph=True)`` with the inductor backend: compile time (first call),
  the error gap to eager, and the compiled forward time;
* export times: ``torch.export`` of the field, the ONNX export, a 20-step rk4 rollout as pt2.

Usage::

    python benchmarks/export_compile.py [--batch 256] [--repeats 15] [--threads 1] [--no-inductor]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.compiler import ops
from nodedsl.core.tableaus import RK4
from nodedsl.export import programs

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn):
    """(result, wall seconds, CPU seconds of this process): CPU time is the steadier number on shared cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _block(fn, min_time: float = 0.05) -> float:
    """Seconds per call of ``fn``, over a block of at least ``min_time``."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n


def _field_times(model, t, x, u, repeats: int) -> dict[str, float]:
    params = [p for p in model.parameters() if p.requires_grad]
    original = ops.mlp_supported

    def fwd():
        with torch.no_grad():
            model.field(t, x, u)

    def fwd_bwd():
        torch.autograd.grad(model.field(t, x, u).square().sum(), params, allow_unused=True)

    times: dict[str, list[float]] = {}
    for _ in range(repeats):  # interleaved: explicit, autograd, explicit, ...
        for form in ("explicit", "autograd"):
            ops.mlp_supported = original if form == "explicit" else (lambda net: False)
            try:
                times.setdefault(f"{form} forward", []).append(_block(fwd))
                times.setdefault(f"{form} forward+backward", []).append(_block(fwd_bwd))
            finally:
                ops.mlp_supported = original
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-inductor", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = nodedsl.load(ROOT / "examples" / "msd.node").model("MassSpringDamper", torch.float64)
    t = torch.tensor(0.0, dtype=torch.float64)
    x = torch.randn(args.batch, 2, dtype=torch.float64)
    u = torch.randn(args.batch, 1, dtype=torch.float64)
    print(f"MSD field, batch {args.batch}, float64, {args.threads} thread(s)")
    res = _field_times(model, t, x, u, args.repeats)
    for mode in ("forward", "forward+backward"):
        a, b = res[f"explicit {mode}"], res[f"autograd {mode}"]
        print(f"  {mode:17s} explicit {a * 1e6:8.1f} us  autograd {b * 1e6:8.1f} us  ratio {a / b:.2f}")
    if not args.no_inductor:
        compiled = torch.compile(model.field, fullgraph=True)

        def first_call():
            with torch.no_grad():
                return (compiled(t, x, u) - model.field(t, x, u)).abs().max().item()

        gap, wall, cpu = _timed(first_call)
        print(f"  inductor fullgraph compile (first call) wall {wall:.1f} s, CPU {cpu:.1f} s, max |gap| {gap:.1e}")

        def run_compiled():
            with torch.no_grad():
                compiled(t, x, u)

        def run_eager():
            with torch.no_grad():
                model.field(t, x, u)

        pairs = [(_block(run_compiled), _block(run_eager)) for _ in range(args.repeats)]
        c, e = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        print(f"  forward: inductor {c * 1e6:.1f} us, eager {e * 1e6:.1f} us, ratio {c / e:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        ep, wall, cpu = _timed(lambda: programs.export_field(model))
        print(f"  torch.export of the field: wall {wall:.1f} s, CPU {cpu:.1f} s")
        _, wall, cpu = _timed(lambda: programs.save_onnx(ep, Path(tmp) / "f.onnx", ("t", "x", "u"), "dxdt"))
        print(f"  ONNX export of the field: wall {wall:.1f} s, CPU {cpu:.1f} s")
        for steps in (5, 20):
            _, wall, cpu = _timed(lambda: programs.export_rollout(model, RK4, 0.05, steps))
            print(f"  torch.export of a {steps}-step rk4 rollout: wall {wall:.1f} s, CPU {cpu:.1f} s")


if __name__ == "__main__":
    main()
