"""A lowered :class:`~nodedsl.symbolic.lower.System` as a ``torch.nn.Module`` vector field.

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
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.diagnostics import Span
from ..symbolic.lower import System
from . import stochastic
from .graph import build_function
from .nets import build_mlp


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

    def __init__(self, model: CompiledModel, signal: Callable | None = None):
        super().__init__()
        self.model = model
        self.signal = signal
        self.symplectic_split = getattr(model, "symplectic_split", None)  # leapfrog needs it

    def _inputs(self, t, x):
        return self.model.default_inputs(x) if self.signal is None else self.signal(t, x.shape[0])

    def forward(self, t, x):
        return self.model.field(t, x, self._inputs(t, x))

    @property
    def events(self):
        """The model's ``when`` blocks as solver events, inputs from the signal (``solve`` uses them)."""
        from .events import compiled_events

        return compiled_events(self.model, self.signal)

    def jacobian(self, t, x):
        """``[batch, n, n]`` symbolic Jacobian with the signal's inputs (see ``CompiledModel.jacobian``)."""
        return self.model.jacobian(t, x, self._inputs(t, x))

    def taylor_coefficients(self, t, x, order):
        """Symbolic ``[x', ..., x^(order)]``, inputs ``signal(t)`` held over the step."""
        return self.model.taylor_coefficients(t, x, order, self._inputs(t, x))

    def semilinear(self):
        """``(A, N)``: ``x' = x @ A^T + N(t, x)`` for the ``etd`` solver (``compiler.semilinear``)."""
        from .semilinear import semilinear_parts

        return semilinear_parts(self.model, self._inputs)


class CompiledModel(nn.Module):
    """A compiled model: ``field``, ``observe``, constraint residuals, and (pH) energy functions."""

    def __init__(self, system: System, source_hash: str = "", dtype: torch.dtype | None = None):
        super().__init__()
        dtype = dtype or torch.get_default_dtype()  # an argument, so no caller changes the global default
        self.system = system
        self.name = system.name
        self.source_hash = source_hash
        self.state_names = tuple(system.state_names)
        self.input_names = tuple(system.input_names)
        self.output_names = tuple(system.output_names)
        self.symplectic_split = system.symplectic_split
        self.register_buffer("x0_default", torch.tensor(system.x0, dtype=dtype))
        self.register_buffer("u_default", torch.tensor(system.u0, dtype=dtype).reshape(-1))
        self.nets = nn.ModuleDict({_key(n): build_mlp(spec, dtype) for n, spec in system.nets.items()})
        self._net_order = list(system.nets)
        self._net_keys = [_key(n) for n in self._net_order]
        self.learned = nn.ParameterDict()
        self._param_meta = []
        self._layout: dict = {}  # symbol -> ("k", index in the known vector) | ("l", learned index, component)
        self._known_keys: list[str] = []
        known: list[float] = []
        for p in system.params:
            key = _key(p.name)
            if p.learn is None:
                self._known_keys.append(key)
                self._layout.update((s, ("k", len(known) + j)) for j, s in enumerate(p.symbols))
                known += list(p.value)
            else:
                self._layout.update((s, ("l", len(self.learned), j)) for j, s in enumerate(p.symbols))
                self.learned[key] = nn.Parameter(torch.tensor([self._raw(p, v) for v in p.value], dtype=dtype))
            self._param_meta.append((p.name, key, p.learn, p.low, p.high, p.shape))
        self._learned_meta = [
            (key, learn, low, high) for _, key, learn, low, high, _ in self._param_meta if learn is not None
        ]
        # known values live in one flat vector (repeated sub-models read theirs as strided views); the
        # per-parameter buffers, what state_dict saves, are views of it
        self.register_buffer("_known", torch.tensor(known, dtype=dtype), persistent=False)
        offset = 0
        for p in system.params:
            if p.learn is None:
                self.register_buffer(f"known__{_key(p.name)}", self._known[offset : offset + len(p.value)])
                offset += len(p.value)
        self._groups = {"x": system.states, "u": system.inputs}
        self._built: dict = {}  # compiled functions, built on first use (observe, energy, ...)
        self._derived: dict = {}  # symbolic Jacobian / Taylor functions by key; None: not available
        staged = system.staged
        self._field = self._function("field", system.rhs if staged is None else staged.rhs, staged=staged)
        self._residuals = {}
        infos = []
        for c in system.constraints:
            infos.append(
                ConstraintInfo(
                    c.name,
                    c.kind,
                    len(c.residual),
                    tuple((n, lo, hi) for n, _, lo, hi in c.domains),
                    c.weight,
                    c.uses_state,
                    c.span,
                    tuple(len(comps) for _, comps, _, _ in c.domains),
                )
            )
        self.constraints = tuple(infos)
        self._constraint_sym = {c.name: c for c in system.constraints}

    def _function(self, key: str, exprs, extra: list | None = None, staged=None):
        """The compiled function of ``exprs`` (cached under ``key``)."""
        if key not in self._built:
            groups = dict(self._groups, z=extra or [])
            self._built[key] = build_function(list(exprs), groups, self._layout, self._net_order, staged)
        return self._built[key]

    def _apply(self, fn, recurse=True):
        # .to() / .double() / .cuda() replace every buffer: tie the known views to the new flat vector again
        before = [self._buffers[f"known__{k}"] for k in self._known_keys]
        out = super()._apply(fn, recurse)
        bufs = [self._buffers[f"known__{k}"] for k in self._known_keys]
        if bufs and any(a is not b for a, b in zip(before, bufs)):  # in-place fns keep the views as they are
            flat = torch.cat([b.reshape(-1) for b in bufs])
            self._buffers["_known"] = flat
            offset = 0
            for k, b in zip(self._known_keys, bufs):
                self._buffers[f"known__{k}"] = flat[offset : offset + b.numel()].view(b.shape)
                offset += b.numel()
        return out

    # ---------------------------------------------------------------- parameters
    @staticmethod
    def _raw(p, v: float) -> float:
        if p.learn == "positive":
            return _inv_softplus(v)
        if p.learn == "interval":
            frac = min(max((v - p.low) / (p.high - p.low), 1e-6), 1 - 1e-6)
            return math.log(frac / (1 - frac))
        return v

    def _pargs(self) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """What the compiled functions take: (the known vector, the learned values reparametrized)."""
        return self._known, tuple(self._learned_value(*meta) for meta in self._learned_meta)

    def _learned_value(self, key: str, learn: str, low, high) -> torch.Tensor:
        raw = self.learned[key]
        if learn == "positive":
            return F.softplus(raw)
        if learn == "interval":
            return low + (high - low) * torch.sigmoid(raw)
        return raw

    def parameter_values(self) -> dict[str, float | list]:
        """Learned parameters by name, after reparametrization (what the model really uses); a matrix
        parameter as nested lists (rows)."""
        values = iter(self._pargs()[1])
        out = {}
        for name, _, learn, *_, shape in self._param_meta:
            if learn is not None:
                v = next(values).detach().cpu()
                out[name] = (
                    v.reshape(shape).tolist() if len(shape) == 2 else (v.tolist() if v.numel() > 1 else v.item())
                )
        return out

    def load_sub_state(self, path: str, state: dict) -> None:
        """Load a stand-alone model's trained ``state_dict`` into the sub-model at ``path`` (dotted).

        Learned parameters and nets are renamed with the sub-model's prefix; known parameters and
        defaults stay those of this composite (its overrides). Raises ValueError on a shape mismatch."""
        prefix = _key(path) + "__"
        own = self.state_dict()
        mapped = {}
        for key, value in state.items():
            head, _, rest = key.partition(".")
            if head not in ("learned", "nets"):
                continue
            target = f"{head}.{prefix}{rest}"
            if target not in own:
                raise ValueError(f"sub-model '{path}' has no parameter '{rest}'")
            if tuple(own[target].shape) != tuple(value.shape):
                raise ValueError(
                    f"'{rest}' has shape {list(value.shape)} in the checkpoint but {list(own[target].shape)} here"
                )
            mapped[target] = value
        missing = [k for k in own if k.startswith(("learned." + prefix, "nets." + prefix)) and k not in mapped]
        if missing:
            raise ValueError(
                f"the checkpoint lacks {len(missing)} parameter(s) of '{path}', e.g. "
                f"'{missing[0].split('.', 1)[1][len(prefix) :]}'"
            )
        with torch.no_grad():
            for key, value in mapped.items():
                own[key].copy_(value.to(own[key].dtype))

    def _nets(self):
        modules = self.nets._modules  # the ModuleDict's own dict: no per-call attribute machinery
        return tuple(modules[k] for k in self._net_keys)

    # ---------------------------------------------------------------- evaluation
    def _call(self, fn, t, x, u, z=None):
        """Run a compiled function on ``(t, x, u, z)`` with this model's parameters and nets. ``.forward``:
        the generated code itself, without nn.Module's call machinery (no hooks are used)."""
        return fn.forward(
            torch.as_tensor(t, dtype=x.dtype, device=x.device), x, u, x if z is None else z, self._pargs(), self._nets()
        )

    def default_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return self.u_default.to(x.dtype).expand(x.shape[0], -1)

    def field(self, t, x, u=None):
        """dx/dt for states ``x [batch, n]`` and inputs ``u [batch, m]`` (None: defaults)."""
        if x.dim() != 2 or x.shape[-1] != len(self.state_names):
            raise ValueError(
                f"model '{self.name}' takes states of shape [batch, {len(self.state_names)}], got {list(x.shape)}"
            )
        u = self.default_inputs(x) if u is None else u
        return self._call(self._field, t, x, u)

    def forward(self, t, x):
        return self.field(t, x, None)

    @property
    def events(self):
        """The ``when`` blocks as solver events, default inputs (``solve`` uses them)."""
        from .events import compiled_events

        return compiled_events(self)

    # ---------------------------------------------------------------- symbolic derivatives
    def _derived_function(self, key):
        """The compiled derivative ``key`` ("jacobian" or a Taylor order); NotImplementedError if none."""
        if key not in self._derived:
            from ..symbolic import derive

            system = self.system
            exprs = derive.jacobian_exprs(system) if key == "jacobian" else derive.taylor_exprs(system, key)
            fn = None
            if exprs is not None:
                flat = [e for row in exprs for e in row]
                try:
                    fn = build_function(flat, dict(self._groups, z=[]), self._layout, self._net_order)
                except (NotImplementedError, KeyError):
                    fn = None
            self._derived[key] = fn
        fn = self._derived[key]
        if fn is None:
            what = "Jacobian" if key == "jacobian" else f"order-{key} Taylor coefficients"
            raise NotImplementedError(f"model '{self.name}': no symbolic {what} (use automatic differentiation)")
        return fn

    def jacobian(self, t, x, u=None):
        """``[batch, n, n]`` Jacobian ``d field / d x`` from symbolic derivatives (rows are outputs).

        Raises ``NotImplementedError`` when it cannot be formed symbolically; the solvers then use AD.
        """
        fn = self._derived_function("jacobian")
        n = x.shape[-1]
        if n == 0:
            return x.new_zeros(x.shape[0], 0, 0)
        u = self.default_inputs(x) if u is None else u
        out = self._call(fn, t, x, u)
        return out.reshape(x.shape[0], n, n)

    def taylor_coefficients(self, t, x, order, u=None):
        """``[x', x'', ..., x^(order)]`` (each ``[batch, n]``) along the flow, inputs held constant.

        By Taylor-mode AD over the compiled field (``nodedsl.compiler.jet``: the field's graph rewritten to
        carry power series, nets included), compiled once per order; where that has no rule (a net's
        derivative inside the field, e.g. ``grad H`` of a learned Hamiltonian), from symbolic Lie
        derivatives (``nodedsl.symbolic.derive``). Raises ``NotImplementedError`` when neither applies; the
        solvers then use nested forward-mode AD. ``benchmarks/taylor_coefficients.py`` compares the three.
        """
        order = int(order)
        n = x.shape[-1]
        if n == 0:
            return [x[:, :0] for _ in range(order)]
        key = ("jet", order)
        if key not in self._derived:
            from .jet import jet_function

            self._derived[key] = jet_function(self._field, order, n, list(self._nets()))
        fn = self._derived[key] or self._derived_function(order)
        u = self.default_inputs(x) if u is None else u
        out = self._call(fn, t, x, u)
        return list(out.split(n, dim=-1))

    def driven(self, signal: Callable | None) -> Driven:
        """This field with inputs from ``signal(t, batch) -> [batch, m]``: for ``solve``/``odeint``."""
        return Driven(self, signal)

    @property
    def noise(self):
        """The diffusion's form (:class:`nodedsl.core.noise.Noise`), ``None`` for an ODE model."""
        return stochastic.noise_of(self.system)

    def diffusion(self, t, x, u=None):
        """The diffusion ``g``: ``[batch, n]`` (diagonal noise) or ``[batch, n, m]`` (general noise)."""
        return stochastic.diffusion(self, t, x, u)

    def sde_functions(self, signal: Callable | None = None):
        """``(drift, diffusion)`` modules of ``(t, x)`` with inputs from ``signal``: for ``sdeint``."""
        return Driven(self, signal), stochastic.DrivenDiffusion(self, signal)

    def observe(self, t, x, u=None):
        """The observed quantities (declared outputs, or every state) ``[batch, n_out]``."""
        u = self.default_inputs(x) if u is None else u
        fn = self._function("observe", self.system.outputs)
        return self._call(fn, t, x, u)

    def constraint_residuals(self, name: str, t, x, u=None, samples: dict | None = None, magnitude: bool = False):
        """Residual ``[batch, size]`` of ``name`` (want == 0 or <= 0); ``magnitude``: its terms' |.| sum."""
        c = self._constraint_sym[name]
        domains = [(var, len(comps)) for var, comps, _, _ in c.domains]
        key, exprs = ("constraint magnitude ", c.magnitude) if magnitude else ("constraint ", c.residual)
        fn = self._function(key + name, exprs, [s for _, comps, _, _ in c.domains for s in comps])
        u = self.default_inputs(x) if u is None else u
        cols = []
        for var, size in domains:
            s = (samples or {})[var]
            cols.append(s.reshape(x.shape[0], size).to(x.dtype))
        z = torch.cat(cols, dim=-1) if cols else x[:, :0]
        return self._call(fn, t, x, u, z)

    def hamiltonian(self, x, t=0.0, u=None):
        """H(x) ``[batch]`` (port-Hamiltonian models only)."""
        self._need_ph()
        u = self.default_inputs(x) if u is None else u
        fn = self._function("hamiltonian", [self.system.ph.H])
        return self._call(fn, t, x, u)[..., 0]

    def port_outputs(self, x, t=0.0, u=None):
        """Stacked port outputs ``y = G^T grad H`` ``[batch, k]`` (pH models with free ports)."""
        self._need_ph()
        u = self.default_inputs(x) if u is None else u
        ys = [y for port in self.system.ph.ports for y in port.output]
        if not ys:
            return x[:, :0]
        fn = self._function("port outputs", ys)
        return self._call(fn, t, x, u)

    def dissipation(self, x, t=0.0, u=None):
        """grad H^T R grad H ``[batch]``: power dissipated (pH models only)."""
        self._need_ph()
        u = self.default_inputs(x) if u is None else u
        fn = self._function("dissipation", [self.system.ph.dissipation])
        return self._call(fn, t, x, u)[..., 0]

    def _need_ph(self):
        if self.system.ph is None:
            raise TypeError(f"model '{self.name}' is not port-Hamiltonian")
