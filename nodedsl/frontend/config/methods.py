"""Train-block options of training methods: derivative supervision (``derivatives = ndo | spline |
finite_difference``) and the ``objective`` key (SDE likelihoods, distribution matching, and ``density``:
continuous normalizing flows). See docs/training.md and docs/stochastic.md.

Example:
    >>> from pydantic import TypeAdapter
    >>> TypeAdapter(DerivativesValue).validate_python({"kind": "spline", "weight": 0.5}).smoothing is None
    True
    >>> Density.model_validate({"kind": "density"}).trace
    'auto'
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Tag

from .base import NonNegFloat, PosFloat, PosInt, _tag_errors, kind_of

__all__ = [
    "Density",
    "DerivativesValue",
    "DistributionMatching",
    "FiniteDifferenceDerivatives",
    "NdoDerivatives",
    "ObjectiveValue",
    "SplineDerivatives",
    "TransitionLikelihood",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NdoDerivatives(_Strict):
    """Derivative targets from the pre-trained neural differential operator shipped with nodedsl."""

    kind: Literal["ndo"]
    weight: PosFloat = 1.0


class SplineDerivatives(_Strict):
    """Derivative targets from a smoothing spline per trajectory and output (scipy
    ``make_smoothing_spline``; ``smoothing`` is its ``lam``, chosen by GCV when absent)."""

    kind: Literal["spline"]
    weight: PosFloat = 1.0
    smoothing: NonNegFloat | None = None


class FiniteDifferenceDerivatives(_Strict):
    """Derivative targets from second-order central differences (one-sided at the ends)."""

    kind: Literal["finite_difference"]
    weight: PosFloat = 1.0


DerivativesValue = Annotated[
    Annotated[NdoDerivatives, Tag("ndo")]
    | Annotated[SplineDerivatives, Tag("spline")]
    | Annotated[FiniteDifferenceDerivatives, Tag("finite_difference")],
    Discriminator(kind_of, **_tag_errors("ndo(weight), spline(weight, smoothing), finite_difference(weight)")),
]


class Density(_Strict):
    """``objective = density``: a continuous normalizing flow on samples (a CSV of points).

    ``log p(x) = log N(z(time); 0, I) + integral over [0, time] of tr(df/dz)``, integrating from the data
    at t = 0 forward; ``trace``: ``exact`` (the Jacobian's diagonal, one backward pass per state),
    ``hutchinson`` (Rademacher probes, seeded) or ``auto`` (exact up to ``exact_up_to`` states);
    ``steps``: RK4 steps over [0, time]."""

    kind: Literal["density"]
    trace: Literal["auto", "exact", "hutchinson"] = "auto"
    time: PosFloat = 1.0
    steps: PosInt = 8
    probes: PosInt = 1
    exact_up_to: PosInt = 8


class TransitionLikelihood(_Strict):
    """SDE models: the Euler-Maruyama likelihood of consecutive observations (see docs/stochastic.md)."""

    kind: Literal["transition_likelihood"]
    observation_noise: NonNegFloat = 0.0


class DistributionMatching(_Strict):
    """SDE models: simulated and observed ensembles matched at every observation time."""

    kind: Literal["distribution"]
    metric: Literal["energy", "mmd"] = "energy"
    samples: PosInt = 1


ObjectiveValue = Annotated[
    Annotated[TransitionLikelihood, Tag("transition_likelihood")]
    | Annotated[DistributionMatching, Tag("distribution")]
    | Annotated[Density, Tag("density")],
    Discriminator(kind_of, **_tag_errors("transition_likelihood(...), distribution(...), density(trace, time)")),
]
