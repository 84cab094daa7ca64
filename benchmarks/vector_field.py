"""Compiled vector fields against the same fields written by hand in torch.

Three models, float32, batch 1 and 1024, forward only (``torch.no_grad``, as in simulation) and
forward + backward (loss = sum of squares, gradients for the state and every parameter, as in
training):

* ``Pendulum`` (examples/pendulum.node): known gravity, a net friction term, a ``positive`` L;
* ``MassSpringDamper`` (examples/msd.node): port-Hamiltonian, the potential V is a net inside H,
  so grad H needs autograd through the net; hand-written with ``torch.autograd.grad`` of H;
* ``Chain10``: 10 ``MassSpringDamperTruth`` masses coupled by 9 ``Spring`` components through one
  ``couple`` (29 states); hand-written vectorized over the masses.

The hand-written modules copy the compiled model's net weights and parameters, and the script
checks that both give the same field before timing. Times are medians over repeated blocks,
compiled and hand-written blocks interleaved in one run. Ratio = compiled / hand-written.

Usage::

    python benchmarks/vector_field.py [--repeats 31] [--min-block 0.05] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import nodedsl

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

MSD_TRUTH = """
model MassSpringDamperTruth : port_hamiltonian {
    state q = 1.0
    state p = 0.0
    param m = 1.0
    param k = 2.0
    param c = 0.3
    hamiltonian = p^2 / (2 * m) + k * q^2 / 2 + 0.5 * q^4
    R = [[0, 0], [0, c + 0.1 * p^2]]
    port force { G = [[0], [1]] }
}

model Spring : port_hamiltonian {
    state stretch = 0.0
    param k = 1.0
    hamiltonian = k * stretch^2 / 2
    J = [[0]]
    port ends { G = [[-1, 1]] }
}
"""


def chain_params(n: int):
    masses = [1.0 + 0.1 * i for i in range(n)]
    stiff = [2.0 - 0.05 * i for i in range(n)]
    springs = [1.5 + 0.1 * j for j in range(n - 1)]
    return masses, stiff, springs


def chain_source(n: int = 10) -> str:
    """``Chain{n}``: n masses, n - 1 springs; spring j's ends are masses j (end 0) and j + 1 (end 1)."""
    masses, stiff, springs = chain_params(n)
    lines = [MSD_TRUTH, f"model Chain{n} : port_hamiltonian {{"]
    for i in range(n):
        lines.append(f"    sub m{i} = MassSpringDamperTruth(m = {masses[i]:g}, k = {stiff[i]:g})")
    for j in range(n - 1):
        lines.append(f"    sub s{j} = Spring(k = {springs[j]:g})")
    # ports: [m0.force .. m{n-1}.force, s0.ends (2) .. ]; u = C y, C skew
    size = n + 2 * (n - 1)
    C = [[0] * size for _ in range(size)]
    for j in range(n - 1):
        for end, mass in ((0, j), (1, j + 1)):
            e = n + 2 * j + end
            C[mass][e] = -1  # the mass feels minus the force the spring's end reports
            C[e][mass] = 1  # the spring's end moves with the mass
    ports = [f"m{i}.force" for i in range(n)] + [f"s{j}.ends" for j in range(n - 1)]
    rows = ", ".join("[" + ", ".join(str(v) for v in row) + "]" for row in C)
    lines.append(f"    couple [{', '.join(ports)}] C = [{rows}]")
    lines.append("}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ hand-written
class PendulumHand(nn.Module):
    def __init__(self, compiled):
        super().__init__()
        self.friction = copy.deepcopy(compiled.nets["friction"])
        self.raw_L = nn.Parameter(compiled.learned["L"].detach().clone())
        self.g = 9.81

    def forward(self, t, x, u):
        theta, omega = x[:, 0], x[:, 1]
        L = F.softplus(self.raw_L)
        domega = -self.g / L * torch.sin(theta) + u[:, 0] - self.friction(x[:, 1:2])[:, 0]
        return torch.stack([omega, domega], dim=-1)


class MassSpringDamperHand(nn.Module):
    """dx/dt = (J - R) grad H + G u with grad H by autograd (V is a net)."""

    def __init__(self, compiled):
        super().__init__()
        self.V = copy.deepcopy(compiled.nets["V"])
        self.damping = copy.deepcopy(compiled.nets["damping"])
        self.m = 1.0

    def forward(self, t, x, u):
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            H = xg[:, 1] ** 2 / (2 * self.m) + self.V(xg[:, :1])[:, 0]
            (grad,) = torch.autograd.grad(H.sum(), xg, create_graph=torch.is_grad_enabled() or x.requires_grad)
        dq, dp = grad[:, 1], -grad[:, 0] - self.damping(x[:, 1:2])[:, 0] * grad[:, 1] + u[:, 0]
        return torch.stack([dq, dp], dim=-1)


class ChainHand(nn.Module):
    """The chain, vectorized: x = [m0.q, m0.p, ..., m{n-1}.p, s0.stretch, ..., s{n-2}.stretch]."""

    def __init__(self, n: int):
        super().__init__()
        masses, stiff, springs = chain_params(n)
        self.n = n
        self.register_buffer("m", torch.tensor(masses))
        self.register_buffer("k", torch.tensor(stiff))
        self.register_buffer("ks", torch.tensor(springs))

    def forward(self, t, x, u):
        n = self.n
        qp = x[:, : 2 * n].reshape(-1, n, 2)
        q, p, s = qp[..., 0], qp[..., 1], x[:, 2 * n :]
        v = p / self.m
        f = self.ks * s
        force = F.pad(f, (0, 1)) - F.pad(f, (1, 0))
        dp = -(self.k * q + 2 * q**3) - (0.3 + 0.1 * p**2) * v + force
        return torch.cat([torch.stack([v, dp], dim=-1).reshape(-1, 2 * n), v[:, 1:] - v[:, :-1]], dim=-1)


# ------------------------------------------------------------------------------------------ timing
def _block(fn, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def compare(fn_a, fn_b, repeats: int, min_block: float) -> tuple[float, float]:
    """Median seconds per call of fn_a and fn_b, blocks interleaved."""
    for _ in range(5):
        fn_a(), fn_b()
    inner = 1
    while _block(fn_a, inner) * inner < min_block and inner < 1 << 16:
        inner *= 2
    ta, tb = [], []
    for _ in range(repeats):
        ta.append(_block(fn_a, inner))
        tb.append(_block(fn_b, inner))
    return statistics.median(ta), statistics.median(tb)


def cases():
    torch.manual_seed(0)
    pend = nodedsl.load(EXAMPLES / "pendulum.node").model("Pendulum")
    msd = nodedsl.load(EXAMPLES / "msd.node").model("MassSpringDamper")
    chain = nodedsl.loads(chain_source(10)).model("Chain10")
    return [
        ("Pendulum", pend, PendulumHand(pend)),
        ("MassSpringDamper", msd, MassSpringDamperHand(msd)),
        ("Chain10 (29 states)", chain, ChainHand(10)),
    ]


def _inputs(model, batch: int, gen):
    n, m = len(model.state_names), len(model.input_names)
    return torch.rand(batch, n, generator=gen) - 0.5, torch.rand(batch, m, generator=gen) - 0.5


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--min-block", type=float, default=0.05, help="seconds per timed block")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: stable timings on a shared 2-core machine, where 2 threads "
        "spin against other processes)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, python {sys.version.split()[0]}, "
        f"median of {args.repeats} blocks"
    )
    rows = []
    gen = torch.Generator().manual_seed(0)
    t = torch.tensor(0.1)
    for name, compiled, hand in cases():
        # same field before timing
        x, u = _inputs(compiled, 64, gen)
        torch.testing.assert_close(compiled.field(t, x, u), hand(t, x, u), rtol=1e-4, atol=1e-5)
        params = list(compiled.parameters()) + list(hand.parameters())
        for batch in (1, 1024):
            x, u = _inputs(compiled, batch, gen)
            xg = x.clone().requires_grad_(True)

            def fwd(f):
                def run():
                    with torch.no_grad():
                        f(t, x, u)

                return run

            def fwd_bwd(f):
                def run():
                    for p in params:
                        p.grad = None
                    xg.grad = None
                    f(t, xg, u).square().sum().backward()

                return run

            for mode, wrap in (("forward", fwd), ("fwd+bwd", fwd_bwd)):
                tc, th = compare(wrap(compiled.field), wrap(hand), args.repeats, args.min_block)
                rows.append((name, batch, mode, tc, th))
                print(
                    f"  {name:<20} batch {batch:>5} {mode:<8} compiled {tc * 1e6:9.1f} us   hand {th * 1e6:9.1f} us"
                    f"   ratio {tc / th:5.2f}",
                    flush=True,
                )
    print()
    print("| model | batch | pass | compiled (us) | hand-written (us) | compiled / hand |")
    print("|---|---:|---|---:|---:|---:|")
    for name, batch, mode, tc, th in rows:
        print(f"| {name} | {batch} | {mode} | {tc * 1e6:.1f} | {th * 1e6:.1f} | {tc / th:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
