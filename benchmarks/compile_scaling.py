"""How the front end scales with model size: chains of N masses joined by N - 1 springs.

Each chain is one port-Hamiltonian composite of 2N - 1 sub-models (``Mass`` with a left and a
right force port, ``Spring`` with its two ends) and N - 1 ``couple`` statements, one per spring.
The phases are timed separately:

* ``parse``     text -> AST (Lark)
* ``check``     names, sizes, imports (``check_source``)
* ``structure`` the J-skew / R-PSD proofs that ``nodedsl.loads`` runs (they lower every pH model)
* ``lower``     ``Program.system``: the flat SymPy system
* ``compile``   ``CompiledModel``: torch.fx graphs of the field, outputs, energy, ...

``load`` = parse + check + structure is what ``nodedsl.load``/``loads`` costs. Times are process CPU
seconds (``time.process_time``: the machines are shared, and wall time measures the other jobs too).
The script fits the log-log slope of the total time against N and prints it.

Usage::

    python benchmarks/compile_scaling.py                 # N = 10, 100, 1000
    python benchmarks/compile_scaling.py --sizes 10 30 100 --budget 60
"""

from __future__ import annotations

import argparse
import math
import sys
import time

COMPONENTS = """
model Mass : port_hamiltonian {
    state q = 0.0
    state p = 0.0
    param m = 1.0
    param k = 0.1
    param c = 0.05
    hamiltonian = p^2 / (2 * m) + k * q^2 / 2
    R = [[0, 0], [0, c]]
    port left { G = [[0], [1]] }
    port right { G = [[0], [1]] }
}

model Spring : port_hamiltonian {
    state stretch = 0.0
    param k = 1.0
    hamiltonian = k * stretch^2 / 2
    J = [[0]]
    port ends { G = [[-1, 1]] }
}
"""

# u = C y over [a.right, b.left, s.ends]: the masses feel the spring's end forces, the spring's ends
# move with the masses (skew-symmetric: power-conserving)
COUPLING = "[[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]"


def chain_source(n: int) -> str:
    """A ``.node`` text: model ``Chain`` with n masses and n - 1 springs."""
    lines = [COMPONENTS, "model Chain : port_hamiltonian {"]
    for i in range(n):
        lines.append(f"    sub m{i} = Mass(m = {1.0 + 0.01 * i:g}, q = {0.1 * (i % 7):g})")
    for i in range(n - 1):
        lines.append(f"    sub s{i} = Spring(k = {1.0 + 0.02 * i:g})")
    for i in range(n - 1):
        lines.append(f"    couple [m{i}.right, m{i + 1}.left, s{i}.ends] C = {COUPLING}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def measure(n: int) -> dict[str, float]:
    from nodedsl.compiler.module import CompiledModel
    from nodedsl.frontend.check import check_source
    from nodedsl.frontend.loader import source_from_text
    from nodedsl.program import Program
    from nodedsl.symbolic.lower import lower
    from nodedsl.symbolic.prove import structure_diagnostics

    text = chain_source(n)
    out: dict[str, float] = {"n": n, "states": 3 * n - 1}
    t0 = time.process_time()
    source = source_from_text(text, f"chain{n}.node")
    t1 = time.process_time()
    checked, diags = check_source(source)
    assert not [d for d in diags if d.severity == "error"], diags
    t2 = time.process_time()
    # what nodedsl.loads does after checking: prove J skew and R PSD for every pH model (this lowers them)
    for file, module in source.modules.items():
        for m in module.models:
            diags += structure_diagnostics(checked.infos[(file, m.name)])
    assert not [d for d in diags if d.severity == "error"], diags
    t3 = time.process_time()
    prog = Program(checked, diags)
    system = lower(prog.info("Chain"))
    t4 = time.process_time()
    model = CompiledModel(system, "")
    t5 = time.process_time()
    assert len(model.state_names) == 3 * n - 1
    out.update(parse=t1 - t0, check=t2 - t1, structure=t3 - t2, lower=t4 - t3, compile=t5 - t4)
    out["load"] = out["parse"] + out["check"] + out["structure"]
    out["total"] = out["load"] + out["lower"] + out["compile"]
    return out


def slope(xs, ys) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument(
        "--budget",
        type=float,
        default=600.0,
        help="skip larger sizes once a size's predicted time exceeds this many seconds",
    )
    args = ap.parse_args(argv)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {sys.version.split()[0]}")
    header = (
        f"{'N':>6} {'states':>7} {'parse':>8} {'check':>8} {'structure':>10} {'lower':>9} {'compile':>9} "
        f"{'load':>9} {'total':>9}"
    )
    measure(3)  # warm-up: grammar construction, imports, first-call caches
    print(header)
    rows = []
    for n in sorted(args.sizes):
        if len(rows) >= 2:
            k = slope([r["n"] for r in rows], [r["total"] for r in rows])
            predicted = rows[-1]["total"] * (n / rows[-1]["n"]) ** k
            if predicted > args.budget:
                print(f"{n:>6}  skipped: predicted {predicted:.0f} s (slope {k:.2f}) > budget {args.budget:.0f} s")
                continue
        r = measure(n)
        rows.append(r)
        print(
            f"{r['n']:>6} {r['states']:>7} {r['parse']:>8.3f} {r['check']:>8.3f} {r['structure']:>10.3f} "
            f"{r['lower']:>9.3f} {r['compile']:>9.3f} {r['load']:>9.3f} {r['total']:>9.3f}",
            flush=True,
        )
    if len(rows) >= 2:
        ns = [r["n"] for r in rows]
        for phase in ("parse", "check", "structure", "lower", "compile", "total"):
            print(f"log-log slope of {phase:>9} time vs N: {slope(ns, [r[phase] for r in rows]):.2f}")
    big = [r for r in rows if r["n"] >= 1000]
    if big:
        verdict = "OK" if big[0]["total"] < 10 else "TOO SLOW"
        print(f"N = {big[0]['n']}: total {big[0]['total']:.1f} s (target < 10 s): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
