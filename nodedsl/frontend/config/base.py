"""Shared pieces of the config models: numeric field types and call helpers.

Example:
    >>> kind_of({"kind": "adam", "lr": 0.1}), as_call("cosine")
    ('adam', {'kind': 'cosine'})
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
PosInt = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, lt=2**63)]  # what torch.Generator.manual_seed accepts
_DEVICE = re.compile(r"cpu|auto|cuda(:[0-9]+)?")


def _device(v: str) -> str:
    if not _DEVICE.fullmatch(v):
        raise PydanticCustomError("bad_value", "device must be cpu, cuda, cuda:N or auto, got '{v}'", {"v": v})
    return v


DeviceName = Annotated[str, AfterValidator(_device)]  # checked here; availability is checked when training starts


def as_call(v: Any) -> Any:
    """A bare name (``adam``, ``cosine``) is the call with no arguments."""
    return {"kind": v} if isinstance(v, str) else v


def _tag_errors(kinds: str) -> dict:
    return dict(custom_error_type="bad_kind", custom_error_message=kinds)


def kind_of(v: Any) -> Any:
    if isinstance(v, BaseModel):
        return getattr(v, "kind", None)
    return v.get("kind") if isinstance(v, dict) else (v if isinstance(v, str) else None)
