"""The pydantic models of ``dataset`` and ``train`` blocks (strict: unknown keys and wrong types are errors).

Example:
    >>> TrainConfig.model_validate({"model": "M", "data": "d", "solver": "rk4"}).solver
    SolverCall(kind='rk4', options={})
    >>> str(SolverCall.model_validate({"kind": "taylor", "order": 4}))
    'taylor(order = 4)'
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PrivateAttr, Tag, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ...core.solvers import solver_names
from .base import DeviceName, Finite, NonNegFloat, PosFloat, PosInt, Seed, _tag_errors, as_call, kind_of
from .draws import (  # re-exported: the block models' parts
    SIGNAL_KINDS,
    Component,
    Distribution,
    InitValue,
    InputExpression,
    InputValue,
    Normal,
    Signal,
    Uniform,
)
from .methods import DerivativesValue, ObjectiveValue
from .optimizers import Adam, OptimizerValue

__all__ = [
    "SIGNAL_KINDS",
    "Component",
    "Distribution",
    "InitValue",
    "InputExpression",
    "InputValue",
    "Normal",
    "Signal",
    "Uniform",
]

SOLVER_NAMES: tuple[str, ...] = tuple(solver_names())  # for help text and completion


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TimeSpan(_Strict):
    kind: Literal["span"]
    t0: Finite
    t1: Finite
    step: PosFloat

    @model_validator(mode="after")
    def _order(self) -> Self:
        if not self.t1 > self.t0:
            raise PydanticCustomError(
                "bad_value", "span(t0, t1, step) needs t0 < t1, got ({t0}, {t1})", {"t0": self.t0, "t1": self.t1}
            )
        if (self.t1 - self.t0) / self.step > 1_000_000:
            raise PydanticCustomError("bad_value", "span(...) would have more than a million time points")
        return self

    def times(self) -> list[float]:
        n = int(math.floor((self.t1 - self.t0) / self.step + 1e-9))
        return [self.t0 + k * self.step for k in range(n + 1)]


def _time_tag(v: Any) -> str | None:
    return "list" if isinstance(v, list) else kind_of(v)


TimeValue = Annotated[
    Annotated[TimeSpan, Tag("span")] | Annotated[list[Finite], Tag("list")],
    Discriminator(_time_tag, **_tag_errors("span(t0, t1, step = dt) or a list of times")),
]


class SolverCall(_Strict):
    """A solver call: a catalogued solver's name (``kind``) and its options.

    The options are checked against ``nodedsl.core.solvers`` (no torch) when the block is validated;
    ``nodedsl.solvers.make_solver`` builds the solver later. Known solvers: ``SOLVER_NAMES``."""

    kind: str
    options: dict[str, bool | int | float | str | None] = {}

    @model_validator(mode="before")
    @classmethod
    def _from_call(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, dict) and "options" not in v and "kind" in v:
            return {"kind": v["kind"], "options": {k: x for k, x in v.items() if k != "kind"}}
        return v

    def __str__(self) -> str:
        return f"{self.kind}(" + ", ".join(f"{k} = {v}" for k, v in self.options.items()) + ")"


class DatasetConfig(_Strict):
    """A ``dataset`` block: synthetic trajectories of ``model``."""

    model: str
    trajectories: PosInt = 1
    time: TimeValue
    initial: dict[str, InitValue] = {}
    inputs: dict[str, InputValue] = {}
    draws: dict[str, Component] = {}  # per-trajectory random numbers named in input expressions
    noise: NonNegFloat = 0.0
    seed: Seed = 0
    solver: SolverCall | None = None
    _spans: dict = PrivateAttr(default_factory=dict)

    @field_validator("solver", mode="before")
    @classmethod
    def _solver(cls, v: Any) -> Any:
        return as_call(v)

    @field_validator("time")
    @classmethod
    def _increasing(cls, v: Any) -> Any:
        if isinstance(v, list):
            if len(v) < 2:
                raise PydanticCustomError("bad_value", "a list of times needs at least 2 entries")
            if any(b <= a for a, b in zip(v, v[1:])):
                raise PydanticCustomError("bad_value", "times must be strictly increasing")
        return v

    def times(self) -> list[float]:
        return self.time.times() if isinstance(self.time, TimeSpan) else list(self.time)


class WindowInit(_Strict):
    """How windows start: from the data (``data``), from trained estimates (``learned``), with latent
    states at zero (``zero``) or from a recurrent encoder of the window's first ``steps`` observations
    (``encoder``, a GRU of ``hidden`` units trained jointly)."""

    kind: Literal["data", "learned", "zero", "encoder"]
    after: Annotated[int, Field(ge=0)] = 0
    hidden: PosInt = 32
    steps: PosInt = 8


class Nudging(_Strict):
    """``assimilate = nudging(gain, steps)``: the first ``steps`` steps of each window are pulled toward
    the observations (``x' = f(x) + gain (y - x)`` on observed states); the loss is on the rest."""

    kind: Literal["nudging"]
    gain: PosFloat = 5.0
    steps: PosInt = 10


class Horizon(_Strict):
    """The shooting horizon: the whole window (``full``), or growing from ``start`` steps to the window over
    the first ``until`` fraction of the epochs (``grow``; sub-windows start at observed states)."""

    kind: Literal["full", "grow"]
    start: PosInt = 5
    until: Annotated[float, Field(gt=0, le=1)] = 0.5


class Checkpointing(_Strict):
    kind: Literal["checkpoint"]
    segments: PosInt = 4


class Cosine(_Strict):
    kind: Literal["cosine"]
    min_lr: NonNegFloat = 0.0


class StepSchedule(_Strict):
    kind: Literal["step"]
    every: PosInt = 50
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.5


class Exponential(_Strict):
    kind: Literal["exponential"]
    gamma: Annotated[float, Field(gt=0, le=1)] = 0.99


class EarlyStopping(_Strict):
    kind: Literal["early_stopping"]
    patience: PosInt = 20
    min_delta: NonNegFloat = 0.0


class AugmentedLagrangian(_Strict):
    kind: Literal["augmented_lagrangian"]
    mu: PosFloat = 1.0  # in units of the early data loss per unit normalized residual (scale = auto)
    growth: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    mu_max: PosFloat = 100.0
    update_every: PosInt = 50  # optimizer steps, not epochs
    tolerance: NonNegFloat = 1e-3  # on the normalized violation (scale = auto)
    samples: PosInt = 256
    points: PosInt = 4096  # the fixed collocation set of a `for` constraint (one multiplier per point)
    scale: Literal["auto"] | None = "auto"  # none: raw residuals, mu in the loss's own units


GradientValue = Annotated[
    Annotated[Literal["backprop"], Tag("backprop")]
    | Annotated[Literal["adjoint"], Tag("adjoint")]
    | Annotated[Checkpointing, Tag("checkpoint")],
    Discriminator(kind_of, **_tag_errors("backprop, adjoint, checkpoint(segments = k)")),
]
ScheduleValue = Annotated[
    Annotated[Cosine, Tag("cosine")]
    | Annotated[StepSchedule, Tag("step")]
    | Annotated[Exponential, Tag("exponential")],
    Discriminator(kind_of, **_tag_errors("none, cosine, step(every, gamma), exponential(gamma)")),
]

_CALL_KEYS = (
    "solver",
    "optimizer",
    "schedule",
    "constraints",
    "window_init",
    "horizon",
    "objective",
    "assimilate",
    "derivatives",
)


class TrainConfig(_Strict):
    """A ``train MODEL`` block. ``data`` is a dataset name or a ``.csv``/``.npz`` path."""

    model: str
    data: str
    solver: SolverCall = SolverCall(kind="rk4")
    gradient: GradientValue = "backprop"
    window: PosInt = 10
    epochs: PosInt = 100
    batch: PosInt = 64
    optimizer: OptimizerValue = Adam(kind="adam")
    schedule: ScheduleValue | None = None
    clip: PosFloat | None = None
    early_stopping: EarlyStopping | None = None
    constraints: AugmentedLagrangian | None = AugmentedLagrangian(kind="augmented_lagrangian")
    validation: Annotated[float, Field(ge=0, lt=1)] = 0.2
    seed: Seed = 0
    loss: Literal["mse", "mae"] = "mse"
    output: str | None = None
    coupling: Literal["gradient", "least_squares"] = "gradient"
    missing_inputs: Literal["error", "default"] = "error"  # an input column absent from a data file
    checkpoint_every: PosInt = 10
    window_init: WindowInit = WindowInit(kind="data")
    horizon: Horizon = Horizon(kind="grow")
    objective: ObjectiveValue | None = None  # SDE models; density: normalizing flows
    derivatives: DerivativesValue | None = None  # derivative supervision (methods.py)
    assimilate: Nudging | None = None
    compile: Literal["auto", "off", "whole_step", "native"] = "off"  # the fast training step (train/fast.py)
    device: DeviceName = "cpu"  # cpu | cuda | cuda:N | auto (docs/scaling.md)
    log: Literal["files", "tensorboard"] = "files"  # tensorboard: also an event file per run
    _spans: dict = PrivateAttr(default_factory=dict)

    @field_validator(*_CALL_KEYS, mode="before")
    @classmethod
    def _calls(cls, v: Any) -> Any:
        return as_call(v)

    @field_validator("gradient", mode="before")
    @classmethod
    def _gradient(cls, v: Any) -> Any:
        return {"kind": "checkpoint"} if v == "checkpoint" else v

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _patience(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"kind": "early_stopping", "patience": v}
        return as_call(v)

    @field_validator("data")
    @classmethod
    def _data(cls, v: str) -> str:
        if not v:
            raise PydanticCustomError("bad_value", "data must name a dataset or a .csv/.npz file")
        return v

    @property
    def data_is_file(self) -> bool:
        """True when ``data`` is a file path (``.csv``/``.parquet``/``.npz``), not a dataset name."""
        return self.data.lower().endswith((".csv", ".npz", ".parquet", ".pq", ".h5", ".hdf5")) or "/" in self.data

    def gradient_mode(self) -> str | tuple[str, int]:
        """The ``gradient`` argument of ``solve``."""
        g = self.gradient
        return ("checkpoint", g.segments) if isinstance(g, Checkpointing) else g
