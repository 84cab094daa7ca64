"""Pydantic validation errors -> located diagnostics (``unknown-key``, ``missing-key``, ``bad-value``).

Each error's location (a path of keys) is looked up in the spans recorded by
:func:`~nodedsl.frontend.config.values.to_plain`, so a diagnostic points at the key as written.

Example:
    >>> from pydantic import ValidationError
    >>> from nodedsl.core.diagnostics import Span
    >>> from nodedsl.frontend.config.schema import TrainConfig
    >>> try:
    ...     TrainConfig.model_validate({"model": "M", "data": "d", "epoch": 3})
    ... except ValidationError as exc:
    ...     [(d.code, d.notes[0]) for d in to_diagnostics(exc, TrainConfig, {}, Span("f", 0, 0), "train")]
    [('unknown-key', "did you mean 'epochs'?")]
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from ...core.diagnostics import Diagnostic, Span, suggest
from .schema import TrainConfig, kind_of
from .values import CMDLINE, PathT


def locate(loc: tuple, spans: dict, default: Span) -> tuple[Span, str]:
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
    ann: Any = model_cls  # the annotation cls came from: a union's members are found by their tag
    for comp in loc[:-1]:
        fields = getattr(cls, "model_fields", None)
        if fields and comp in fields:
            ann = fields[comp].annotation
            cls = _model_in(ann)
        elif isinstance(comp, str):
            found = _find_tagged(ann, comp)
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


def _expected(err: Any) -> str:
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


def to_diagnostics(
    exc: ValidationError, model_cls: type[BaseModel], spans: dict, block: Span, what: str
) -> list[Diagnostic]:
    """One diagnostic per distinct pydantic error of validating ``model_cls``, located by ``spans``."""
    out: list[Diagnostic] = []
    seen: set[tuple] = set()
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        span, key = locate(loc, spans, block)
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
            tag = kind_of(err.get("input"))
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
    return re.findall(r"([A-Za-z_][A-Za-z0-9_]*)(?:\(|,|$)", options)


def key_span(cfg: BaseModel, *path: str | int) -> Span:
    """Where a key of a validated config was written (the block's span when not written)."""
    spans = getattr(cfg, "_spans", {}) or {}
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in spans:
            return spans[tuple(path[:n])]
    return CMDLINE
