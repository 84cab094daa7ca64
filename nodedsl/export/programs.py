"""The exported programs: a compiled field as ``f(t, x, u)`` and an unrolled fixed-step rollout, through
``torch.export`` (a ``.pt2`` file) and ``torch.onnx.export`` (an ``.onnx`` file).

Both take a batch of any size (a dynamic first dimension). The field is the model's ``field`` with its
trained parameters and nets baked in as constants of the program; ``grad H`` of a net is explicit
operations (``nodedsl.compiler.ops.mlp_grad``), so port-Hamiltonian models with nets in ``H`` export.

Example:
    >>> import nodedsl, torch
    >>> model = nodedsl.loads("model M { state x = 1\\n param k = 2\\n der(x) = -k*x }").model("M", torch.float64)
    >>> ep = export_field(model)
    >>> ep.module()(torch.tensor(0.0, dtype=torch.float64), torch.ones(3, 1, dtype=torch.float64),
    ...             torch.zeros(3, 0, dtype=torch.float64)).flatten().tolist()
    [-2.0, -2.0, -2.0]
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core.tableaus import ButcherTableau

__all__ = ["Field", "Rollout", "export_field", "export_rollout", "save_onnx", "save_pt2"]

EXAMPLE_BATCH = 3  # the batch of the example inputs; the exported programs take any batch size >= 1


class Field(nn.Module):
    """``forward(t, x, u) -> dx/dt``: ``t`` a 0-d tensor, ``x [batch, n]``, ``u [batch, m]`` (m may be 0)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return self.model.field(t, x, u)


class Rollout(nn.Module):
    """``forward(t0, x0, u) -> xs [steps + 1, batch, n]``: ``steps`` steps of size ``h`` of the explicit
    Runge-Kutta method ``tableau``, unrolled; ``u [steps, batch, m]`` is held constant over each step (the
    stages of step ``i`` all see ``u[i]``), ``xs[0] = x0``."""

    def __init__(self, model: nn.Module, tableau: ButcherTableau, h: float, steps: int):
        super().__init__()
        self.model = model
        self.tableau = tableau
        self.h = float(h)
        self.steps = int(steps)

    def forward(self, t0: torch.Tensor, x0: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        tab, h = self.tableau, self.h
        x, xs = x0, [x0]
        for i in range(self.steps):
            t = t0 + i * h
            ks: list[torch.Tensor] = []
            for row, c in zip(tab.a, tab.c):
                xi = x
                for a, k in zip(row, ks):
                    if a != 0.0:
                        xi = xi + (h * a) * k
                ks.append(self.model.field(t + c * h, xi, u[i]))
            for b, k in zip(tab.b, ks):
                if b != 0.0:
                    x = x + (h * b) * k
            xs.append(x)
        return torch.stack(xs, dim=0)


def _examples(model: nn.Module, dtype: torch.dtype, steps: int | None):
    n, m = len(model.state_names), len(model.input_names)
    t = torch.tensor(0.0, dtype=dtype)
    x = model.x0_default.to(dtype).expand(EXAMPLE_BATCH, n).clone()
    u = model.u_default.to(dtype).expand(EXAMPLE_BATCH, m).clone()
    if steps is not None:
        u = u.expand(steps, EXAMPLE_BATCH, m).clone()
    return t, x, u


def export_field(model: nn.Module) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model.field`` as ``f(t, x, u)`` in the model's dtype, any batch size."""
    dtype = model.x0_default.dtype
    batch = torch.export.Dim("batch")
    with torch.no_grad():
        return torch.export.export(
            Field(model).train(False), _examples(model, dtype, None), dynamic_shapes=({}, {0: batch}, {0: batch})
        )


def export_rollout(model: nn.Module, tableau: ButcherTableau, h: float, steps: int) -> torch.export.ExportedProgram:
    """``torch.export`` of :class:`Rollout` (``steps`` steps of ``h``), any batch size."""
    dtype = model.x0_default.dtype
    batch = torch.export.Dim("batch")
    with torch.no_grad():
        return torch.export.export(
            Rollout(model, tableau, h, steps).train(False),
            _examples(model, dtype, steps),
            dynamic_shapes=({}, {0: batch}, {1: batch}),
        )


def save_pt2(program: torch.export.ExportedProgram, path: Path) -> None:
    """Write ``program`` with ``torch.export.save`` (load it with ``torch.export.load(path).module()``)."""
    torch.export.save(program, str(path))


def _softplus(x: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    """``softplus`` in elementary operations: onnxruntime has no double-precision ``Softplus`` kernel."""
    bx = x * beta
    smooth = (torch.clamp(bx, min=0) + torch.log1p(torch.exp(-torch.abs(bx)))) / beta
    return torch.where(bx > threshold, x, smooth)


def save_onnx(program: torch.export.ExportedProgram, path: Path, names: tuple[str, str, str], output: str) -> None:
    """Write ``program`` as ONNX (``torch.onnx.export``, the dynamo exporter) with the input names
    ``names`` and the output name ``output``; ``softplus`` is decomposed first (see :func:`_softplus`)."""
    softplus = torch.ops.aten.softplus.default
    if any(node.target is softplus for node in program.graph.nodes):  # a re-trace: only when needed
        program = program.run_decompositions({softplus: _softplus})
    torch.onnx.export(program, input_names=list(names), output_names=[output], f=str(path), dynamo=True, verbose=False)
