"""Excitation signals of ``dataset`` inputs: ``sine``, ``multisine``, ``chirp``, ``prbs`` and ``steps``,
each drawn once per trajectory (random phases and levels, and any argument given as a draw).

A signal is a function of time returning one value per trajectory. Draws come from the dataset's
generator in a fixed order, so a dataset is the same on every run; datasets without signals draw
nothing here (their data do not change).

Example:
    >>> import torch
    >>> from nodedsl.frontend.config.schema import Signal
    >>> g = torch.Generator().manual_seed(0)
    >>> s = make_signal(Signal.model_validate({"kind": "sine", "amplitude": 2.0, "frequency": 0.25}), 3, g, 0.0, 4.0)
    >>> [round(v, 6) for v in s(1.0).tolist()]
    [2.0, 2.0, 2.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..frontend.config import Normal, Uniform

__all__ = ["draw", "make_signal"]

TWO_PI = 2 * math.pi


def draw(spec, count: int, g: torch.Generator) -> torch.Tensor:
    """``count`` float64 values of a number or a ``uniform``/``normal`` draw."""
    if isinstance(spec, Uniform):
        return spec.low + (spec.high - spec.low) * torch.rand(count, generator=g, dtype=torch.float64)
    if isinstance(spec, Normal):
        return spec.mean + spec.std * torch.randn(count, generator=g, dtype=torch.float64)
    return torch.full((count,), float(spec), dtype=torch.float64)


def make_signal(spec, count: int, g: torch.Generator, t0: float, t1: float) -> Callable[[float], torch.Tensor]:
    """``u(t) -> [count]`` of a ``Signal`` config over the dataset's time range ``[t0, t1]``.

    sine: ``amplitude sin(2 pi frequency t + phase)``; multisine: ``n`` sines at frequencies evenly spaced
    in ``[f0, f1]``, random phases, each of amplitude ``amplitude / sqrt(n)`` (so its RMS is that of one
    sine); chirp: a linear sweep from ``f0`` at ``t0`` to ``f1`` at ``t1``; prbs: ``+-amplitude`` held for
    ``period``; steps: levels uniform in ``[-amplitude, amplitude]`` held for ``period``. Each adds ``offset``.
    """
    amp, offset = draw(spec.amplitude, count, g), draw(spec.offset, count, g)
    span = max(t1 - t0, 1e-12)
    if spec.kind == "sine":
        f, ph = draw(spec.frequency, count, g), draw(spec.phase, count, g)
        return lambda t: amp * torch.sin(TWO_PI * f * t + ph) + offset
    if spec.kind == "multisine":
        f0, f1 = draw(spec.f0, count, g), draw(spec.f1, count, g)
        steps = torch.linspace(0, 1, spec.n, dtype=torch.float64) if spec.n > 1 else torch.zeros(1, dtype=torch.float64)
        freqs = f0[:, None] + (f1 - f0)[:, None] * steps[None, :]  # [count, n]
        phases = TWO_PI * torch.rand(count, spec.n, generator=g, dtype=torch.float64)
        scale = amp / math.sqrt(spec.n)
        return lambda t: scale * torch.sin(TWO_PI * freqs * t + phases).sum(-1) + offset
    if spec.kind == "chirp":
        f0, f1 = draw(spec.f0, count, g), draw(spec.f1, count, g)

        def chirp(t):
            s = t - t0
            return amp * torch.sin(TWO_PI * (f0 * s + (f1 - f0) * s * s / (2 * span))) + offset

        return chirp
    # prbs and steps: one level per hold interval, the last one held to the end
    k = int(math.ceil(span / spec.period)) + 1
    if spec.kind == "prbs":
        levels = torch.where(torch.rand(count, k, generator=g, dtype=torch.float64) < 0.5, -1.0, 1.0)
    else:
        levels = 2 * torch.rand(count, k, generator=g, dtype=torch.float64) - 1
    levels = levels * amp[:, None]
    period = spec.period

    def held(t):
        i = min(max(int(math.floor((float(t) - t0) / period + 1e-9)), 0), k - 1)
        return levels[:, i] + offset

    return held
