"""The op vocabulary of compiled graphs: every callable a generated torch.fx graph may call, declared once.

Each :class:`Op` names its Taylor-mode rule (a method of the jet transform that maps the op's argument
series to the coefficient of its result), or is marked ``CONSTANT`` (its value does not move along
the flow, whatever its arguments: zeros, casts of constants), or ``NO_RULE`` with the reason (the jet
then declines the graph and the caller uses another method). ``jet.py`` finds rules only here, so an
op emitted without a declaration makes the jet decline loudly in tests (``tests/test_ops.py`` builds
every example's field and checks each node's target is declared).

The helpers below are the ops of our own that the emitter and the block compiler put in graphs.
``BUILTIN_OPS`` lists, for each builtin of the language, the graph ops that compute it and its
derivatives; ``torch_functions()`` is the SymPy-head -> torch table of the emitter.

Example:
    >>> import torch
    >>> FUNCTIONS[torch.sin].jet, FUNCTIONS[torch.sin].arg
    ('unary', 'sin')
    >>> FUNCTIONS[zeros_cols].jet == CONSTANT
    True
    >>> heaviside(torch.tensor([-1.0, 0.0, 2.0])).tolist()
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .nets import mlp_gradient, mlp_supported

CONSTANT = "constant"  # the result does not move along the flow
NO_RULE = "none"  # no Taylor rule: the jet declines graphs where it moves


def stack_args(ref, *cols):
    """Net input from scalar columns, broadcasting constants and 0-dim values to the batch of ``ref``."""
    cols = torch.broadcast_tensors(
        *[c if isinstance(c, torch.Tensor) else torch.as_tensor(c, dtype=ref.dtype, device=ref.device) for c in cols]
    )
    return torch.stack(cols, dim=-1)


def const(ref, c):
    """The number ``c`` as a tensor in the dtype and device of ``ref``."""
    return torch.as_tensor(c, dtype=ref.dtype, device=ref.device)


def heaviside(x):
    """The step function with value 1/2 at 0 (SymPy's ``Heaviside``, from derivatives of min, max, abs)."""
    return (x > 0).to(x.dtype) + 0.5 * (x == 0).to(x.dtype)


def net_grad(net, inp, k: int):
    """d net(inp)[:, k] / d inp through autograd; the graph is kept only when gradients are being taken."""
    keep = torch.is_grad_enabled()
    with torch.enable_grad():
        if not inp.requires_grad:
            inp = inp.detach().requires_grad_(True)
        out = net(inp)[..., k]
        (grad,) = torch.autograd.grad(out.sum(), inp, create_graph=keep)
    return grad


def mlp_grad(net, inp, k: int):
    """d net(inp)[..., k] / d inp as explicit operations (:func:`nodedsl.compiler.nets.mlp_gradient`: the
    chain rule through Linear layers and the activations' derivatives), so fields with ``grad H`` of a
    net export and compile with ``fullgraph=True``. A net with a layer that has no derivative rule (GELU's
    tanh approximation) falls back to :func:`net_grad`: autograd is the only derivative it has here."""
    if mlp_supported(net):
        return mlp_gradient(net, inp, k)
    return net_grad(net, inp, k)


def _like(xs):
    """The values as tensors, a Python number taking the dtype and device of the first tensor among them
    (``torch.as_tensor(0.05)`` alone is float32: a float64 model's ``max(a, 0.05)`` would be rounded)."""
    ref = next((x for x in xs if isinstance(x, torch.Tensor)), None)
    if ref is None:
        return [torch.as_tensor(x) for x in xs]
    dtype = ref.dtype if ref.is_floating_point() else None
    return [x if isinstance(x, torch.Tensor) else torch.as_tensor(x, dtype=dtype, device=ref.device) for x in xs]


def minimum(*xs):
    """Element-wise minimum of any number of values (SymPy's ``Min``)."""
    vals = _like(xs)
    out = vals[0]
    for x in vals[1:]:
        out = torch.minimum(out, x)
    return out


def maximum(*xs):
    """Element-wise maximum of any number of values (SymPy's ``Max``)."""
    vals = _like(xs)
    out = vals[0]
    for x in vals[1:]:
        out = torch.maximum(out, x)
    return out


def apply(module, inp):
    """A net applied to its input (one node, so the jet sees the whole net)."""
    return module(inp)


def like(const, ref):
    """A constant of the graph in the dtype and device of ``ref`` (a no-op when they already agree)."""
    if const.device == ref.device and (const.dtype == ref.dtype or not const.is_floating_point()):
        return const
    if torch.compiler.is_compiling():  # traced: the conversion becomes part of the compiled graph
        return const.to(ref) if const.is_floating_point() else const.to(ref.device)
    cache = const.__dict__.setdefault("_nodedsl_like", {})  # converted once per dtype and device
    key = (ref.dtype, ref.device)
    if key not in cache:
        cache[key] = const.to(ref) if const.is_floating_point() else const.to(ref.device)
    return cache[key]


def zeros_cols(ref, n: int):
    """Zeros ``[..., n]`` with the batch shape of ``ref``."""
    return ref.new_zeros(ref.shape[:-1] + (n,))


def scatter_cols(ref, values, index, n: int):
    """``out[..., index[k]] += values[..., k]`` into zeros ``[..., n]``: a sparse linear map's sums."""
    return zeros_cols(ref, n).index_add(-1, index, values)


def matrix(base, index, *values):
    """``base`` (flat) with ``values`` written at ``index``: the parameter entries of ``M^T``."""
    return base.index_put((index,), torch.stack(values))


def matrix_times(block, a, m: int, before: int, after: int):
    """``a @ X`` for the state block ``X = block`` as ``[..., cols, m]`` (row-major), flattened, with
    ``before`` and ``after`` zero columns around it: ``der(Y) = A @ X`` as one batched matmul."""
    out = torch.matmul(a, block.unflatten(-1, (a.shape[1], m))).flatten(-2)
    return F.pad(out, (before, after)) if before or after else out


def put(base, index, values):
    """``base`` (flat) with the vector ``values`` written at ``index`` (gathered parameter entries)."""
    return base.index_put((index,), values)


@dataclass(frozen=True)
class Op:
    """A graph op: its Taylor rule (a rule name of ``jet.RULE_NAMES``), ``CONSTANT`` or ``NO_RULE`` (with ``why``)."""

    jet: str
    arg: str = ""  # the rule's parameter: the function name of a unary or piecewise rule
    why: str = ""


_LINEAR = Op("linear", why="linear in its first argument (a tensor or a list); the rest are sizes and indices")

FUNCTIONS: dict[Callable, Op] = {
    operator.add: Op("add"),
    operator.sub: Op("add"),
    operator.neg: Op("neg"),
    operator.mul: Op("mul"),
    operator.truediv: Op("div"),
    operator.pow: Op("pow"),
    operator.getitem: Op("getitem"),
    torch.sin: Op("unary", "sin"),
    torch.cos: Op("unary", "cos"),
    torch.tan: Op("unary", "tan"),
    torch.exp: Op("unary", "exp"),
    torch.log: Op("unary", "log"),
    torch.tanh: Op("unary", "tanh"),
    torch.sigmoid: Op("unary", "sigmoid"),
    F.softplus: Op("unary", "softplus"),
    torch.sqrt: Op("unary", "sqrt"),
    torch.rsqrt: Op("rsqrt"),
    torch.abs: Op("piecewise", "abs"),
    torch.sign: Op("piecewise", "sign"),
    heaviside: Op("piecewise", "heaviside"),
    minimum: Op("minmax", "min"),
    maximum: Op("minmax", "max"),
    apply: Op("mlp"),
    torch.matmul: Op("matmul"),
    torch.stack: _LINEAR,
    torch.cat: _LINEAR,
    torch.flatten: _LINEAR,
    torch.split: _LINEAR,
    torch.index_select: _LINEAR,
    torch.reshape: _LINEAR,
    torch.transpose: _LINEAR,
    stack_args: Op("stack_args"),
    scatter_cols: Op("scatter_cols"),
    like: Op(CONSTANT, why="a constant tensor converted to the dtype and device of its reference"),
    zeros_cols: Op(CONSTANT, why="zeros"),
    const: Op(CONSTANT, why="a number as a tensor"),
    torch.zeros_like: Op(CONSTANT, why="zeros"),
    net_grad: Op(NO_RULE, why="a net's derivative inside the field needs nested Taylor rules of the MLP"),
    mlp_grad: Op(NO_RULE, why="a net's derivative inside the field needs nested Taylor rules of the MLP"),
    matrix: Op(NO_RULE, why="writes parameter entries into a matrix: its arguments never move along the flow"),
    matrix_times: Op("linear", why="linear in the state block; the matrix is parameters, constant along the flow"),
    put: Op(NO_RULE, why="writes parameter entries into a matrix: its arguments never move along the flow"),
}
METHODS: dict[str, Op] = {"squeeze": _LINEAR}  # the one method the compiler emits (views.split_views)

# builtin of the language -> the graph ops that compute it (and the derivatives SymPy takes of it)
_ARITH = (operator.add, operator.sub, operator.mul, operator.neg)
BUILTIN_OPS: dict[str, tuple[Callable, ...]] = {
    "sin": (torch.sin, torch.cos),
    "cos": (torch.cos, torch.sin),
    "tan": (torch.tan,),
    "exp": (torch.exp,),
    "log": (torch.log, operator.truediv),
    "sqrt": (torch.sqrt, torch.rsqrt),
    "tanh": (torch.tanh,),
    "sigmoid": (torch.sigmoid,),
    "softplus": (F.softplus, torch.sigmoid),
    "abs": (torch.abs, torch.sign),
    "sign": (torch.sign,),
    "min": (minimum, heaviside),
    "max": (maximum, heaviside),
    "clip": (minimum, maximum, heaviside),
    "dot": _ARITH,
    "norm": (*_ARITH, torch.sqrt, torch.rsqrt),
    "transpose": (),  # a rearrangement of the entries
    "solve": (*_ARITH, operator.truediv),
    "skew": _ARITH,
    "psd": _ARITH,
    "diag": (),  # entries v and 0
    "sum": _ARITH,
    "prod": _ARITH,
}

# builtin name -> the torch op for the SymPy head of its results (symbolic.builtins.HEADS)
TORCH_BY_BUILTIN: dict[str, Callable] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "abs": torch.abs,
    "sign": torch.sign,
}
