"""A lowered :class:`~nodedsl.lower.System` as a ``torch.nn.Module`` vector field.

``forward(t, x)`` takes batched states ``[batch, n]`` and works with ``torchdiffeq.odeint``.
Learned parameters are ``nn.Parameter`` (reparametrized for ``positive`` and ``in [a, b]``),
known ones are buffers, nets are ``nn.Sequential`` MLPs.

Example:
    >>> import nodedsl, torch
    >>> prog = nodedsl.loads("model M { state x = 1\\n param k = 2 learn positive\\n der(x) = -k*x }")
    >>> model = prog.model("M")
    >>> model(torch.tensor(0.), torch.ones(4, 1)).shape
    torch.Size([4, 1])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn

from .diagnostics import Span
from .fxgen import build_function
from .lower import System
from .netspec import build_mlp


@dataclass(frozen=True)
class ConstraintInfo:
    """A constraint as training sees it: residual == 0 (eq) or residual <= 0 (ineq)."""

    name: str
    kind: str
    size: int
    domains: tuple[tuple[str, float, float], ...]
    weight: float
    uses_state: bool
    span: Span
    domain_sizes: tuple[int, ...] = ()


def _key(name: str) -> str:
    """A dotted, indexed name as a valid attribute name (state_dict keys stay readable)."""
    return name.replace(".", "__")


def _inv_softplus(v: float) -> float:
    return v + math.log(-math.expm1(-v)) if v < 30 else v


class Driven(nn.Module):
    """``field(t, x)`` of a model with its inputs given by ``signal(t, batch)`` (None: defaults)."""

    def __init__(self, model: "CompiledModel", signal: Callable | None = None):
        super().__init__()
        self.model = model
        self.signal = signal

    def forward(self, t, x):
        u = self.model.default_inputs(x) if self.signal is None else self.signal(t, x.shape[0])
        return self.model.field(t, x, u)


class CompiledModel(nn.Module):
    """A compiled model: ``field``, ``observe``, constraint residuals, and (pH) energy functions."""

    def __init__(self, system: System, source_hash: str = ""):
        super().__init__()
        self.system = system
        self.name = system.name
        self.source_hash = source_hash
        self.state_names = tuple(system.state_names)
        self.input_names = tuple(system.input_names)
        self.output_names = tuple(system.output_names)
        self.symplectic_split = system.symplectic_split
        self.register_buffer("x0_default", torch.tensor(system.x0, dtype=torch.get_default_dtype()))
        self.register_buffer("u_default", torch.tensor(system.u0, dtype=torch.get_default_dtype()).reshape(-1))
        self.nets = nn.ModuleDict({_key(n): build_mlp(spec) for n, spec in system.nets.items()})
        self._net_order = list(system.nets)
        self.learned = nn.ParameterDict()
        self._param_meta = []
        for p in system.params:
            key = _key(p.name)
            if p.learn is None:
                self.register_buffer(f"known__{key}", torch.tensor(p.value, dtype=torch.get_default_dtype()))
            else:
                self.learned[key] = nn.Parameter(torch.tensor([self._raw(p, v) for v in p.value],
                                                              dtype=torch.get_default_dtype()))
            self._param_meta.append((p.name, key, p.learn, p.low, p.high, p.shape))
        syms = [p.symbols for p in system.params]
        nets = self._net_order
        groups = {"x": system.states, "u": system.inputs}
        self._field = build_function(system.rhs, groups, syms, nets)
        self._observe = build_function(system.outputs, groups, syms, nets)
        self._residuals = {}
        infos = []
        for c in system.constraints:
            zsyms = [s for _, comps, _, _ in c.domains for s in comps]
            self._residuals[c.name] = (build_function(c.residual, {**groups, "z": zsyms}, syms, nets),
                                       [(name, len(comps)) for name, comps, _, _ in c.domains])
            infos.append(ConstraintInfo(c.name, c.kind, len(c.residual),
                                        tuple((n, lo, hi) for n, _, lo, hi in c.domains), c.weight,
                                        c.uses_state, c.span, tuple(len(comps) for _, comps, _, _ in c.domains)))
        self.constraints = tuple(infos)
        self._energy = None
        if system.ph is not None:
            ph = system.ph
            ports = [y for port in ph.ports for y in port.output]
            self._energy = build_function([ph.H], groups, syms, nets)
            self._port_out = build_function(ports, groups, syms, nets) if ports else None
            self._dissipation = build_function([ph.dissipation], groups, syms, nets)

    # ---------------------------------------------------------------- parameters
    @staticmethod
    def _raw(p, v: float) -> float:
        if p.learn == "positive":
            return _inv_softplus(v)
        if p.learn == "interval":
            frac = min(max((v - p.low) / (p.high - p.low), 1e-6), 1 - 1e-6)
            return math.log(frac / (1 - frac))
        return v

    def _values(self) -> tuple[torch.Tensor, ...]:
        out = []
        for _, key, learn, low, high, _ in self._param_meta:
            if learn is None:
                out.append(getattr(self, f"known__{key}"))
                continue
            raw = self.learned[key]
            if learn == "positive":
                out.append(F.softplus(raw))
            elif learn == "interval":
                out.append(low + (high - low) * torch.sigmoid(raw))
            else:
                out.append(raw)
        return tuple(out)

    def parameter_values(self) -> dict[str, float | list[float]]:
        """Learned parameters by name, after reparametrization (what the model really uses)."""
        values = self._values()
        out = {}
        for (name, _, learn, *_), v in zip(self._param_meta, values):
            if learn is not None:
                flat = v.detach().cpu().tolist()
                out[name] = flat[0] if len(flat) == 1 else flat
        return out

    def _nets(self):
        return tuple(self.nets[_key(n)] for n in self._net_order)

    # ---------------------------------------------------------------- evaluation
    def default_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.u_default.to(x.dtype).expand(x.shape[0], -1)

    def field(self, t, x, u=None):
        """dx/dt for states ``x [batch, n]`` and inputs ``u [batch, m]`` (None: defaults)."""
        u = self.default_inputs(x) if u is None else u
        t = torch.as_tensor(t, dtype=x.dtype)
        return self._field(t, x, u, x, self._values(), self._nets())

    def forward(self, t, x):
        return self.field(t, x, None)

    def driven(self, signal: Callable | None) -> Driven:
        """This field with inputs from ``signal(t, batch) -> [batch, m]``: for ``solve``/``odeint``."""
        return Driven(self, signal)

    def observe(self, t, x, u=None):
        """The observed quantities (declared outputs, or every state) ``[batch, n_out]``."""
        u = self.default_inputs(x) if u is None else u
        return self._observe(torch.as_tensor(t, dtype=x.dtype), x, u, x, self._values(), self._nets())

    def constraint_residuals(self, name: str, t, x, u=None, samples: dict | None = None):
        """Residual ``[batch, size]`` of constraint ``name``: want == 0 (eq) or <= 0 (ineq)."""
        fn, domains = self._residuals[name]
        u = self.default_inputs(x) if u is None else u
        cols = []
        for var, size in domains:
            s = (samples or {})[var]
            cols.append(s.reshape(x.shape[0], size).to(x.dtype))
        z = torch.cat(cols, dim=-1) if cols else x[:, :0]
        return fn(torch.as_tensor(t, dtype=x.dtype), x, u, z, self._values(), self._nets())

    def hamiltonian(self, x, t=0.0, u=None):
        """H(x) ``[batch]`` (port-Hamiltonian models only)."""
        self._need_ph()
        u = self.default_inputs(x) if u is None else u
        return self._energy(torch.as_tensor(t, dtype=x.dtype), x, u, x, self._values(), self._nets())[..., 0]

    def port_outputs(self, x, t=0.0, u=None):
        """Stacked port outputs ``y = G^T grad H`` ``[batch, k]`` (pH models with free ports)."""
        self._need_ph()
        u = self.default_inputs(x) if u is None else u
        if self._port_out is None:
            return x[:, :0]
        return self._port_out(torch.as_tensor(t, dtype=x.dtype), x, u, x, self._values(), self._nets())

    def dissipation(self, x, t=0.0, u=None):
        """grad H^T R grad H ``[batch]``: power dissipated (pH models only)."""
        self._need_ph()
        u = self.default_inputs(x) if u is None else u
        return self._dissipation(torch.as_tensor(t, dtype=x.dtype), x, u, x, self._values(), self._nets())[..., 0]

    def _need_ph(self):
        if self._energy is None:
            raise TypeError(f"model '{self.name}' is not port-Hamiltonian")
