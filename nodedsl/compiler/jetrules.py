"""Taylor-mode arithmetic on truncated power series of tensors (the rules behind ``_fxjet``).

A series ``z(t) = z0 + z1 t + z2 t^2 + ...`` is a tuple of its coefficients; ``None`` stands for a
zero coefficient (constants along the flow have only ``z0``). Each rule returns coefficient ``k``
of the result from the coefficients ``0..k`` of its arguments, by the classical recurrences
(Griewank & Walther, "Evaluating Derivatives", ch. 13): products are Cauchy sums, and for
``y = g(z)`` with ``g' = d(z)``, ``k y_k = sum_{j=1..k} j z_j d_{k-j}``. The rules are pure
functions of plain tensors, so reverse mode differentiates through them for training.

Example:
    >>> import torch
    >>> z = (torch.tensor(0.5), torch.tensor(1.0))        # z(t) = 0.5 + t
    >>> y0 = unary("exp", 0, z, ())
    >>> y1 = unary("exp", 1, z, (y0,))                     # d/dt exp(0.5 + t) at 0
    >>> round(float(y1), 6) == round(float(torch.exp(torch.tensor(0.5))), 6)
    True
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def coef(s, i: int):
    return s[i] if 0 <= i < len(s) else None


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _scale(a, c: float):
    return None if a is None else a * c


def mul(k: int, a, b):
    """Coefficient k of ``a * b`` (Cauchy product)."""
    out = None
    for i in range(k + 1):
        ai, bi = coef(a, i), coef(b, k - i)
        if ai is not None and bi is not None:
            out = _add(out, ai * bi)
    return out


def div(k: int, a, b, c):
    """Coefficient k of ``c = a / b`` given ``c``'s coefficients ``0..k-1``."""
    if k == 0:
        return a[0] / b[0]
    acc = coef(a, k)
    for i in range(1, k + 1):
        bi, ci = coef(b, i), coef(c, k - i)
        if bi is not None and ci is not None:
            acc = -(bi * ci) if acc is None else acc - bi * ci
    return None if acc is None else acc / b[0]


def _integrate(k: int, z, d):
    """``y_k = (1/k) sum_{j=1..k} j z_j d_{k-j}``: the coefficient k of ``y`` with ``y' = d z'``."""
    out = None
    for j in range(1, k + 1):
        zj, dj = coef(z, j), coef(d, k - j)
        if zj is not None and dj is not None:
            out = _add(out, zj * dj * j)
    return _scale(out, 1.0 / k)


def _series(k: int, z, first, derivative):
    """Coefficients ``0..k-1`` of ``y = g(z)`` whose derivative series is ``derivative(y, m)`` (0..m)."""
    y = [first]
    for m in range(1, k):
        d = [derivative(y, i) for i in range(m)]
        y.append(_integrate(m, z, d))
    return y


def _sigmoid_series(k: int, z):
    return _series(k, z, torch.sigmoid(z[0]), lambda s, i: _add(coef(s, i), _scale(mul(i, s, s), -1.0)))


def _deriv(name: str, k: int, z, y):
    """Coefficients ``0..k-1`` of ``g'(z(t))`` for ``y = g(z)`` (``y``'s coefficients ``0..k-1`` given)."""
    if name == "exp":
        return list(y)
    if name in ("tanh", "tan"):
        sign = -1.0 if name == "tanh" else 1.0
        return [_add(torch.ones_like(y[0]) if i == 0 else None, _scale(mul(i, y, y), sign)) for i in range(k)]
    if name == "sigmoid":
        return [_add(coef(y, i), _scale(mul(i, y, y), -1.0)) for i in range(k)]
    if name == "softplus":
        return _sigmoid_series(k, z)
    if name in ("sin", "cos"):
        # d is the partner: sin' = cos, cos' = -sin; then d' = -y z'
        first = torch.cos(z[0]) if name == "sin" else -torch.sin(z[0])
        return [first] + [_scale(_integrate(m, z, y), -1.0) for m in range(1, k)]
    raise NotImplementedError(name)


_FIRST = {
    "exp": torch.exp,
    "tanh": torch.tanh,
    "tan": torch.tan,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "sin": torch.sin,
    "cos": torch.cos,
    "log": torch.log,
    "sqrt": torch.sqrt,
}


UNARY_NAMES = frozenset(_FIRST)  # the element-wise functions ``unary`` has a recurrence for
PIECEWISE_KINDS = frozenset({"abs", "relu", "sign", "heaviside"})
MINMAX_KINDS = frozenset({"min", "max"})


def unary(name: str, k: int, z, y):
    """Coefficient k of ``g(z)`` for the elementwise function ``name``, given ``y = g(z)``'s ``0..k-1``."""
    if k == 0:
        return _FIRST[name](z[0])
    if name == "log":  # z y' = z'
        acc = coef(z, k)
        for j in range(1, k):
            yj, zj = coef(y, j), coef(z, k - j)
            if yj is not None and zj is not None:
                term = yj * zj * (j / k)
                acc = -term if acc is None else acc - term
        return None if acc is None else acc / z[0]
    if name == "sqrt":  # y^2 = z
        acc = coef(z, k)
        for j in range(1, k):
            yj, yk = coef(y, j), coef(y, k - j)
            if yj is not None and yk is not None:
                acc = -(yj * yk) if acc is None else acc - yj * yk
        return None if acc is None else acc / (2 * y[0])
    return _integrate(k, z, _deriv(name, k, z, y))


def power(k: int, z, a: float, y):
    """Coefficient k of ``z ** a`` for a constant non-integer ``a`` (needs ``z0 != 0``)."""
    if k == 0:
        return z[0] ** a
    out = None
    for j in range(1, k + 1):
        zj, yk = coef(z, j), coef(y, k - j)
        if zj is not None and yk is not None:
            out = _add(out, zj * yk * (a * j - (k - j)))
    return None if out is None else out / (k * z[0])


def piecewise(k: int, z, kind: str):
    """``abs``/``relu``/``sign``/``heaviside`` beyond coefficient 0 (valid away from the kink)."""
    zk = coef(z, k)
    if zk is None or kind in ("sign", "heaviside"):
        return None
    if kind == "abs":
        return torch.sign(z[0]) * zk
    return (z[0] > 0).to(zk.dtype) * zk  # relu


def gelu(k: int, z):
    """Coefficient k of ``gelu(z) = z Phi(z)`` (exact erf form)."""
    if k == 0:
        return F.gelu(z[0])
    phi = [torch.exp(-0.5 * z[0] * z[0]) / math.sqrt(2 * math.pi)]  # Phi' = phi, phi' = -z phi z'
    for m in range(1, k + 1):
        zphi = [mul(i, z, phi) for i in range(m)]
        phi.append(_scale(_integrate(m, z, zphi), -1.0))
    cdf = [0.5 * (1 + torch.erf(z[0] / math.sqrt(2)))] + [_integrate(m, z, phi) for m in range(1, k + 1)]
    return mul(k, z, cdf)


def silu(k: int, z):
    return mul(k, z, _sigmoid_series(k + 1, z))


def elu(k: int, z, alpha: float):
    if k == 0:
        return F.elu(z[0], alpha)
    e = _series(k + 1, z, torch.exp(z[0]), lambda s, i: coef(s, i))
    zk, ek = coef(z, k), coef(e, k)
    pos = (z[0] > 0).to(z[0].dtype)
    if zk is None and ek is None:
        return None
    return pos * (zk if zk is not None else 0.0) + (1 - pos) * alpha * (ek if ek is not None else 0.0)


def minmax(kind: str, k: int, *series):
    """Coefficient k of ``min``/``max`` of the series: each element follows the argument that wins at
    coefficient 0 (valid away from ties)."""
    ref = next(s[0] for s in series if isinstance(s[0], torch.Tensor))
    best0 = torch.as_tensor(series[0][0], dtype=ref.dtype, device=ref.device)
    bestk = coef(series[0], k)
    for s in series[1:]:
        s0 = torch.as_tensor(s[0], dtype=ref.dtype, device=ref.device)
        take = s0 < best0 if kind == "min" else s0 > best0
        best0 = torch.where(take, s0, best0)
        if k:
            sk = coef(s, k)
            if sk is None and bestk is None:
                continue
            zero = torch.zeros((), dtype=ref.dtype, device=ref.device)
            bestk = torch.where(take, zero if sk is None else sk, zero if bestk is None else bestk)
    return best0 if k == 0 else bestk


def _activation(layer: torch.nn.Module):
    """(rule, needs the layer's own previous coefficients) for an activation module, or None."""
    nn = torch.nn
    if isinstance(layer, nn.Identity):
        return lambda k, z, y: z[k]
    if isinstance(layer, nn.Tanh):
        return lambda k, z, y: unary("tanh", k, z, y)
    if isinstance(layer, nn.Sigmoid):
        return lambda k, z, y: unary("sigmoid", k, z, y)
    if isinstance(layer, nn.Softplus) and layer.beta == 1:
        return lambda k, z, y: unary("softplus", k, z, y)
    if isinstance(layer, nn.ReLU):
        return lambda k, z, y: F.relu(z[0]) if k == 0 else piecewise(k, z, "relu")
    if isinstance(layer, nn.GELU) and layer.approximate == "none":
        return lambda k, z, y: gelu(k, z)
    if isinstance(layer, nn.SiLU):
        return lambda k, z, y: silu(k, z)
    if isinstance(layer, nn.ELU):
        return lambda k, z, y: elu(k, z, float(layer.alpha))
    return None


def mlp_supported(net: torch.nn.Module) -> bool:
    """Whether :func:`mlp` has a rule for every layer of ``net``."""
    return isinstance(net, torch.nn.Sequential) and all(
        isinstance(layer, torch.nn.Linear) or _activation(layer) is not None for layer in net
    )


def mlp(net: torch.nn.Sequential, k: int, inp, state):
    """Coefficient k of ``net(inp(t))`` and the updated per-layer state.

    ``inp`` holds the input's coefficients ``0..k``; ``state`` every layer's output coefficients
    ``0..k-1`` (None at ``k = 0``). Linear layers act on each coefficient (the bias only on the
    first), activations by their recurrences."""
    z = tuple(inp)
    new = []
    for i, layer in enumerate(net):
        prev = state[i] if state is not None else ()
        zk = coef(z, k)
        if isinstance(layer, torch.nn.Linear):
            out = layer(zk) if k == 0 else (None if zk is None else F.linear(zk, layer.weight))
        else:
            out = _activation(layer)(k, z, prev)
        z = tuple(prev) + (out,)
        new.append(z)
    return z[k], tuple(new)
