"""``scale = auto`` nets: their fixed input and output scaling layers set from the training data before
training, so the trained layers see numbers of order one (a Lorenz-63 black box sees states of tens).

The input layer standardizes each input component (``(v - mean) / std`` over the net's inputs at every
training sample: the inputs are captured while the model's field is evaluated on the data); the output
layer multiplies by the standard deviation of the data's time derivatives (finite differences), per
output when the net has one output per observed quantity, else their root mean square. The layers are
part of the model's ``state_dict``, so ``model.pt`` stores them and every loaded run uses them. An
explicit ``input_scale``/``output_scale`` keeps its value.

Example:
    >>> set_auto_scales(model, train_trajectories)   # doctest: +SKIP
    {'f': {'input_mean': [...], 'input_std': [...], 'output_scale': [...]}}
"""

from __future__ import annotations

import torch

from ..data.loading import Trajectories
from .rollout import initial_states, observation_map

__all__ = ["set_auto_scales"]


def set_auto_scales(model, traj: Trajectories) -> dict[str, dict[str, list[float]]]:
    """Set the scaling layers of every ``scale = auto`` net of ``model`` from ``traj``; return them."""
    system = getattr(model, "system", None)
    auto = {n: s for n, s in (system.nets.items() if system is not None else ()) if s.scale_auto}
    if not auto:
        return {}
    mask = torch.arange(traj.t.shape[1])[None, :] < traj.lengths[:, None]
    dtype = model.x0_default.dtype
    y = traj.y[mask].to(dtype)
    x = initial_states(model, y, observation_map(model))
    u = traj.u[mask].to(dtype)
    t = traj.t[mask].to(dtype)
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in auto}
    hooks = [
        model.nets[n.replace(".", "__")].register_forward_pre_hook(
            lambda _m, args, n=n: seen[n].append(args[0].detach().reshape(-1, args[0].shape[-1]))
        )
        for n in auto
    ]
    try:
        with torch.no_grad():
            model.field(t, x, u)
    finally:
        for h in hooks:
            h.remove()
    rate = _derivative_std(traj).to(dtype)
    out: dict[str, dict[str, list[float]]] = {}
    for name, spec in auto.items():
        net = model.nets[name.replace(".", "__")]
        values = torch.cat(seen[name]) if seen[name] else torch.zeros(1, spec.in_size, dtype=dtype)
        mean, std = values.mean(0), values.std(0) if len(values) > 1 else torch.ones(spec.in_size, dtype=dtype)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        scale = rate if len(rate) == spec.out else rate.pow(2).mean().sqrt().expand(spec.out)
        scale = torch.where(scale > 1e-8, scale, torch.ones_like(scale))
        with torch.no_grad():
            if not spec.input_scale:
                net[0].weight.copy_(torch.diag(1 / std))
                net[0].bias.copy_(-mean / std)
            if not spec.output_scale:
                net[-1].weight.copy_(torch.diag(scale))
        out[name] = {"input_mean": mean.tolist(), "input_std": std.tolist(), "output_scale": scale.tolist()}
    return out


def _derivative_std(traj: Trajectories) -> torch.Tensor:
    """Per output: the standard deviation of the finite-difference time derivative over all samples."""
    dt = (traj.t[:, 1:] - traj.t[:, :-1]).clamp_min(1e-12)[..., None]
    rates = (traj.y[:, 1:] - traj.y[:, :-1]).to(torch.float64) / dt
    valid = torch.arange(1, traj.t.shape[1])[None, :] < traj.lengths[:, None]
    flat = rates[valid]
    return flat.std(0) if len(flat) > 1 else torch.ones(traj.y.shape[-1], dtype=torch.float64)
