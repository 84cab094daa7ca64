"""Safe NPZ reads: a zip of ``.npy`` arrays, each header checked before its array is allocated.

``np.load`` trusts a member's header: a 200-byte file that claims 10^12 float64 elements asks for
8 TB. :func:`read_npz` reads each header first (shape, dtype), refuses object arrays (pickles) and
any array whose claimed size exceeds the ``data-bytes`` limit, and only then reads the array.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.npz")
    >>> np.savez(p, t=np.arange(3.0))
    >>> read_npz(p)["t"].tolist()
    [0.0, 1.0, 2.0]
    >>> _ = open(p, "w").write("t,x\\n0,1\\n")
    >>> try:
    ...     read_npz(p)
    ... except NodeDslError as err:
    ...     err.diagnostics[0].message.endswith("is not an NPZ (zip) file")
    True
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from ..core.diagnostics import NodeDslError, Span
from ..core.limits import limit, over_limit
from .files import check_regular

__all__ = ["read_npz"]


def _header(fh, version: tuple[int, int]) -> tuple:
    """(shape, fortran_order, dtype) from a member's header, without reading its data."""
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    return np.lib.format._read_array_header(fh, version)  # 3.0: no public reader


def read_npz(path: str | Path, code: str = "data-error") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path``; diagnostics with ``code`` for anything unusable."""
    file = str(path)
    span = Span(file, 0, 0)
    check_regular(path, span, "data file")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            zip_start = fh.read(2) == b"PK"
        if zip_start:  # a zip whose end (the central directory) is missing
            raise NodeDslError.single(code, f"cannot read '{file}': a truncated or corrupt NPZ (zip) file", span)
        raise NodeDslError.single(code, f"'{file}' is not an NPZ (zip) file", span)
    cap = limit("data-bytes")
    out: dict[str, np.ndarray] = {}
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                with zf.open(info) as fh:
                    version = np.lib.format.read_magic(fh)
                    shape, _, dtype = _header(fh, version)
                    if dtype.hasobject:
                        raise NodeDslError.single(
                            code,
                            f"'{file}': array '{name}' is a ragged or object array (Python objects are refused: "
                            "no pickles)",
                            span,
                            "trajectories of different lengths: pad them into one array, or store them as CSV",
                        )
                    total += math.prod(shape) * dtype.itemsize
                    if total > cap:
                        raise NodeDslError([over_limit("data-bytes", total, f"'{file}' (array '{name}')", span)])
                with zf.open(info) as fh:
                    out[name] = np.lib.format.read_array(fh, allow_pickle=False)
    except NodeDslError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, KeyError, RuntimeError) as exc:
        raise NodeDslError.single(code, f"cannot read '{file}' (corrupt NPZ): {str(exc)[:200]}", span) from None
    return out
