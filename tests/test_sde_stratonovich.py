"""``sde = stratonovich`` (a model attribute, contract section 9): the noise terms are read in the
Stratonovich sense, and every consumer converts correctly (solvers, the transition likelihood, show)."""

from __future__ import annotations

import pytest
import torch

import nodedsl
from nodedsl.core.diagnostics import NodeDslError
from nodedsl.solvers.sde import brownian, make_sde_solver, sdeint

F64 = torch.float64
GBM = """
model GBM {{
    state x = 1.0
    param mu = 0.5
    param s = 0.8
    der(x) = mu * x
    noise(x) = s * x
    {attr}
}}
"""


def _gbm(attr: str):
    return nodedsl.loads(GBM.format(attr=attr), "<gbm>").model("GBM", dtype=F64)


@pytest.mark.parametrize("method", ["euler_maruyama", "reversible_heun"])  # an Ito and a Stratonovich method
def test_stratonovich_gbm_follows_its_exact_solution_on_the_same_path(method):
    """Stratonovich dX = mu X dt + s X o dW has X(1) = exp(mu + s W(1)) (no -s^2/2: that is the Ito
    solution), along the same Brownian path; an Ito and a Stratonovich solver both converge to it."""
    model = _gbm("sde = stratonovich")
    assert model.noise.sde_type == "stratonovich"
    x0, t = torch.ones(200, 1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64)
    bm = brownian(make_sde_solver(method, step=1.0), x0, t, channels=1, seed=5, interval=True)
    exact = torch.exp(0.5 + 0.8 * bm(0.0, 1.0))
    drift, diffusion = model.sde_functions()
    solver = make_sde_solver(method, step=2.0**-7)
    got = sdeint(drift, diffusion, x0, t, solver=solver, noise=model.noise, bm=bm).ys[-1].detach()
    err = float((got - exact).abs().mean())
    ito = _gbm("")  # the same lines read as Ito: a different process, off by the s^2/2 drift
    drift_i, diffusion_i = ito.sde_functions()
    got_i = sdeint(drift_i, diffusion_i, x0, t, solver=solver, noise=ito.noise, bm=bm).ys[-1].detach()
    err_ito = float((got_i - exact).abs().mean())
    assert err < 0.15 and err_ito > 4 * err, (err, err_ito)  # EM's strong error at h = 2^-7: ~0.08
    ito_exact = torch.exp((0.5 - 0.32) + 0.8 * bm(0.0, 1.0))
    assert float((got_i - ito_exact).abs().mean()) < 0.15


def test_transition_likelihood_uses_the_ito_drift():
    """The likelihood of a Stratonovich model equals that of the Ito model with drift f + g g'/2."""
    from nodedsl.data.loading import Trajectories
    from nodedsl.train.sde_fit import Objective, _SDETrainer, transition_data

    strat = _gbm("sde = stratonovich")
    ito = nodedsl.loads(GBM.format(attr="").replace("der(x) = mu * x", "der(x) = mu * x + 0.32 * x"), "<g>")
    ito = ito.model("GBM", dtype=F64)
    gen = torch.Generator().manual_seed(0)
    y = torch.exp(torch.randn(3, 6, 1, generator=gen, dtype=F64).cumsum(1) * 0.1)
    t = torch.linspace(0, 0.5, 6, dtype=F64).expand(3, -1)
    traj = Trajectories(t=t, y=y, u=torch.zeros(3, 6, 0, dtype=F64), lengths=torch.full((3,), 6),
                        output_names=("x",), input_names=(), ids=(0, 1, 2))  # fmt: skip
    losses = []
    for model in (strat, ito):
        trainer = _SDETrainer.__new__(_SDETrainer)  # only the loss is used, not the loop
        trainer.model, trainer.obj = model, Objective("transition_likelihood")
        data = transition_data(model, traj)
        losses.append(float(trainer.transition_loss(data, torch.arange(3))[0].detach()))
    assert losses[0] == pytest.approx(losses[1], rel=1e-12)


def test_show_prints_the_reading():
    from nodedsl.symbolic.show import format_system  # the text `nodedsl show` prints

    prog = nodedsl.loads(GBM.format(attr="sde = stratonovich"), "<gbm>")
    assert "Stratonovich SDE (diagonal noise): dx = f dt + g o dW" in format_system(
        prog.system("GBM"), prog.info("GBM")
    )
    ito = nodedsl.loads(GBM.format(attr=""), "<gbm>")
    assert "Ito SDE (diagonal noise): dx = f dt + g dW" in format_system(ito.system("GBM"), ito.info("GBM"))


@pytest.mark.parametrize(
    "attr, message",
    [
        ("sde = stratonovic", "expected ito or stratonovich"),
        ("sde = ito\\n    sde = stratonovich", "given twice"),
    ],
)
def test_bad_sde_attribute_is_located(attr, message):
    with pytest.raises(NodeDslError) as err:
        nodedsl.loads(GBM.format(attr=attr.replace("\\n", "\n")), "<gbm>")
    d = err.value.diagnostics[0]
    assert d.code == "bad-value" and message in d.message and d.span.line >= 7


def test_sde_attribute_without_noise_is_an_error():
    with pytest.raises(NodeDslError) as err:
        nodedsl.loads("model M {\n state x = 1\n der(x) = -x\n sde = stratonovich\n}", "<m>")
    assert "has no noise" in err.value.diagnostics[0].message and err.value.diagnostics[0].span.line == 4


def test_port_hamiltonian_stratonovich_energy_term():
    """H = p^2/2 + q^2 with noise(p) = s p read as Stratonovich: the Ito form drifts p by s^2 p/2 more,
    so dH gains p * s^2 p / 2 next to the Ito term 1/2 s^2 p^2: P_ito = s^2 p^2 in all, symbolically
    (show) and numerically (simulate --energy)."""
    from nodedsl.compiler.stochastic import ito_correction
    from nodedsl.symbolic.show import format_system

    src = """
    model Osc : port_hamiltonian {
        state q = 1
        state p = 0.5
        param s = 0.4
        hamiltonian = p^2 / 2 + q^2
        noise(p) = s * p
        sde = stratonovich
    }
    """
    prog = nodedsl.loads(src)
    text = format_system(prog.system("Osc"), prog.info("Osc"))
    assert "P_ito = 1/2 tr(g^T Hess(H) g) + grad H^T (1/2 g dg/dx) = p**2*s**2" in text
    model = prog.model("Osc", dtype=F64)
    x = torch.tensor([[1.0, 0.5], [0.3, -2.0]], dtype=F64)
    assert torch.allclose(ito_correction(model, 0.0, x), 0.16 * x[:, 1] ** 2, atol=1e-12)
