"""The C rules of the native code generator (:mod:`nodedsl.compiler.cgen`): per op, its forward and its adjoint.

Every element-wise op of the fx vocabulary (:mod:`nodedsl.compiler.ops`) that the generator covers has one
:class:`Rule` here, its forward C expression and, beside it, one adjoint C expression per argument (JAX style:
a primitive's rules registered together). Templates use ``{0}``, ``{1}`` for the arguments, ``{y}`` for the
result and ``{g}`` for the result's cotangent; an adjoint of ``None`` means the op has zero derivative in that
argument (comparisons, steps). Activations of nets have three rules (``act``, ``act'``, ``act''``; the last
one is what the adjoint of a net's gradient, a Hessian-vector product, needs), as C functions of the
pre-activation ``z`` and the activation ``a``, in :data:`ACTIVATIONS`.

The derivatives are the ones torch's autograd uses (``abs'(0) = 0``, ``relu'(0) = 0``, ties of
``minimum``/``maximum`` split the cotangent in halves, softplus is linear above its threshold), so the
native path matches the eager path to rounding.

Example:
    >>> RULES[torch.sin].forward.format("x[0]"), RULES[torch.sin].adjoints[0].format("x[0]", g="b_v1", y="v1")
    ('sin(x[0])', 'b_v1 * cos(x[0])')
    >>> activation_rule(torch.nn.Tanh())[1]
    'tanh'
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import ops


@dataclass(frozen=True)
class Rule:
    """An element-wise op in C: the forward expression and the adjoint of each argument (None: zero)."""

    forward: str
    adjoints: tuple[str | None, ...]


RULES: dict[Callable, Rule] = {
    operator.add: Rule("{0} + {1}", ("{g}", "{g}")),
    operator.sub: Rule("{0} - {1}", ("{g}", "-{g}")),
    operator.mul: Rule("{0} * {1}", ("{g} * {1}", "{g} * {0}")),
    operator.truediv: Rule("{0} / {1}", ("{g} / {1}", "-{g} * {y} / {1}")),
    operator.neg: Rule("-{0}", ("-{g}",)),
    operator.pow: Rule("pow({0}, {1})", ("{g} * {1} * pow({0}, {1} - 1)", "{g} * {y} * log({0})")),
    torch.sin: Rule("sin({0})", ("{g} * cos({0})",)),
    torch.cos: Rule("cos({0})", ("-{g} * sin({0})",)),
    torch.tan: Rule("tan({0})", ("{g} * (1 + {y} * {y})",)),
    torch.exp: Rule("exp({0})", ("{g} * {y}",)),
    torch.log: Rule("log({0})", ("{g} / {0}",)),
    torch.tanh: Rule("tanh({0})", ("{g} * (1 - {y} * {y})",)),
    torch.sigmoid: Rule("1 / (1 + exp(-{0}))", ("{g} * {y} * (1 - {y})",)),
    F.softplus: Rule("({0} > 20 ? {0} : log1p(exp({0})))", ("{g} * ({0} > 20 ? 1 : 1 / (1 + exp(-{0})))",)),
    torch.sqrt: Rule("sqrt({0})", ("{g} * 0.5 / {y}",)),
    torch.rsqrt: Rule("1 / sqrt({0})", ("{g} * -0.5 * {y} * {y} * {y}",)),
    torch.abs: Rule("fabs({0})", ("{g} * (({0} > 0) - ({0} < 0))",)),
    torch.sign: Rule("(real)(({0} > 0) - ({0} < 0))", (None,)),
    ops.heaviside: Rule("(({0} > 0) + 0.5 * ({0} == 0))", (None,)),
    ops.minimum: Rule(
        "({0} <= {1} ? {0} : {1})",
        ("{g} * ({0} < {1} ? 1 : ({0} == {1} ? 0.5 : 0))", "{g} * ({1} < {0} ? 1 : ({0} == {1} ? 0.5 : 0))"),
    ),
    ops.maximum: Rule(
        "({0} >= {1} ? {0} : {1})",
        ("{g} * ({0} > {1} ? 1 : ({0} == {1} ? 0.5 : 0))", "{g} * ({1} > {0} ? 1 : ({0} == {1} ? 0.5 : 0))"),
    ),
}


def power_rule(exponent: float) -> Rule:
    """``x ** c`` for a constant ``c``: products for small integer powers (what torch's pow computes exactly)."""
    if exponent == 2:
        return Rule("{0} * {0}", ("{g} * 2 * {0}",))
    if exponent == 3:
        return Rule("{0} * {0} * {0}", ("{g} * 3 * {0} * {0}",))
    c = repr(float(exponent))
    return Rule(f"pow({{0}}, {c})", (f"{{g}} * {c} * pow({{0}}, {c} - 1)",))


# a net's tanh without a libm call per element (libm's tanh was 70-90 % of a small tanh net's time), in code
# gcc vectorizes. float32: Eigen's (and XLA's) rational approximation, 3 float32 ulps at most. float64:
# -expm1(-2|z|) / (2 + expm1(-2|z|)), expm1 = 2^k (1 + q(r)) - 1 with x = k ln2 + r (Cody-Waite), q the
# degree-13 Taylor polynomial of expm1 on |r| <= ln2/2, 2^k from the bits of k + 0x1.8p52: 3 float64 ulps
# at most from torch.tanh over [-25, 25] and down to 1e-300 (measured), NaN propagates. ND_FLOAT32 is
# defined by the float32 build (nodedsl.train.native).
_TANH = """#ifdef ND_FLOAT32
static inline real nd_tanh_f32(real z) {
  const real x = z > 9 ? 9 : (z < -9 ? -9 : z), x2 = x * x;
  real p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
  p = x2 * p + -8.60467152213735e-11f; p = x2 * p + 5.12229709037114e-08f; p = x2 * p + 1.48572235717979e-05f;
  p = x2 * p + 6.37261928875436e-04f; p = x2 * p + 4.89352455891786e-03f;
  real q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
  q = x2 * q + 2.26843463243900e-03f; q = x2 * q + 4.89352518554385e-03f;
  return x * p / q;
}
#define ND_TANH nd_tanh_f32
#else
static inline real nd_tanh_f64(real z) {
  const real a = fabs(z) > 20 ? 20 : fabs(z), x = -2 * a; /* NaN stays NaN */
  const real ks = x * 1.4426950408889634074 + 6755399441055744.0, k = ks - 6755399441055744.0;
  const real r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10;
  real q = 1.0 / 6227020800.0;
  q = q * r + 1.0 / 479001600.0; q = q * r + 1.0 / 39916800.0; q = q * r + 1.0 / 3628800.0;
  q = q * r + 1.0 / 362880.0; q = q * r + 1.0 / 40320.0; q = q * r + 1.0 / 5040.0; q = q * r + 1.0 / 720.0;
  q = q * r + 1.0 / 120.0; q = q * r + 1.0 / 24.0; q = q * r + 1.0 / 6.0; q = q * r + 0.5; q = q * r + 1.0;
  q = q * r;
  int64_t bits; __builtin_memcpy(&bits, &ks, 8);
  bits = (bits + 1023) << 52;
  real scale; __builtin_memcpy(&scale, &bits, 8);
  const real em1 = scale * q + (scale - 1), t = -em1 / (2 + em1);
  return z < 0 ? -t : t;
}
#define ND_TANH nd_tanh_f64
#endif
"""

# activation -> C preamble defining act_NAME(z), d1_NAME(z, a) = act'(z), d2_NAME(z, a) = act''(z); a = act(z)
_ACTS: dict[str, str] = {
    "identity": "static inline real act_identity(real z) { return z; }\n"
    "static inline real d1_identity(real z, real a) { return 1; }\n"
    "static inline real d2_identity(real z, real a) { return 0; }\n",
    "tanh": _TANH + "static inline real act_tanh(real z) { return ND_TANH(z); }\n"
    "static inline real d1_tanh(real z, real a) { return 1 - a * a; }\n"
    "static inline real d2_tanh(real z, real a) { return -2 * a * (1 - a * a); }\n",
    "sigmoid": "static inline real act_sigmoid(real z) { return 1 / (1 + exp(-z)); }\n"
    "static inline real d1_sigmoid(real z, real a) { return a * (1 - a); }\n"
    "static inline real d2_sigmoid(real z, real a) { return a * (1 - a) * (1 - 2 * a); }\n",
    "relu": "static inline real act_relu(real z) { return z > 0 ? z : 0; }\n"
    "static inline real d1_relu(real z, real a) { return z > 0 ? 1 : 0; }\n"
    "static inline real d2_relu(real z, real a) { return 0; }\n",
    "silu": "static inline real act_silu(real z) { return z / (1 + exp(-z)); }\n"
    "static inline real d1_silu(real z, real a) { real s = 1 / (1 + exp(-z)); return s * (1 + z * (1 - s)); }\n"
    "static inline real d2_silu(real z, real a) {\n"
    "  real s = 1 / (1 + exp(-z)); return s * (1 - s) * (2 + z * (1 - 2 * s)); }\n",
    "gelu": "static inline real act_gelu(real z) { return 0.5 * z * (1 + erf(z * 0.70710678118654752440)); }\n"
    "static inline real d1_gelu(real z, real a) {\n"
    "  return 0.5 * (1 + erf(z * 0.70710678118654752440)) + z * exp(-0.5 * z * z) * 0.39894228040143267794; }\n"
    "static inline real d2_gelu(real z, real a) { return exp(-0.5 * z * z) * 0.39894228040143267794 * (2 - z * z); }\n",
}


def _softplus(name: str, beta: float, threshold: float) -> str:
    b, th = repr(float(beta)), repr(float(threshold))
    return (
        f"static inline real act_{name}(real z) {{ return z * {b} > {th} ? z : log1p(exp(z * {b})) / {b}; }}\n"
        f"static inline real d1_{name}(real z, real a) {{ return z * {b} > {th} ? 1 : 1 / (1 + exp(-z * {b})); }}\n"
        f"static inline real d2_{name}(real z, real a) {{\n"
        f"  if (z * {b} > {th}) return 0; real s = 1 / (1 + exp(-z * {b})); return {b} * s * (1 - s); }}\n"
    )


def _elu(name: str, alpha: float) -> str:
    al = repr(float(alpha))
    return (
        f"static inline real act_{name}(real z) {{ return z > 0 ? z : {al} * expm1(z); }}\n"
        f"static inline real d1_{name}(real z, real a) {{ return z > 0 ? 1 : {al} * exp(z); }}\n"
        f"static inline real d2_{name}(real z, real a) {{ return z > 0 ? 0 : {al} * exp(z); }}\n"
    )


def activation_rule(layer: torch.nn.Module) -> tuple[str, str] | None:
    """``(C preamble, name)`` of an activation layer's rules (``act_name``, ``d1_name``, ``d2_name``), or None
    when the layer has none (GELU's tanh approximation, an unknown module)."""
    if isinstance(layer, torch.nn.Identity):
        return _ACTS["identity"], "identity"
    for cls, name in ((torch.nn.Tanh, "tanh"), (torch.nn.Sigmoid, "sigmoid"), (torch.nn.ReLU, "relu")):
        if isinstance(layer, cls):
            return _ACTS[name], name
    if isinstance(layer, torch.nn.SiLU):
        return _ACTS["silu"], "silu"
    if isinstance(layer, torch.nn.GELU) and layer.approximate == "none":
        return _ACTS["gelu"], "gelu"
    if isinstance(layer, torch.nn.Softplus):
        name = f"softplus_{abs(hash((layer.beta, layer.threshold))) % 10**8}"
        return _softplus(name, layer.beta, layer.threshold), name
    if isinstance(layer, torch.nn.ELU):
        name = f"elu_{abs(hash(layer.alpha)) % 10**8}"
        return _elu(name, layer.alpha), name
    return None
