"""Linear solves for the stiff solvers: dense batched LU, or sparse LU for large sparse Jacobians.

``radau`` and ``rodas4`` factor matrices ``mu I - J`` (``J`` the field's Jacobian, ``[batch, n, n]``).
For small or dense ``J`` a batched dense LU (``torch.linalg.lu_factor``, O(n^3)) is best. For large
``J`` that is mostly zeros (discretized PDEs, reaction networks) a sparse LU
(``scipy.sparse.linalg.splu``, SuperLU with a fill-reducing ordering) costs about O(nnz) for banded
structure instead. ``linear_solver = "auto"`` picks sparse when ``n > SPARSE_MIN_N`` and at most
``SPARSE_MAX_DENSITY`` of the Jacobian's entries are nonzero (decided once per solve, from the first
Jacobian); ``"dense"`` and ``"sparse"`` force a path. The sparse path runs on the CPU in the
matrix's dtype (float64 recommended) and converts back; the Jacobian itself is still built dense.

Example:
    >>> import torch
    >>> n = 300
    >>> a = 4 * torch.eye(n, dtype=torch.float64) - torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
    >>> choose(a[None], "auto")
    'sparse'
    >>> lu = factor(a[None], "sparse")
    >>> b = torch.ones(1, n, dtype=torch.float64)
    >>> bool(torch.allclose(a @ lu.solve(b)[0], b[0]))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

SPARSE_MIN_N = 200
SPARSE_MAX_DENSITY = 0.1
MODES = ("auto", "dense", "sparse")


def choose(jac: torch.Tensor, mode: str) -> str:
    """``"dense"`` or ``"sparse"``: ``mode`` itself unless it is ``"auto"``, then by size and density."""
    if mode != "auto":
        return mode
    n = jac.shape[-1]
    if n <= SPARSE_MIN_N:
        return "dense"
    density = float((jac != 0).any(dim=0).sum()) / (n * n)  # the union pattern over the batch
    return "sparse" if density <= SPARSE_MAX_DENSITY else "dense"


class DenseLU:
    """A batched dense LU of ``[batch, n, n]`` matrices (``torch.linalg.lu_factor``)."""

    def __init__(self, matrix: torch.Tensor) -> None:
        self.lu, self.pivots = torch.linalg.lu_factor(matrix)

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``matrix^-1 b`` for ``b`` of shape ``[batch, n]``."""
        return torch.linalg.lu_solve(self.lu, self.pivots, b.unsqueeze(-1)).squeeze(-1)


class SparseLU:
    """One SuperLU factorization per batch element (CPU); solves return tensors like ``b``."""

    def __init__(self, matrix: torch.Tensor) -> None:
        from scipy.sparse import csc_matrix
        from scipy.sparse.linalg import splu

        host = matrix.detach().cpu().numpy()
        self.factors: list[Any] = [splu(csc_matrix(m)) for m in host]

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``matrix^-1 b`` for ``b`` of shape ``[batch, n]``."""
        host = b.detach().cpu().numpy()
        out = [lu.solve(host[i]) for i, lu in enumerate(self.factors)]
        return torch.as_tensor(np.stack(out)).to(device=b.device, dtype=b.dtype)


def factor(matrix: torch.Tensor, kind: str) -> DenseLU | SparseLU:
    """Factor ``[batch, n, n]`` matrices on the ``kind`` path (``"dense"`` or ``"sparse"``)."""
    return SparseLU(matrix) if kind == "sparse" else DenseLU(matrix)
