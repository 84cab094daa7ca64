"""Training speed against the peers (issue 19): nodedsl's whole-step fast path vs diffrax vs torch + torchdiffeq.

Not a test: run it by hand and paste the table into docs/benchmarks.md. Needs the ``bench`` extra
(``pip install -e .[bench]``: jax, jaxlib, diffrax, equinox, optax).

    python benchmarks/peer_training.py                        # 4 models, 200 epochs
    python benchmarks/peer_training.py --models pendulum --epochs 20

Every framework trains the same model from the same initial weights on the same windows (float32):
10 RK4 steps of 0.05 per window, minibatches of 64 windows reshuffled each epoch, Adam (lr 3e-3), MSE on
every state, one validation pass per epoch. Models:

* ``pendulum``: gravity known, ``L`` learned (positive), friction a 32x32 tanh net;
* ``blackbox``: a 2-64-64-2 tanh MLP field;
* ``msd``: examples/msd.node's port-Hamiltonian ``MassSpringDamper`` (the potential V a net inside H, so
  the field takes grad V by autograd; JAX: ``jax.grad``);
* ``chain``: 10 masses and 9 springs (29 states, benchmarks/vector_field.py's chain), springs learned.

Runners: ``nodedsl native`` (``fit`` with ``compile = native``: generated C, gcc), ``nodedsl fast`` (``fit``
with ``compile = whole_step``, inductor), ``nodedsl eager`` (``fit``, ``compile = off``), ``torchdiffeq`` (a plain loop calling ``odeint(method="rk4")`` on the same compiled
nodedsl field, which runs at hand-written speed: see "Vector field"), ``diffrax`` (an equinox-free field
function of a parameter pytree, ``diffeqsolve`` with RK4 as an explicit Butcher tableau and a constant step,
the loss, ``jax.grad`` and the optax update in one ``jax.jit``). Epochs of the runners are interleaved
(one epoch of each in turn), one thread each (``torch.set_num_threads(1)``, XLA single-threaded); the
machine is shared. Reported: the first epoch (it includes the compile), the steady-state epoch (median
of epochs 3..end), the total for all epochs, and the time (compile included) to reach the worst of the
runners' final validation losses.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

DT, WINDOW, BATCH, LR = 0.05, 10, 64, 3e-3

# the damped pendulum both pendulum models learn
PENDULUM_TRUTH = """
model Truth { state theta = 1
 state omega = 0
 der(theta) = omega
 der(omega) = -9.81 / 1.3 * sin(theta) - 0.4 * omega }
"""

SOURCES = {
    "pendulum": PENDULUM_TRUTH
    + """
model Hybrid { state theta = 1
 state omega = 0
 param L = 1.0 learn positive
 net friction(omega) -> 1 { hidden = [32, 32], activation = tanh }
 der(theta) = omega
 der(omega) = -9.81 / L * sin(theta) - friction(omega) }
""",
    "blackbox": PENDULUM_TRUTH
    + """
model Hybrid { state theta = 1
 state omega = 0
 net f(theta, omega) -> 2 { hidden = [64, 64], activation = tanh }
 der(theta) = f(theta, omega)[0]
 der(omega) = f(theta, omega)[1] }
""",
}


def sources(name: str) -> tuple[str, str, str, str]:
    """(text, truth model, trained model, initial-state ranges) of benchmark model ``name``."""
    if name in SOURCES:
        return SOURCES[name], "Truth", "Hybrid", "theta = uniform(-2, 2), omega = uniform(-1, 1)"
    if name == "msd":
        text = (ROOT / "examples" / "msd.node").read_text().split("dataset")[0]
        return text, "MassSpringDamperTruth", "MassSpringDamper", "q = uniform(-1, 1), p = uniform(-1, 1)"
    import re

    from vector_field import MSD_TRUTH, chain_source

    truth = chain_source(10).replace("model Chain10", "model Chain10Truth")
    spring = (
        "model LSpring : port_hamiltonian {\n state stretch = 0.0\n param k = 1.0 learn positive\n"
        " hamiltonian = k * stretch^2 / 2\n J = [[0]]\n port ends { G = [[-1, 1]] }\n}\n"
    )
    text = truth + spring + re.sub(r"Spring\(k = [^)]*\)", "LSpring()", chain_source(10)[len(MSD_TRUTH) :])
    ranges = ", ".join(f"m{i}.q = uniform(-1, 1)" for i in range(10))
    return text, "Chain10Truth", "Chain10", ranges


def windows(name: str):
    """Training and validation windows, simulated from the truth (nodedsl's data pipeline)."""
    import nodedsl
    from nodedsl.data.loading import make_windows, split_by_trajectory
    from nodedsl.data.synth import generate
    from nodedsl.frontend.config import validate_dataset
    from nodedsl.frontend.parse import parse_source

    text, truth, model, ranges = sources(name)
    ds = f"dataset d {{ model = {truth}\n trajectories = 32\n time = span(0, 4, step = {DT})\n initial = {{ {ranges} }}\n seed = 0 }}"
    cfg, diags = validate_dataset(parse_source(ds, "d.node").datasets[0])
    assert not diags, diags
    traj = generate(nodedsl.loads(text).model(truth), cfg)
    tr, va = split_by_trajectory(traj, 0.2, 0)
    return text, model, make_windows(tr, WINDOW), make_windows(va, WINDOW)


# ------------------------------------------------------------------------------------------- runners
def nodedsl_runner(text, model_name, wt, wv, epochs, compile_mode):
    """``fit`` one epoch at a time (its state carried over by ``resume_from``-free repeated runs is not
    possible, so a generator around the trainer's own loop: each ``next`` runs one epoch)."""
    import nodedsl
    from nodedsl.frontend.config import validate_train
    from nodedsl.frontend.parse import parse_source
    from nodedsl.train.distributed import Shard
    from nodedsl.train.loop import _Trainer

    torch.manual_seed(0)
    model = nodedsl.loads(text).model(model_name)
    body = (
        f"train {model_name} {{\n data = d\n solver = rk4(step = {DT})\n window = {WINDOW}\n batch = {BATCH}\n"
        f" epochs = {epochs}\n optimizer = adam(lr = {LR})\n horizon = full\n compile = {compile_mode}\n"
        f" checkpoint_every = {epochs}\n}}"
    )
    cfg, diags = validate_train(parse_source(body, "t.node").trains[0])
    assert not diags, diags
    torch.set_num_threads(1)
    trainer = _Trainer(model, wt, wv, cfg, None, None, "", Shard(0, 1, torch.device("cpu")))
    trainer.cfg = cfg.model_copy(update={"epochs": 1})
    for _ in range(epochs):
        trainer.cfg = cfg.model_copy(update={"epochs": trainer.epoch + 1})
        trainer.run()
        yield trainer.history[-1]["val_loss"], dict(trainer.compile_info)


def torchdiffeq_runner(text, model_name, wt, wv, epochs):
    from torchdiffeq import odeint

    import nodedsl

    torch.manual_seed(0)
    model = nodedsl.loads(text).model(model_name)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)
    gen = torch.Generator().manual_seed(0)
    grid = wt.t[0] - wt.t[0, 0]
    Y, Yv = wt.y, wv.y

    def field(t, x):
        return model.field(t, x)

    def loss_of(y):
        pred = odeint(field, y[:, 0], grid, method="rk4", options={"step_size": DT}).transpose(0, 1)
        return (pred - y).pow(2).mean()

    for _ in range(epochs):
        torch.set_num_threads(1)
        perm = torch.randperm(len(Y), generator=gen)
        for i in range(0, len(Y), BATCH):
            opt.zero_grad(set_to_none=True)
            loss = loss_of(Y[perm[i : i + BATCH]])
            loss.backward()
            opt.step()
        with torch.no_grad():
            val = float(loss_of(Yv))
        yield val, {}


def diffrax_runner(text, model_name, wt, wv, epochs, name):
    import diffrax
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import nodedsl

    torch.manual_seed(0)
    model = nodedsl.loads(text).model(model_name)  # the same initial weights as the torch runners
    params, field = jax_model(name, model, jnp)
    x = torch.randn(4, len(model.state_names))
    ref = model.field(torch.tensor(0.0), x).detach().numpy()
    got = np.stack([np.asarray(field(params, jnp.asarray(r))) for r in x.numpy()])
    assert np.allclose(ref, got, rtol=1e-4, atol=1e-5), (name, ref, got)  # the same model, the same weights

    class RK4(diffrax.AbstractERK):
        tableau = diffrax.ButcherTableau(
            c=np.array([0.5, 0.5, 1.0]),
            b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
            b_error=np.zeros(4),
            a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
        )
        interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

        def order(self, terms):
            return 4

    grid_np = (wt.t[0] - wt.t[0, 0]).numpy()
    grid, t_end = jnp.asarray(grid_np), float(grid_np[-1])
    term = diffrax.ODETerm(lambda t, y, p: field(p, y))

    def rollout(p, x0):
        sol = diffrax.diffeqsolve(
            term, RK4(), 0.0, t_end, DT, x0, args=p, saveat=diffrax.SaveAt(ts=grid), max_steps=WINDOW + 2
        )
        return sol.ys

    def loss_of(p, y):
        return jnp.mean((jax.vmap(rollout, in_axes=(None, 0))(p, y[:, 0]) - y) ** 2)

    opt = optax.adam(LR)

    @jax.jit
    def step(p, state, y):
        loss, grads = jax.value_and_grad(loss_of)(p, y)
        updates, state = opt.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    val_loss = jax.jit(loss_of)
    state = opt.init(params)
    Y, Yv = jnp.asarray(wt.y.numpy()), jnp.asarray(wv.y.numpy())
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = jnp.asarray(torch.randperm(len(Y), generator=gen).numpy())
        for i in range(0, len(Y), BATCH):
            params, state, _ = step(params, state, Y[perm[i : i + BATCH]])
        val = float(val_loss(params, Yv))
        yield val, {}


def _mlp(seq, jnp):
    return [
        (jnp.asarray(m.weight.detach().numpy()), jnp.asarray(m.bias.detach().numpy()))
        for m in seq
        if hasattr(m, "weight")
    ]


def _apply(layers, x, jnp, out=None):
    for i, (w, b) in enumerate(layers):
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = jnp.tanh(x)
    return out(x) if out else x


def jax_model(name, model, jnp):
    """(parameters, field(params, x [n])) of the model in JAX, parameters copied from the torch model."""
    import jax

    if name == "pendulum":
        params = {"L": jnp.asarray(model.learned["L"].detach().numpy()), "f": _mlp(model.nets["friction"], jnp)}

        def field(p, x):
            L = jax.nn.softplus(p["L"][0])
            return jnp.stack([x[1], -9.81 / L * jnp.sin(x[0]) - _apply(p["f"], x[1:2], jnp)[0]])

        return params, field
    if name == "blackbox":
        params = {"f": _mlp(model.nets["f"], jnp)}
        return params, lambda p, x: _apply(p["f"], x, jnp)
    if name == "msd":
        params = {"V": _mlp(model.nets["V"], jnp), "d": _mlp(model.nets["damping"], jnp)}

        def field(p, x):
            q, pm = x[0], x[1]
            dV = jax.grad(lambda q: _apply(p["V"], q[None], jnp)[0])(q)
            damping = jax.nn.softplus(_apply(p["d"], pm[None], jnp))[0]
            return jnp.stack([pm, -dV - damping * pm])

        return params, field
    from vector_field import chain_params

    n = 10
    masses, stiff, _ = chain_params(n)
    m, k = jnp.asarray(masses, dtype=jnp.float32), jnp.asarray(stiff, dtype=jnp.float32)
    raw = [v.detach() for key, v in model.learned.items()]
    params = {"ks": jnp.asarray(torch.cat(raw).numpy())}

    def field(p, x):
        qp = x[: 2 * n].reshape(n, 2)
        q, pm, s = qp[:, 0], qp[:, 1], x[2 * n :]
        v = pm / m
        f = jax.nn.softplus(p["ks"]) * s
        force = jnp.pad(f, (0, 1)) - jnp.pad(f, (1, 0))
        dp = -(k * q + 2 * q**3) - (0.3 + 0.1 * pm**2) * v + force
        return jnp.concatenate([jnp.stack([v, dp], axis=-1).reshape(2 * n), v[1:] - v[:-1]])

    return params, field


# ------------------------------------------------------------------------------------------- driver
def measure(name: str, epochs: int, runners: list[str]) -> dict:
    text, model_name, wt, wv = windows(name)
    makers = {
        "nodedsl native": lambda: nodedsl_runner(text, model_name, wt, wv, epochs, "native"),
        "nodedsl fast": lambda: nodedsl_runner(text, model_name, wt, wv, epochs, "whole_step"),
        "nodedsl eager": lambda: nodedsl_runner(text, model_name, wt, wv, epochs, "off"),
        "torchdiffeq": lambda: torchdiffeq_runner(text, model_name, wt, wv, epochs),
        "diffrax": lambda: diffrax_runner(text, model_name, wt, wv, epochs, name),
    }
    gens = {r: makers[r]() for r in runners}
    times: dict = {r: [] for r in runners}
    vals: dict = {r: [] for r in runners}
    info: dict = {}
    for _ in range(epochs):
        for r, gen in gens.items():  # interleaved: one epoch of each runner in turn
            started = time.perf_counter()
            val, extra = next(gen)
            times[r].append(time.perf_counter() - started)
            vals[r].append(val)
            info[r] = extra
    return {"name": name, "windows": len(wt), "times": times, "vals": vals, "info": info}


def report(res: dict) -> list[str]:
    target = max(v[-1] for v in res["vals"].values())
    rows = [
        f"\n### {res['name']} ({res['windows']} training windows; target validation loss {target:.3g})\n",
        "| runner | first epoch (compile incl.) s | steady epoch ms (median) | total s | time to target s | "
        "final val loss | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r, ts in res["times"].items():
        cum, reach = 0.0, None
        for t, v in zip(ts, res["vals"][r]):
            cum += t
            if reach is None and v <= target:
                reach = cum
        steady = statistics.median(ts[2:]) if len(ts) > 2 else float("nan")
        info = res["info"].get(r, {})
        note = "" if not info else ("compiled" if info.get("used") else f"eager: {info.get('reason')}")
        if info.get("used") and info.get("backend") == "native":
            note += f" (gcc {info.get('compile_seconds', 0.0):.2f} s; 0 when cached)"
        rows.append(
            f"| {r} | {ts[0]:.2f} | {1e3 * steady:.1f} | {sum(ts):.1f} | "
            f"{'-' if reach is None else f'{reach:.1f}'} | {res['vals'][r][-1]:.3g} | {note} |"
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["pendulum", "blackbox", "msd", "chain"])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--runners", nargs="+", default=["nodedsl fast", "nodedsl eager", "torchdiffeq", "diffrax"])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from nodedsl.train.fast import inductor_cache_dir

    print(f"torch {torch.__version__}, 1 thread, inductor cache {inductor_cache_dir()}", flush=True)
    for name in args.models:
        print("\n".join(report(measure(name, args.epochs, args.runners))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
