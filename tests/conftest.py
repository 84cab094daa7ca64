"""Shared fixtures."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings


@pytest.fixture
def float64():
    """torch's default dtype is float64 during the test (models compiled in it are float64)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# Property tests draw the same examples on every run (CI and the README's command are repeatable:
# a submission cannot fail on a draw no one has seen). NODEDSL_HYPOTHESIS=explore draws new ones,
# which is how the properties look for bugs: run it before changing the compiler or the jet.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile(os.environ.get("NODEDSL_HYPOTHESIS", "repeatable"))

# Every check proves its models afresh in the suite (subprocesses inherit this): a proof marker left by
# an earlier test or run must not decide what a test sees. tests/test_torch_free.py turns it back on.
os.environ.setdefault("NODEDSL_NO_PROOF_CACHE", "1")
