"""Run directories and run files: unusable paths, a full disk, damaged files, locking, refuse-before-write."""

from __future__ import annotations

import argparse
import errno
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nodedsl
from nodedsl import NodeDslError
from nodedsl.io.checkpoint import check_training_state, load_checkpoint, save_checkpoint
from nodedsl.io.runlock import RunLock, prepare_run_dir
from nodedsl.train.run import plot_run, run_training

TINY = """
model Decay {
    state x = 1.0
    param k = 0.5 learn positive
    der(x) = -k * x
}

model Truth {
    state x = 1.0
    param k = 1.3
    der(x) = -k * x
}

dataset d {
    model = Truth
    trajectories = 3
    time = span(0, 1, step = 0.2)
    initial = { x = uniform(0.5, 1.5) }
    seed = 1
}

train Decay {
    data = d
    solver = rk4(step = 0.2)
    window = 3
    epochs = 2
    optimizer = adam(lr = 5e-2)
    seed = 0
}
"""


def _codes(fn) -> list[str]:
    with pytest.raises(NodeDslError) as info:
        fn()
    return [d.code for d in info.value.diagnostics]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One trained run (shared: training is the slow part)."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.node").write_text(TINY)
    (root / "other.node").write_text(TINY.replace("Decay", "Other"))
    (root / "edited.node").write_text(
        TINY.replace("der(x) = -k * x\n}\n\nmodel Truth", "der(x) = -k * x * 1\n}\n\nmodel Truth", 1)
    )
    prog = nodedsl.load(root / "tiny.node")
    run_training(prog, prog.module.trains[0], run_dir=root / "run")
    return root


def _snapshot(run) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file() and p.name != ".lock"}


@pytest.mark.parametrize("other", ["other.node", "edited.node"])
def test_resume_with_another_model_changes_nothing(trained, other):
    before = _snapshot(trained / "run")
    prog = nodedsl.load(trained / other)
    codes = _codes(lambda: run_training(prog, prog.module.trains[0], run_dir=trained / "run", resume=True))
    assert codes == ["checkpoint-mismatch"]
    assert _snapshot(trained / "run") == before  # config.json included: refused before writing


def test_every_run_file_names_one_run(trained):
    run = trained / "run"
    ids = {json.loads((run / n).read_text())["run_id"] for n in ("config.json", "metrics.json")}
    ids |= {load_checkpoint(run / n)["run_id"] for n in ("checkpoint.pt", "model.pt")}
    with np.load(run / "predictions.npz") as z:
        ids.add(str(z["run_id"]))
    assert len(ids) == 1


def test_a_locked_run_directory_is_refused(trained):
    prog = nodedsl.load(trained / "tiny.node")
    before = _snapshot(trained / "run")
    with RunLock(trained / "run"):
        codes = _codes(lambda: run_training(prog, prog.module.trains[0], run_dir=trained / "run", resume=True))
    assert codes == ["run-locked"]
    assert _snapshot(trained / "run") == before


def test_unusable_run_paths(tmp_path):
    (tmp_path / "file").write_text("x")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    assert _codes(lambda: prepare_run_dir(tmp_path / "file")) == ["io-error"]
    assert _codes(lambda: prepare_run_dir(tmp_path / "dangling")) == ["io-error"]
    assert _codes(lambda: prepare_run_dir(tmp_path / "file" / "sub")) == ["io-error"]
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        assert _codes(lambda: prepare_run_dir(ro)) == ["io-error"]


def test_full_disk_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"model_state": {"w": torch.ones(3)}, "epoch": 1})
    before = path.read_bytes()

    def full(obj, fh, *args, **kwargs):
        fh.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError):
        save_checkpoint(path, {"model_state": {"w": torch.zeros(3)}, "epoch": 2})
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_full_disk_during_training_is_an_io_error(trained, monkeypatch):
    import nodedsl.io.checkpoint as ck

    def full(path, write, *, binary=False):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(ck, "atomic_write", full)
    prog = nodedsl.load(trained / "tiny.node")
    before = (trained / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(NodeDslError) as info:
        run_training(prog, prog.module.trains[0], run_dir=trained / "run", resume=True, overrides={"epochs": "3"})
    d = info.value.diagnostics[0]
    assert d.code == "io-error" and "disk is full" in d.notes[0]
    assert (trained / "run" / "checkpoint.pt").read_bytes() == before


DAMAGED = {
    "no epoch": {"model_state": {"w": torch.ones(1)}},
    "model_state a list": {"model_state": [1, 2]},
    "model_state of strings": {"model_state": {"w": "x"}},
    "negative epoch": {"model_state": {}, "epoch": -1, "rng": torch.zeros(5, dtype=torch.uint8)},
    "rng a float": {"model_state": {}, "epoch": 1, "rng": 1.0},
    "history a dict": {"model_state": {}, "epoch": 1, "rng": torch.zeros(5, dtype=torch.uint8), "history": {}},
}


@pytest.mark.parametrize("name", sorted(DAMAGED))
def test_damaged_checkpoints_are_bad_checkpoint(tmp_path, name):
    path = tmp_path / "c.pt"
    torch.save(DAMAGED[name], path)
    assert _codes(lambda: check_training_state(load_checkpoint(path), path)) == ["bad-checkpoint"]


def test_pickled_objects_are_refused_without_unsafe_advice(tmp_path):
    path = tmp_path / "c.pt"
    torch.save({"model_state": {}, "evil": argparse.Namespace(a=1)}, path)
    with pytest.raises(NodeDslError) as info:
        load_checkpoint(path)
    text = str(info.value.diagnostics[0])
    assert info.value.diagnostics[0].code == "bad-checkpoint"
    assert "weights_only" not in text and "weights-only" in text


@pytest.mark.parametrize(
    "name, content",
    [
        ("metrics.json", "[1, 2]"),
        ("metrics.json", '{"epochs": 5}'),
        ("metrics.json", '{"epochs": [{"epoch": "one"}]}'),
        ("metrics.json", "{not json"),
        ("predictions.npz", b"t,y\n0,1\n"),
        ("predictions.npz", None),
    ],
)
def test_damaged_run_files_are_bad_checkpoint(tmp_path, name, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text('{"epochs": []}')
    if content is None:
        np.savez(run / name, t=np.zeros((1, 3)))  # no y, yhat, names
    elif isinstance(content, bytes):
        (run / name).write_bytes(content)
    else:
        (run / name).write_text(content)
    assert _codes(lambda: plot_run(run)) == ["bad-checkpoint"]


def test_config_json_of_the_wrong_type_is_bad_checkpoint(trained, tmp_path):
    import shutil

    from nodedsl.train.run import evaluate

    run = tmp_path / "copy"
    shutil.copytree(trained / "run", run)
    prog = nodedsl.load(trained / "tiny.node")
    for content in ("[]", '{"model": "Decay", "train": 3}', '"text"'):
        (run / "config.json").write_text(content)
        assert _codes(lambda: evaluate(prog, None, run)) == ["bad-checkpoint"], content


_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.builds(torch.zeros, st.integers(0, 3)),
    st.builds(lambda n: torch.zeros(n, dtype=torch.uint8), st.integers(0, 3)),
)
_KEYS = st.sampled_from(["model_state", "epoch", "rng", "history", "optimizer", "al", "x0_train", "best", "w"])


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(_KEYS, st.one_of(_LEAF, st.dictionaries(st.text(max_size=3), _LEAF, max_size=3)), max_size=6))
def test_fuzzed_checkpoints_give_diagnostics(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("fuzz") / "c.pt"
    torch.save(state, path)
    try:
        check_training_state(load_checkpoint(path), path)
    except NodeDslError as err:
        assert err.diagnostics[0].code in ("bad-checkpoint", "checkpoint-mismatch")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_fuzzed_checkpoint_bytes_give_diagnostics(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzzb") / "c.pt"
    path.write_bytes(data)
    with pytest.raises(NodeDslError):
        load_checkpoint(path)
