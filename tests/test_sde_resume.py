"""``train --resume`` of SDE objectives (issue 13): a run interrupted after 2 of 4 epochs and resumed ends
with exactly the parameters, losses and checkpoint of the uninterrupted run."""

from __future__ import annotations

import pytest
import torch

import nodedsl
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.train import run_training, select_train

SOURCE = """
model OU {
    state x = 0.0
    param theta = 1.0 learn positive
    param mu = 0.0 learn
    net f(x) -> 1 { hidden = [8], activation = tanh }
    param sigma = 0.1 learn positive
    der(x) = theta * (mu - x) + 0.1 * f(x)
    noise(x) = sigma
    constraint small: f(0) == 0
}
model Truth {
    state x = 0.0
    param theta = 2.0
    param mu = 0.5
    param sigma = 0.3
    der(x) = theta * (mu - x)
    noise(x) = sigma
}
dataset paths {
    model = Truth
    trajectories = 12
    time = span(0, 1, step = 0.05)
    initial = { x = uniform(-1, 2) }
    solver = euler_maruyama(step = 0.01)
    seed = 0
}
train OU {
    data = paths
    OBJECTIVE
    solver = euler_maruyama(step = 0.05)
    epochs = 4
    batch = 4
    validation = 0.25
    optimizer = adam(lr = 3e-2)
    constraints = augmented_lagrangian(mu = 1, update_every = 1)
    checkpoint_every = 1
    seed = 0
}
"""


class _Stop(Exception):
    pass


@pytest.mark.parametrize(
    "objective", ["objective = transition_likelihood", "objective = distribution(metric = energy, samples = 2)"]
)
def test_resumed_sde_run_equals_the_uninterrupted_one(tmp_path, objective):
    prog = nodedsl.loads(SOURCE.replace("OBJECTIVE", objective), "<sde-resume>")
    block = select_train(prog)
    straight = run_training(prog, block, run_dir=tmp_path / "a", plots=False)

    def stop_after_two(epoch, *_):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(prog, block, run_dir=tmp_path / "b", progress=stop_after_two, plots=False)
    saved = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert saved["epoch"] == 2 and len(saved["history"]) == 2
    resumed = run_training(prog, block, run_dir=tmp_path / "b", resume=True, plots=False)
    assert resumed.epochs_run == 4 and straight.epochs_run == 4
    assert resumed.parameters == straight.parameters  # bit for bit: same batches, same noise, same steps
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in straight.history]
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in straight.history]
    assert resumed.multipliers == straight.multipliers
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["model_state"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=False)["model_state"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_objective_is_a_mismatch(tmp_path):
    first = nodedsl.loads(SOURCE.replace("OBJECTIVE", "objective = transition_likelihood"), "<sde-resume>")
    run_training(first, select_train(first), run_dir=tmp_path, overrides={"epochs": "1"}, plots=False)
    other = nodedsl.loads(SOURCE.replace("OBJECTIVE", "objective = distribution(metric = energy)"), "<sde-resume>")
    with pytest.raises(NodeDslError) as err:
        run_training(other, select_train(other), run_dir=tmp_path, resume=True)
    assert err.value.diagnostics[0].code == "checkpoint-mismatch"
