"""Generate chains of masses joined by springs through power-conserving `couple` statements.

Shared by benchmarks/check_chain.py and benchmarks/compile_scaling.py.
"""

from __future__ import annotations

COMPONENTS = """\
model Mass : port_hamiltonian {
    state p = 0.0
    param m = 1.0
    hamiltonian = p^2 / (2 * m)
    J = [[0]]
    port left { G = [[1]] }
    port right { G = [[1]] }
}

model Spring : port_hamiltonian {
    state stretch = 0.0
    param k = 1.0
    hamiltonian = k * stretch^2 / 2
    J = [[0]]
    port ends { G = [[-1, 1]] }
}
"""

COUPLING = "[[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]"


def chain_source(n: int) -> str:
    """A model `Chain` of n masses and n - 1 springs (2n - 1 sub-models, n - 1 couplings)."""
    lines = [COMPONENTS, "model Chain : port_hamiltonian {"]
    lines += [f"    sub m{i} = Mass(m = {1 + i % 3})" for i in range(n)]
    lines += [f"    sub s{i} = Spring(k = 1.5)" for i in range(n - 1)]
    lines += [f"    couple [m{i}.right, m{i + 1}.left, s{i}.ends] C = {COUPLING}" for i in range(n - 1)]
    lines.append("}")
    return "\n".join(lines) + "\n"
