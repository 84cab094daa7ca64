"""`sub NAME = MODEL(...) weights "run"`: a composite takes a sub-model's values from a stand-alone run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import nodedsl
from nodedsl.io.checkpoint import FORMAT, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent

COMPOSITE = """\
import "msd.node"
import "two_masses.node"

model Pair : port_hamiltonian {
    sub left   = MassSpringDamper(m = 1.0) weights "runs/msd"
    sub right  = MassSpringDamper(m = 2.0) weights "runs/msd"
    sub spring = Spring(k = 1.5)
    couple [left.force, right.force, spring.ends] C = [[0, 0, -1, 0], [0, 0, 0, -1], [1, 0, 0, 0], [0, 1, 0, 0]]
}
"""


def _trained_run(tmp_path: Path, model_name: str = "MassSpringDamper", file: str = "msd.node") -> dict:
    prog = nodedsl.load(tmp_path / file)
    torch.manual_seed(3)
    model = prog.model(model_name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # "trained": anything but the fresh initialization
    state = {
        "format": FORMAT,
        "model": model_name,
        "source_hash": prog.source_hash(model_name),
        "model_state": model.state_dict(),
    }
    save_checkpoint(tmp_path / "runs" / "msd" / "model.pt", state)
    return model.state_dict()


@pytest.fixture
def files(tmp_path):
    for name in ("msd.node", "two_masses.node", "pendulum.node"):
        shutil.copy(ROOT / "examples" / name, tmp_path / name)
    (tmp_path / "pair.node").write_text(COMPOSITE)
    return tmp_path


def test_composite_takes_trained_sub_weights(files):
    trained = _trained_run(files)
    pair = nodedsl.load(files / "pair.node").model("Pair")
    state = pair.state_dict()
    for side in ("left", "right"):
        for key, value in trained.items():
            if key.startswith("nets."):
                assert torch.equal(state[f"nets.{side}__{key[5:]}"], value), key
    # the composite behaves like two trained masses joined by a spring: field of the left mass alone
    solo = nodedsl.load(files / "msd.node").model("MassSpringDamper")
    solo.load_state_dict(trained)
    x = torch.randn(5, 5)
    x[:, 4] = 0.0  # no stretch: the spring exerts no force
    u = torch.zeros(5, 1)
    assert torch.allclose(pair(0.0, x)[:, :2], solo.field(0.0, x[:, :2], u), atol=1e-6)


def test_weights_of_another_model_are_refused(files):
    prog = nodedsl.load(files / "pendulum.node")
    model = prog.model("Pendulum")
    save_checkpoint(
        files / "runs" / "msd" / "model.pt",
        {
            "format": FORMAT,
            "model": "Pendulum",
            "source_hash": prog.source_hash("Pendulum"),
            "model_state": model.state_dict(),
        },
    )
    with pytest.raises(nodedsl.NodeDslError) as err:
        nodedsl.load(files / "pair.node").model("Pair")
    d = err.value.diagnostics[0]
    assert d.code == "checkpoint-mismatch" and "Pendulum" in d.message
    assert d.span.file.endswith("pair.node") and d.span.line == 5


def test_missing_or_corrupt_weights_are_located_errors(files):
    with pytest.raises(nodedsl.NodeDslError) as err:
        nodedsl.load(files / "pair.node").model("Pair")
    assert err.value.diagnostics[0].code == "bad-checkpoint" and err.value.diagnostics[0].span.line == 5
    (files / "runs" / "msd").mkdir(parents=True)
    (files / "runs" / "msd" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(nodedsl.NodeDslError) as err:
        nodedsl.load(files / "pair.node").model("Pair")
    assert err.value.diagnostics[0].code == "bad-checkpoint"
