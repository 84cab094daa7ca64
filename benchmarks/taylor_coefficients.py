"""Taylor coefficients of compiled models three ways: Taylor-mode AD, symbolic, nested jvp.

For each model and order p, the time to compute ``[x', ..., x^(p)]`` at 300 states (float64, one
thread), forward only and forward + backward (gradients of the sum of squares with respect to the
learned parameters, what training with a ``taylor`` solver does), median of repeats:

* ``jet``: Taylor-mode AD over the compiled field (``nodedsl/_fxjet.py``), what
  ``CompiledModel.taylor_coefficients`` uses when every op of the field has a rule;
* ``symbolic``: the Lie derivatives from ``nodedsl/derive.py`` (none when a net's second derivative
  is needed);
* ``nested jvp``: ``solvers.derivatives.taylor_coefficients`` on a plain callable (``torch.func.jvp``).

Usage::

    python benchmarks/taylor_coefficients.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.compiler.jet import jet_function
from nodedsl.solvers.derivatives import taylor_coefficients

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import tlnode
import vector_field


def _median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _models():
    return [
        ("Pendulum (friction net)", nodedsl.load(ROOT / "examples/pendulum.node").model("Pendulum")),
        ("NeuralVdP (64x64 MLP)", nodedsl.loads(tlnode.VDP_SOURCE).model("NeuralVdP")),
        ("Van der Pol (known)", nodedsl.loads(tlnode.VDP_SOURCE).model("VanDerPolTruth")),
        ("Stiff linear (learned A)", tlnode.stiff(0).model),
        ("Chain10 (29 states)", nodedsl.loads(vector_field.chain_source(10)).model("Chain10")),
        ("Lotka-Volterra", nodedsl.load(ROOT / "examples/lotka_volterra.node").model("LotkaVolterra")),
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, 1 thread, float64, 300 states, median of {args.repeats}; "
        "ms forward / forward+backward\n"
    )
    print("| model | order | jet | symbolic | nested jvp |")
    print("|---|---:|---:|---:|---:|")
    for name, model in _models():
        model = model.double()
        n = len(model.state_names)
        x = torch.randn(300, n, generator=torch.Generator().manual_seed(1)) * 0.5
        t = torch.tensor(0.0)
        u = model.default_inputs(x)
        params = [p for p in model.parameters() if p.requires_grad]
        for order in (2, 3, 4):
            jet = jet_function(model._field, order, n, list(model._nets()))
            methods = {
                "jet": None
                if jet is None
                else (lambda: list(jet(t, x, u, x, model._pargs(), model._nets()).split(n, -1))),
                "symbolic": lambda: [c for c in _symbolic(model, t, x, order, u)],
                "nested jvp": lambda: taylor_coefficients(lambda tt, xx: model.field(tt, xx, u), t, x, order),
            }
            cells = []
            for fn in methods.values():
                try:
                    if fn is None:
                        raise NotImplementedError
                    fn()
                except NotImplementedError:
                    cells.append("-")
                    continue
                fwd = _median_ms(lambda: [c.detach() for c in fn()], args.repeats)
                if params:
                    bwd = _median_ms(
                        lambda: torch.autograd.grad(sum(c.square().sum() for c in fn()), params, allow_unused=True),
                        args.repeats,
                    )
                    cells.append(f"{fwd:.2f} / {bwd:.2f}")
                else:
                    cells.append(f"{fwd:.2f} / -")
            print(f"| {name} | {order} | " + " | ".join(cells) + " |", flush=True)
    return 0


def _symbolic(model, t, x, order, u):
    """The symbolic Lie-derivative function alone (NotImplementedError when there is none)."""
    fn = model._derived_function(order)
    out = fn(t, x, u, x, model._pargs(), model._nets())
    return out.split(x.shape[-1], dim=-1)


if __name__ == "__main__":
    raise SystemExit(main())
