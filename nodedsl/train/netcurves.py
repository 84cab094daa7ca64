"""Learned versus true net curves: what each scalar net learned, against what the truth implies.

For every net of one input and one output the run records, along the held-out rollout's states, the
net's inputs and outputs. When the data came from a ``dataset`` block whose truth model has the same
states, it also records the *implied truth*: a net enters the learned field affinely in the common case
(``der(omega) = ... - friction(omega)``), so with the net's output forced to 0 and to 1 the field gives
``f = a + b n`` per equation, and ``n_true = (f_truth - a) / b`` on the equation where ``|b|`` is
largest is the output that would make the learned model match the truth there. A net that does not
enter affinely (``b`` varies with the forced value) gets no truth points.

Example:
    >>> import math, torch, nodedsl
    >>> prog = nodedsl.load("examples/pendulum.node")
    >>> model, truth = prog.model("Pendulum", dtype=torch.float64), prog.model("PendulumTruth", dtype=torch.float64)
    >>> x = torch.tensor([[0.3, 0.5], [0.1, -1.0]], dtype=torch.float64)
    >>> u = torch.zeros(2, 1, dtype=torch.float64)
    >>> with torch.no_grad():  # the true length (stored through softplus): the implied net is the true friction
    ...     _ = model.learned["L"].fill_(math.log(math.expm1(1.3)))
    >>> curves = net_curves(model, truth, torch.zeros(2, dtype=torch.float64), x, u)
    >>> [round(v, 6) for v in curves["friction"]["truth"].tolist()]  # 0.4 w + 0.2 tanh(5 w)
    [0.397323, -0.599982]
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["net_curves", "save_net_curves"]


def _forced(model, net: torch.nn.Module, value: float | None, t, x, u) -> tuple[torch.Tensor, list]:
    seen: list = []

    def hook(_mod, inp, out):
        seen.append((inp[0].detach(), out.detach()))
        return None if value is None else torch.full_like(out, value)

    handle = net.register_forward_hook(hook)
    try:
        with torch.no_grad():
            return model.field(t, x, u), seen
    finally:
        handle.remove()


def net_curves(model, truth, t: torch.Tensor, x: torch.Tensor, u: torch.Tensor) -> dict[str, dict[str, np.ndarray]]:
    """``{net: {"input", "output"[, "truth"]}}`` at the points ``t [P]``, ``x [P, n]``, ``u [P, m]`` for
    every net with one input and one output (called once per field evaluation); ``truth`` may be None."""
    out: dict[str, dict[str, np.ndarray]] = {}
    same = truth is not None and tuple(truth.state_names) == tuple(model.state_names)
    f_true = None
    if same:
        with torch.no_grad():
            f_true = truth.field(t, x, u)
    for name, net in model.nets.items():
        _, seen = _forced(model, net, None, t, x, u)
        if len(seen) != 1 or seen[0][0].shape[-1] != 1 or seen[0][1].shape[-1] != 1:
            continue
        curve = {"input": seen[0][0][:, 0].numpy(), "output": seen[0][1][:, 0].numpy()}
        if f_true is not None:
            f0, _ = _forced(model, net, 0.0, t, x, u)
            f1, _ = _forced(model, net, 1.0, t, x, u)
            f2, _ = _forced(model, net, 2.0, t, x, u)
            b = f1 - f0
            if torch.allclose(f2 - f1, b, rtol=1e-6, atol=1e-9):  # affine in the net's output
                row = int(b.abs().mean(0).argmax())
                if float(b[:, row].abs().min()) > 1e-12:
                    curve["truth"] = ((f_true[:, row] - f0[:, row]) / b[:, row]).numpy()
        out[name] = curve
    return out


def save_net_curves(path, curves: dict[str, dict[str, np.ndarray]]) -> None:
    """``nets.npz``: arrays ``NAME.input``, ``NAME.output`` and (when known) ``NAME.truth``."""
    from ..io.atomic import atomic_write

    arrays = {f"{name}.{key}": np.asarray(v) for name, c in curves.items() for key, v in c.items()}
    atomic_write(path, lambda fh: np.savez(fh, **arrays), binary=True)
