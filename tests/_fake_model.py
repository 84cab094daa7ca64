"""Hand-made modules with the CompiledModel interface, for unit tests of data, synth and training.

* :class:`FakeDecay`: ``dx/dt = -k x`` (two components ``x[0]``, ``x[1]``), ``k`` learned and positive,
  optionally the inequality constraint ``k <= kmax`` and NaNs injected at chosen field calls.
* :class:`FakePendulum`: damped pendulum with a learned length and a small friction net, the
  constraints ``at_rest: f(0) == 0`` and ``dissipative: f(w) * w >= 0 for w in [-3, 3]``; optionally only
  the angle is observed (output ``theta_measured``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nodedsl.core.diagnostics import Span


@dataclass(frozen=True)
class ConstraintInfo:
    name: str
    kind: str
    size: int
    domains: tuple = ()
    weight: float = 1.0
    uses_state: bool = False
    span: Span = Span("<fake>", 0, 0)
    domain_sizes: tuple = ()


def _inv_softplus(v: float) -> float:
    return v + math.log(-math.expm1(-v))


class _Driven(nn.Module):
    def __init__(self, model, signal):
        super().__init__()
        self.model, self.signal = model, signal

    def forward(self, t, x):
        u = self.model.u_default.expand(x.shape[0], -1) if self.signal is None else self.signal(t, x.shape[0])
        return self.model.field(t, x, u)


class FakeDecay(nn.Module):
    def __init__(
        self, k: float = 0.5, kmax: float | None = None, nan_calls: range | set | None = None, name: str = "Decay"
    ):
        super().__init__()
        self.name = name
        self.state_names = ("x[0]", "x[1]")
        self.input_names = ()
        self.output_names = self.state_names
        self.symplectic_split = None
        self.register_buffer("x0_default", torch.ones(2))
        self.register_buffer("u_default", torch.zeros(0))
        self.raw_k = nn.Parameter(torch.tensor(_inv_softplus(k)))
        self.kmax = kmax
        self.constraints = (ConstraintInfo("k_max", "ineq", 1),) if kmax is not None else ()
        self.nan_calls = set(nan_calls or ())
        self.calls = 0

    @property
    def k(self):
        return F.softplus(self.raw_k)

    def field(self, t, x, u=None):
        self.calls += 1
        out = -self.k * x
        if self.calls in self.nan_calls:
            out = out * float("nan")
        return out

    def observe(self, t, x, u=None):
        return x

    def driven(self, signal):
        return _Driven(self, signal)

    def constraint_residuals(self, name, t, x, u=None, samples=None):
        assert name == "k_max"
        return (self.k - self.kmax).reshape(1, 1).expand(x.shape[0], 1)

    def parameter_values(self):
        return {"k": float(self.k.detach())}


class FakePendulum(nn.Module):
    def __init__(self, L: float = 1.0, partial: bool = False, c: float | None = None, name: str = "Pendulum"):
        super().__init__()
        self.name = name
        self.state_names = ("theta", "omega")
        self.input_names = ("torque",)
        self.output_names = ("theta_measured",) if partial else self.state_names
        self.symplectic_split = None
        self.register_buffer("x0_default", torch.tensor([1.0, 0.0]))
        self.register_buffer("u_default", torch.zeros(1))
        self.register_buffer("g", torch.tensor(9.81))
        self.raw_L = nn.Parameter(torch.tensor(_inv_softplus(L)))
        self.c = c  # known linear friction (truth model) instead of the net
        g = torch.Generator().manual_seed(0)
        self.friction = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))
        with torch.no_grad():
            for p in self.friction.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
        self.constraints = (
            ()
            if c is not None
            else (
                ConstraintInfo("at_rest", "eq", 1),
                ConstraintInfo("dissipative", "ineq", 1, (("w", -3.0, 3.0),), domain_sizes=(1,)),
            )
        )

    @property
    def L(self):
        return F.softplus(self.raw_L)

    def _f(self, w):
        if self.c is not None:
            return self.c * w
        return self.friction(w.unsqueeze(-1)).squeeze(-1)

    def field(self, t, x, u=None):
        u = self.u_default.expand(x.shape[0], -1) if u is None else u
        theta, omega = x[:, 0], x[:, 1]
        return torch.stack([omega, -self.g / self.L * torch.sin(theta) + u[:, 0] - self._f(omega)], -1)

    def observe(self, t, x, u=None):
        return x[:, :1].clone() if self.output_names != self.state_names else x

    def driven(self, signal):
        return _Driven(self, signal)

    def constraint_residuals(self, name, t, x, u=None, samples=None):
        if name == "at_rest":
            return self._f(torch.zeros(x.shape[0])).reshape(-1, 1)
        w = samples["w"].reshape(x.shape[0])
        return (-(self._f(w) * w)).reshape(-1, 1)

    def parameter_values(self):
        return {"L": float(self.L.detach())}
