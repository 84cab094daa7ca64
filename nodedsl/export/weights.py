"""Weights as safetensors and the JSON manifest every export writes; loading a model for inference from
them without pickle (``safetensors`` reads raw tensors; ``torch.load`` is never called here).

Example:
    >>> import nodedsl, tempfile, pathlib
    >>> prog = nodedsl.loads("model M { state x = 1\\n param k = 2 learn positive\\n der(x) = -k*x }")
    >>> model = prog.model("M")
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> save_safetensors(model, out / "model.safetensors")
    >>> load_weights_into(prog.model("M"), out / "model.safetensors").parameter_values()["k"]   # doctest: +ELLIPSIS
    2.0...
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ..core.diagnostics import NodeDslError, Span
from ..io.checkpoint import check_compatible

__all__ = ["FORMAT", "MANIFEST", "load_weights_into", "manifest", "save_safetensors"]

MANIFEST = "manifest.json"
FORMAT = "nodedsl-export/1"


def _file_hash(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def manifest(model, *, source: str, source_hash: str, solver: dict | None, fmt: str, files: dict) -> dict[str, Any]:
    """What an export holds, as plain JSON data: the model's names and sizes, its learned values, the
    ``.node`` source (path, file hash, model hash), the run's solver and the exported files' signatures."""
    nets = {
        name: {
            "in": spec.in_size,
            "out": spec.out,
            "hidden": list(spec.hidden),
            "activation": spec.activation,
            "output": spec.output,
        }
        for name, spec in model.system.nets.items()
    }
    params = []
    for name, _key, learn, *_, shape in model._param_meta:
        size = 1
        for s in shape:
            size *= s
        params.append({"name": name, "shape": list(shape), "size": size, "learned": learn is not None})
    return {
        "format": FORMAT,
        "export": fmt,
        "model": model.name,
        "states": list(model.state_names),
        "inputs": list(model.input_names),
        "outputs": list(model.output_names),
        "x0_default": model.x0_default.tolist(),
        "u_default": model.u_default.tolist(),
        "params": params,
        "learned_values": model.parameter_values(),
        "nets": nets,
        "dtype": str(model.x0_default.dtype).removeprefix("torch."),
        "source": source,
        "source_sha256": _file_hash(source),
        "source_hash": source_hash,
        "solver": solver,
        "files": files,
    }


def save_safetensors(model: torch.nn.Module, path: Path) -> None:
    """The model's ``state_dict`` (learned parameters as stored, i.e. before reparametrization; nets; known
    values; defaults) as one safetensors file. Views are copied: safetensors refuses shared storage."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "model": model.name})


def load_weights_into(model: torch.nn.Module, path: str | Path) -> torch.nn.Module:
    """Load a safetensors file written by :func:`save_safetensors` into a freshly compiled ``model``
    (``bad-checkpoint`` when unreadable, ``checkpoint-mismatch`` when written for another model)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    span = Span(str(path), 0, 0)
    if not path.is_file():
        raise NodeDslError.single("bad-checkpoint", f"no safetensors file at '{path}'", span)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NodeDslError.single(
            "bad-checkpoint", f"'{path}' is not a readable safetensors file: {first}", span
        ) from None
    check_compatible({"model_state": state}, model, path)
    model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in state.items()})
    return model
