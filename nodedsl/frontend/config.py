"""Validated configuration of ``dataset`` and ``train`` blocks (pydantic v2 models).

The block's value AST is first turned into plain Python (numbers, strings, lists, dicts and calls)
by :func:`to_plain`, which records the source span of every key; pydantic then validates the plain
data, and each pydantic error becomes a :class:`~nodedsl.core.diagnostics.Diagnostic` (``unknown-key``,
``bad-value``, ``missing-key``) located at the offending key.

Example:
    >>> from nodedsl.frontend.parse import parse_source
    >>> mod = parse_source("train M { data = d\\n epochs = 5\\n optimizer = adam(lr = 1e-2) }", "m.node")
    >>> cfg, diags = validate_train(mod.trains[0])
    >>> (cfg.epochs, cfg.optimizer.lr, cfg.solver.kind, diags)
    (5, 0.01, 'rk4', [])
    >>> cfg2 = apply_overrides(cfg, {"epochs": "7", "lr": "3e-3"})
    >>> (cfg2.epochs, cfg2.optimizer.lr)
    (7, 0.003)
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..core.diagnostics import Diagnostic, NodeDslError, Span, suggest
from . import ast

PathT = tuple[str | int, ...]
CMDLINE = Span("<command line>", 0, 0)

__all__ = [
    "LBFGS",
    "Adam",
    "AdamW",
    "AugmentedLagrangian",
    "Checkpointing",
    "Cosine",
    "DatasetConfig",
    "EarlyStopping",
    "Exponential",
    "Normal",
    "SolverSpec",
    "StepSchedule",
    "TimeSpan",
    "TrainConfig",
    "Uniform",
    "WindowInit",
    "apply_overrides",
    "key_span",
    "solver_args",
    "to_plain",
    "validate_dataset",
    "validate_train",
]


# ------------------------------------------------------------------ AST values -> plain Python
def _number(v: float) -> int | float:
    """Integral numbers become ints (the parser reads every number as a float)."""
    if math.isfinite(v) and float(v).is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def to_plain(
    value: ast.Value, path: PathT = (), spans: dict | None = None, diags: list[Diagnostic] | None = None
) -> Any:
    """Plain Python for a value: numbers, strings (names too; ``none``/``true``/``false`` are None/bools),
    lists, dicts, calls.

    A call becomes ``{"name": n, "args": [...], "kwargs": {...}}``. ``spans[path]`` receives the span of
    every key, list item and call argument below ``path`` (map keys: the whole ``key = value``).
    """
    spans = {} if spans is None else spans
    diags = [] if diags is None else diags
    spans.setdefault(path, value.span)
    if isinstance(value, ast.VNumber):
        return _number(value.value)
    if isinstance(value, ast.VString):
        return value.value
    if isinstance(value, ast.VName):
        return {"none": None, "true": True, "false": False}.get(value.name, value.name)
    if isinstance(value, ast.VList):
        out = []
        for i, item in enumerate(value.items):
            spans[path + (i,)] = item.span
            out.append(to_plain(item, path + (i,), spans, diags))
        return out
    if isinstance(value, ast.VMap):
        return entries_to_plain(value.entries, path, spans, diags)
    if isinstance(value, ast.VCall):
        args, kwargs = [], {}
        for i, arg in enumerate(value.args):
            if arg.name is None:
                spans[path + (i,)] = arg.span
                args.append(to_plain(arg.value, path + (i,), spans, diags))
            elif arg.name in kwargs:
                diags.append(
                    Diagnostic("duplicate-key", f"argument '{arg.name}' of {value.name}(...) is given twice", arg.span)
                )
            else:
                spans[path + (arg.name,)] = arg.span
                kwargs[arg.name] = to_plain(arg.value, path + (arg.name,), spans, diags)
        return {"name": value.name, "args": args, "kwargs": kwargs}
    raise TypeError(f"not a value: {value!r}")  # pragma: no cover - the parser builds only the above


def entries_to_plain(
    entries: tuple[ast.Entry, ...], path: PathT = (), spans: dict | None = None, diags: list[Diagnostic] | None = None
) -> dict:
    """A ``{ key = value ... }`` body as a dict; a key given twice is a ``duplicate-key`` diagnostic."""
    spans = {} if spans is None else spans
    diags = [] if diags is None else diags
    out: dict[str, Any] = {}
    for e in entries:
        if e.key in out:
            diags.append(
                Diagnostic(
                    "duplicate-key",
                    f"key '{e.key}' is given twice",
                    e.span,
                    (f"first given at {spans.get(path + (e.key,), e.span)}",),
                )
            )
            continue
        spans[path + (e.key,)] = e.span
        out[e.key] = to_plain(e.value, path + (e.key,), spans, diags)
    return out


# Positional parameters of the calls the blocks know; a call becomes {"kind": name, **kwargs}.
_FIXED = ("step",)
_ADAPTIVE = ("rtol", "atol")
SIGNATURES: dict[str, tuple[str, ...]] = {
    "span": ("t0", "t1", "step"),
    "uniform": ("low", "high"),
    "normal": ("mean", "std"),
    "adam": ("lr", "weight_decay"),
    "adamw": ("lr", "weight_decay"),
    "lbfgs": ("lr", "max_iter"),
    "cosine": ("min_lr",),
    "step": ("every", "gamma"),
    "exponential": ("gamma",),
    "early_stopping": ("patience", "min_delta"),
    "checkpoint": ("segments",),
    "learned": ("after",),
    "augmented_lagrangian": ("mu", "growth", "mu_max", "update_every", "tolerance"),
    **dict.fromkeys(
        (
            "euler",
            "midpoint",
            "heun",
            "rk4",
            "ralston",
            "rk38",
            "leapfrog",
            "implicit_euler",
            "implicit_midpoint",
            "sdirk2",
            "sdirk3",
        ),
        _FIXED,
    ),
    **dict.fromkeys(("dopri5", "bosh3", "dopri8", "adaptive_heun"), _ADAPTIVE),
    "taylor": ("order", "step"),
}


def _normalize(value: Any, path: PathT, spans: dict, diags: list[Diagnostic]) -> Any:
    """Calls -> ``{"kind": name, **kwargs}`` with positional arguments named (spans follow)."""
    if isinstance(value, list):
        return [_normalize(v, path + (i,), spans, diags) for i, v in enumerate(value)]
    if isinstance(value, dict) and set(value) == {"name", "args", "kwargs"} and isinstance(value["name"], str):
        name, args, kwargs = value["name"], value["args"], value["kwargs"]
        out: dict[str, Any] = {"kind": name}
        sig = SIGNATURES.get(name, ())
        if len(args) > len(sig) and name in SIGNATURES:
            where = spans.get(path + (len(sig),), spans.get(path, CMDLINE))
            takes = (
                f"at most {len(sig)} positional argument(s) ({', '.join(sig)})"
                if sig
                else "only named arguments (name = value)"
            )
            diags.append(Diagnostic("bad-value", f"{name}(...) takes {takes}, got {len(args)}", where))
        for i, (pname, arg) in enumerate(zip(sig, args)):
            if pname in kwargs:
                diags.append(
                    Diagnostic(
                        "duplicate-key",
                        f"argument '{pname}' of {name}(...) is given twice",
                        spans.get(path + (pname,), spans.get(path, CMDLINE)),
                    )
                )
                continue
            if path + (i,) in spans:
                spans[path + (pname,)] = spans[path + (i,)]
            out[pname] = _normalize(arg, path + (pname,), spans, diags)
        for k, v in kwargs.items():
            if k == "kind":
                diags.append(
                    Diagnostic(
                        "unknown-key", f"unknown argument 'kind' of {name}(...)", spans.get(path + (k,), CMDLINE)
                    )
                )
                continue
            out[k] = _normalize(v, path + (k,), spans, diags)
        return out
    if isinstance(value, dict):
        return {k: _normalize(v, path + (k,), spans, diags) for k, v in value.items()}
    return value


# ------------------------------------------------------------------ pydantic models
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PosInt = Annotated[int, Field(ge=1)]


def _as_call(v: Any) -> Any:
    """A bare name (``adam``, ``cosine``) is the call with no arguments."""
    return {"kind": v} if isinstance(v, str) else v


def _tag_errors(kinds: str) -> dict:
    return dict(custom_error_type="bad_kind", custom_error_message=kinds)


def _kind_of(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return getattr(v, "kind", None)
    return v.get("kind") if isinstance(v, dict) else (v if isinstance(v, str) else None)


class Uniform(_Strict):
    kind: Literal["uniform"]
    low: Finite
    high: Finite

    @model_validator(mode="after")
    def _order(self):
        if not self.high > self.low:
            raise PydanticCustomError(
                "bad_value",
                "uniform(low, high) needs low < high, got ({low}, {high})",
                {"low": self.low, "high": self.high},
            )
        return self


class Normal(_Strict):
    kind: Literal["normal"]
    mean: Finite = 0.0
    std: NonNegFloat = 1.0


def _init_tag(v: Any) -> str | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, list):
        return "list"
    return _kind_of(v) if isinstance(v, (dict, BaseModel)) else None


Distribution = Annotated[
    Annotated[Uniform, Tag("uniform")] | Annotated[Normal, Tag("normal")],
    Discriminator(_kind_of, **_tag_errors("uniform(low, high), normal(mean, std)")),
]
Component = Annotated[
    Annotated[Finite, Tag("number")] | Annotated[Uniform, Tag("uniform")] | Annotated[Normal, Tag("normal")],
    Discriminator(_init_tag, **_tag_errors("a number, uniform(low, high), normal(mean, std)")),
]
InitValue = Annotated[
    Annotated[Finite, Tag("number")]
    | Annotated[list[Component], Tag("list")]
    | Annotated[Uniform, Tag("uniform")]
    | Annotated[Normal, Tag("normal")],
    Discriminator(_init_tag, **_tag_errors("a number, a list, uniform(low, high), normal(mean, std)")),
]


class TimeSpan(_Strict):
    kind: Literal["span"]
    t0: Finite
    t1: Finite
    step: PosFloat

    @model_validator(mode="after")
    def _order(self):
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
    return "list" if isinstance(v, list) else _kind_of(v)


TimeValue = Annotated[
    Annotated[TimeSpan, Tag("span")] | Annotated[list[Finite], Tag("list")],
    Discriminator(_time_tag, **_tag_errors("span(t0, t1, step = dt) or a list of times")),
]


class SolverSpec(_Strict):
    """A solver call: its name and options, handed to ``nodedsl.solvers.make_solver``."""

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
    inputs: dict[str, Finite | list[Finite]] = {}
    noise: NonNegFloat = 0.0
    seed: int = 0
    solver: SolverSpec | None = None
    _spans: dict = PrivateAttr(default_factory=dict)

    @field_validator("solver", mode="before")
    @classmethod
    def _solver(cls, v: Any) -> Any:
        return _as_call(v)

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
    """How windows start: from the data (``data``) or from trained estimates (``learned``)."""

    kind: Literal["data", "learned"]
    after: Annotated[int, Field(ge=0)] = 0


class Horizon(_Strict):
    """The shooting horizon: the whole window (``full``), or growing from ``start`` steps to the window over
    the first ``until`` fraction of the epochs (``grow``; sub-windows start at observed states)."""

    kind: Literal["full", "grow"]
    start: PosInt = 5
    until: Annotated[float, Field(gt=0, le=1)] = 0.5


class Checkpointing(_Strict):
    kind: Literal["checkpoint"]
    segments: PosInt = 4


class Adam(_Strict):
    kind: Literal["adam"]
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 0.0


class AdamW(_Strict):
    kind: Literal["adamw"]
    lr: PosFloat = 1e-3
    weight_decay: NonNegFloat = 1e-2


class LBFGS(_Strict):
    kind: Literal["lbfgs"]
    lr: PosFloat = 1.0
    max_iter: PosInt = 20
    history_size: PosInt = 100


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


class TransitionLikelihood(_Strict):
    """SDE models: the Euler-Maruyama likelihood of consecutive observations (see docs/stochastic.md)."""

    kind: Literal["transition_likelihood"]
    observation_noise: NonNegFloat = 0.0


class DistributionMatching(_Strict):
    """SDE models: simulated and observed ensembles matched at every observation time."""

    kind: Literal["distribution"]
    metric: Literal["energy", "mmd"] = "energy"
    samples: PosInt = 1


class EarlyStopping(_Strict):
    kind: Literal["early_stopping"]
    patience: PosInt = 20
    min_delta: NonNegFloat = 0.0


class AugmentedLagrangian(_Strict):
    kind: Literal["augmented_lagrangian"]
    mu: PosFloat = 1.0
    growth: Annotated[float, Field(ge=1, allow_inf_nan=False)] = 2.0
    mu_max: PosFloat = 1e4
    update_every: PosInt = 10
    tolerance: NonNegFloat = 1e-4
    samples: PosInt = 256


GradientValue = Annotated[
    Annotated[Literal["backprop"], Tag("backprop")]
    | Annotated[Literal["adjoint"], Tag("adjoint")]
    | Annotated[Checkpointing, Tag("checkpoint")],
    Discriminator(_kind_of, **_tag_errors("backprop, adjoint, checkpoint(segments = k)")),
]
OptimizerValue = Annotated[
    Annotated[Adam, Tag("adam")] | Annotated[AdamW, Tag("adamw")] | Annotated[LBFGS, Tag("lbfgs")],
    Discriminator(_kind_of, **_tag_errors("adam(lr, weight_decay), adamw(lr, weight_decay), lbfgs(lr, max_iter)")),
]
ScheduleValue = Annotated[
    Annotated[Cosine, Tag("cosine")]
    | Annotated[StepSchedule, Tag("step")]
    | Annotated[Exponential, Tag("exponential")],
    Discriminator(_kind_of, **_tag_errors("none, cosine, step(every, gamma), exponential(gamma)")),
]

ObjectiveValue = Annotated[
    Annotated[TransitionLikelihood, Tag("transition_likelihood")]
    | Annotated[DistributionMatching, Tag("distribution")],
    Discriminator(_kind_of, **_tag_errors("transition_likelihood(observation_noise), distribution(metric, samples)")),
]


class TrainConfig(_Strict):
    """A ``train MODEL`` block. ``data`` is a dataset name or a ``.csv``/``.npz`` path."""

    model: str
    data: str
    solver: SolverSpec = SolverSpec(kind="rk4")
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
    seed: int = 0
    loss: Literal["mse", "mae"] = "mse"
    output: str | None = None
    coupling: Literal["gradient", "least_squares"] = "gradient"
    checkpoint_every: PosInt = 10
    window_init: WindowInit = WindowInit(kind="data")
    horizon: Horizon = Horizon(kind="grow")
    objective: ObjectiveValue | None = None  # SDE models only
    _spans: dict = PrivateAttr(default_factory=dict)

    @field_validator(
        "solver", "optimizer", "schedule", "constraints", "window_init", "horizon", "objective", mode="before"
    )
    @classmethod
    def _calls(cls, v: Any) -> Any:
        return _as_call(v)

    @field_validator("gradient", mode="before")
    @classmethod
    def _gradient(cls, v: Any) -> Any:
        return {"kind": "checkpoint"} if v == "checkpoint" else v

    @field_validator("early_stopping", mode="before")
    @classmethod
    def _patience(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return {"kind": "early_stopping", "patience": v}
        return _as_call(v)

    @field_validator("data")
    @classmethod
    def _data(cls, v: str) -> str:
        if not v:
            raise PydanticCustomError("bad_value", "data must name a dataset or a .csv/.npz file")
        return v

    @property
    def data_is_file(self) -> bool:
        """True when ``data`` is a file path (``.csv``/``.npz``), not a dataset name."""
        return self.data.lower().endswith((".csv", ".npz")) or "/" in self.data

    def gradient_mode(self) -> str | tuple[str, int]:
        """The ``gradient`` argument of ``solve``."""
        g = self.gradient
        return ("checkpoint", g.segments) if isinstance(g, Checkpointing) else g


# ------------------------------------------------------------------ pydantic errors -> diagnostics
def _locate(loc: tuple, spans: dict, default: Span) -> tuple[Span, str]:
    """The span of the deepest known key along ``loc`` (union tags skipped) and the dotted key."""
    path: PathT = ()
    for comp in loc:
        if path + (comp,) in spans:
            path = path + (comp,)
    span = spans.get(path, default) if path else default
    return span, ".".join(str(p) for p in path)


def _fields_at(model_cls: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (sub)model that ``loc`` (without its last element) points into."""
    cls: Any = model_cls
    for comp in loc[:-1]:
        fields = getattr(cls, "model_fields", None)
        if fields and comp in fields:
            cls = _model_in(fields[comp].annotation)
        elif isinstance(comp, str):
            found = _find_tagged(cls, comp)
            if found is not None:
                cls = found
    fields = getattr(cls, "model_fields", None)
    hidden = {"kind"} | ({"model"} if cls is TrainConfig else set())
    return [f for f in fields if f not in hidden] if fields else []


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation (first one found), else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _find_tagged(annotation: Any, tag: str) -> Any:
    """The union member model whose ``kind`` literal is ``tag``."""
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            kind = arg.model_fields.get("kind")
            if kind is not None and tag in getattr(kind.annotation, "__args__", ()):
                return arg
        found = _find_tagged(arg, tag)
        if found is not None:
            return found
    return None


def _given(value: Any) -> str:
    if isinstance(value, dict) and "kind" in value:
        return f"{value['kind']}(...)"
    if isinstance(value, dict):
        return "a map { ... }"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'"
    return repr(value)


def _expected(err: dict) -> str:
    t, msg = err["type"], err["msg"]
    simple = {
        "int_type": "an integer",
        "int_from_float": "an integer",
        "float_type": "a number",
        "string_type": "a name or a string",
        "list_type": "a list [ ... ]",
        "dict_type": "a map { ... }",
        "model_type": "a call like name(key = value)",
        "model_attributes_type": "a call like name(key = value)",
        "finite_number": "a finite number",
        "literal_error": msg.replace("Input should be ", ""),
        "bool_type": "true or false",
    }
    if t in simple:
        return simple[t]
    if t in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ops = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
        bound = next(iter(err.get("ctx", {}).values()), "?")
        return f"a value {ops[t]} {bound}"
    return msg[0].lower() + msg[1:] if msg else "a different value"


def _to_diagnostics(
    exc: ValidationError, model_cls: type[BaseModel], spans: dict, block: Span, what: str
) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        span, key = _locate(loc, spans, block)
        t = err["type"]
        if t == "extra_forbidden":
            name = str(loc[-1])
            full = ".".join(str(p) for p in loc if p in (key.split(".") + [name]))
            valid = _fields_at(model_cls, loc)
            diag = Diagnostic(
                "unknown-key",
                f"unknown key '{full or name}' in {what}",
                span,
                tuple(n for n in (suggest(name, valid), "valid keys: " + ", ".join(valid) if valid else "") if n),
            )
        elif t == "missing":
            name = str(loc[-1])
            where = f"{key}(...)" if key else what
            diag = Diagnostic("missing-key", f"{where} needs the key '{name}'", span)
        elif t == "bad_kind":
            tag = _kind_of(err.get("input"))
            options = "one of " + err["msg"] if "," in err["msg"] else err["msg"]
            diag = Diagnostic(
                "bad-value",
                f"bad value for '{key}': expected {options}, got {_given(err['input'])}",
                span,
                tuple(n for n in (suggest(str(tag), _tags(options)),) if n),
            )
        elif t == "bad_value":
            diag = Diagnostic("bad-value", f"bad value for '{key}': {err['msg']}", span)
        else:
            diag = Diagnostic(
                "bad-value", f"bad value for '{key}': expected {_expected(err)}, got {_given(err['input'])}", span
            )
        ident = (diag.code, diag.span, diag.message)
        if ident not in seen:
            seen.add(ident)
            out.append(diag)
    return out


def _tags(options: str) -> list[str]:
    import re

    return re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:\(|,|$)", options)


def key_span(cfg: BaseModel, *path: str | int) -> Span:
    """Where a key of a validated config was written (the block's span when not written)."""
    spans = getattr(cfg, "_spans", {}) or {}
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in spans:
            return spans[tuple(path[:n])]
    return CMDLINE


def solver_args(spec: SolverSpec) -> tuple[str, dict]:
    """``(name, options)`` for ``make_solver``."""
    return spec.kind, dict(spec.options)


def _check_solver(spec: SolverSpec | None, spans: dict, path: PathT, default: Span) -> list[Diagnostic]:
    """Let the solver layer validate the options; a missing ``step`` is filled in from the data later."""
    if spec is None:
        return []
    try:
        from ..solvers import SolverError, make_solver
    except ImportError:  # pragma: no cover - the solver package is part of nodedsl
        return []
    try:
        make_solver(spec.kind, **spec.options)
    except SolverError as err:
        if err.option == "step" and "step" not in spec.options:
            try:
                make_solver(spec.kind, **spec.options, step=1.0)
                return []
            except SolverError as err2:
                err = err2
        span, _ = _locate(path + ((err.option,) if err.option and err.option in spec.options else ()), spans, default)
        code = "unknown-key" if err.message.startswith("unknown option") else "bad-value"
        return [Diagnostic(code, f"bad value for '{'.'.join(map(str, path))}': {err.message}", span)]
    except (TypeError, ValueError) as err:
        span, _ = _locate(path, spans, default)
        return [Diagnostic("bad-value", f"bad value for '{'.'.join(map(str, path))}': {err}", span)]
    return []


def _validate(
    entries: tuple[ast.Entry, ...], block: Span, model_cls: type[BaseModel], what: str, extra: dict | None = None
) -> tuple[Any, list[Diagnostic]]:
    spans: dict = {}
    diags: list[Diagnostic] = []
    plain = entries_to_plain(entries, (), spans, diags)
    plain = _normalize(plain, (), spans, diags)
    if extra:
        for k in extra:
            if k in plain:
                diags.append(
                    Diagnostic(
                        "unknown-key",
                        f"unknown key '{k}' in {what}",
                        spans[(k,)],
                        (f"the {k} is given in the block header",),
                    )
                )
        plain = {**plain, **extra}
    try:
        cfg = model_cls.model_validate(plain)
    except ValidationError as exc:
        diags = diags + _to_diagnostics(exc, model_cls, spans, block, what)
        # the block is validated as a whole: the solver's own options too, when its spec parses
        if isinstance(plain, dict) and plain.get("solver") is not None:
            solver_span = spans.get(("solver",))
            if not any(d.span == solver_span for d in diags):
                try:
                    spec = SolverSpec.model_validate(_as_call(plain["solver"]))
                except ValidationError:
                    spec = None
                diags += _check_solver(spec, spans, ("solver",), block)
        return None, diags
    cfg._spans = spans
    diags += _check_solver(cfg.solver, spans, ("solver",), block)
    if any(d.severity == "error" for d in diags):
        return None, diags
    return cfg, diags


def validate_dataset(ds: ast.Dataset) -> tuple[DatasetConfig | None, list[Diagnostic]]:
    """Validate a ``dataset`` block; the config is None when there is any error."""
    return _validate(ds.entries, ds.span, DatasetConfig, f"dataset '{ds.name}'")


def validate_train(tr: ast.Train) -> tuple[TrainConfig | None, list[Diagnostic]]:
    """Validate a ``train`` block; the config is None when there is any error."""
    cfg, diags = _validate(tr.entries, tr.span, TrainConfig, f"train block of '{tr.model}'", {"model": tr.model})
    if cfg is not None:
        data_entry = next((e for e in tr.entries if e.key == "data"), None)
        if data_entry is not None and isinstance(data_entry.value, ast.VString) and not cfg.data_is_file:
            diags.append(
                Diagnostic(
                    "bad-value",
                    f"bad value for 'data': a data file must end in .csv or .npz, got '{cfg.data}'",
                    data_entry.span,
                    ("a dataset is named without quotes: data = swings",),
                )
            )
            return None, diags
    return cfg, diags


# ------------------------------------------------------------------ command-line overrides
ALIASES = {"lr": "optimizer.lr", "step": "solver.step", "mu": "constraints.mu"}
_CALL_KEYS = ("solver", "optimizer", "schedule", "constraints", "window_init", "early_stopping", "horizon")


def _parse_scalar(text: str) -> Any:
    s = text.strip()
    for conv in (int, float):
        try:
            v = conv(s)
        except ValueError:
            continue
        return v
    if s.lower() in ("none", "null"):
        return None
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    return s


def _all_paths(data: Any, path: PathT = ()) -> dict:
    out: dict = {}
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "options" and path == ("solver",):
                out.update(_all_paths(v, path))
                continue
            out[path + (k,)] = CMDLINE
            out.update(_all_paths(v, path + (k,)))
    return out


def apply_overrides(config: BaseModel, overrides: dict[str, str]) -> BaseModel:
    """A copy of ``config`` with ``key=value`` overrides applied (dotted keys reach into calls).

    ``lr`` is short for ``optimizer.lr``; values are read as int, float, ``none`` or text, and a call
    given by name (``optimizer=adamw``) replaces the call with its defaults. Errors: ``bad-override``.
    """
    if not overrides:
        return config
    data = config.model_dump(mode="python")
    fields = [f for f in type(config).model_fields if f != "model"]
    diags: list[Diagnostic] = []
    for raw_key, raw_value in overrides.items():
        key = ALIASES.get(raw_key, raw_key)
        parts = key.split(".")
        top = parts[0]
        value = _parse_scalar(raw_value) if isinstance(raw_value, str) else raw_value
        if top not in fields:
            diags.append(
                Diagnostic(
                    "bad-override",
                    f"unknown key '{raw_key}'",
                    CMDLINE,
                    tuple(
                        n for n in (suggest(raw_key, fields + list(ALIASES)), "valid keys: " + ", ".join(fields)) if n
                    ),
                )
            )
            continue
        if len(parts) == 1:
            if isinstance(value, str) and top in _CALL_KEYS:
                value = {"kind": value, "options": {}} if top == "solver" else {"kind": value}
            data[top] = value
            continue
        if len(parts) != 2:
            diags.append(Diagnostic("bad-override", f"key '{raw_key}' is nested too deeply", CMDLINE))
            continue
        current = data.get(top)
        if top == "solver" and isinstance(current, dict):
            current["options"] = {**current.get("options", {}), parts[1]: value}
        elif isinstance(current, dict):
            current[parts[1]] = value
        else:
            diags.append(
                Diagnostic(
                    "bad-override",
                    f"cannot set '{raw_key}': '{top}' is {current!r}, not a call",
                    CMDLINE,
                    (f"set the whole value first, e.g. --set {top}=NAME",),
                )
            )
    if diags:
        raise NodeDslError(diags)
    try:
        new = type(config).model_validate(data)
    except ValidationError as exc:
        raise NodeDslError(
            [
                Diagnostic("bad-override", d.message.replace("bad value for", "bad override for"), CMDLINE, d.notes)
                for d in _to_diagnostics(exc, type(config), _all_paths(data), CMDLINE, "the overrides")
            ]
        ) from None
    new._spans = dict(getattr(config, "_spans", {}))
    solver_diags = _check_solver(getattr(new, "solver", None), {}, ("solver",), CMDLINE)
    if solver_diags:
        raise NodeDslError([Diagnostic("bad-override", d.message, CMDLINE) for d in solver_diags])
    return new
