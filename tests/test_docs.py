"""The examples in docs/python-api.md run as written (docs stay true to the code)."""

from __future__ import annotations

import doctest
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def test_python_api_examples_run(monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples load files relative to the repository root
    dtype = torch.get_default_dtype()
    try:
        result = doctest.testfile(
            str(ROOT / "docs" / "python-api.md"),
            module_relative=False,
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        )
    finally:
        torch.set_default_dtype(dtype)
    assert result.attempted > 20
    assert result.failed == 0
