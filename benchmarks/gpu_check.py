"""Compiled models on a CUDA device: field, outputs, constraints, energy, Taylor coefficients, gradients
and solvers.

Not a CI test (CI has no GPU). Usage on a machine with CUDA: ``python benchmarks/gpu_check.py``.
Each check compares the GPU result with the CPU result of the same model and parameters (float64),
and prints one line; the exit code is 1 if any check fails. Without CUDA it says so and exits 0.

Training (``train_check``): every example with a train block is trained for a few epochs with
``device = cuda`` and with ``device = cpu`` (``run_training``, float64, the same seeds and windows),
and the trained parameters are compared; then a run of fewer epochs on the GPU is resumed on the CPU
(the checkpoint is loaded with ``map_location``) and must match the uninterrupted CPU run (all with
``horizon = full`` and no schedule, which would depend on the changed ``epochs``).

    python benchmarks/gpu_check.py                     # everything on cuda
    python benchmarks/gpu_check.py cpu --train-only    # the training half on the CPU (a dry run)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import nodedsl
from nodedsl.solvers import make_solver, solve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
failures = 0


def close(name: str, gpu: torch.Tensor, cpu: torch.Tensor, tol: float = 1e-9) -> None:
    global failures
    err = float((gpu.detach().cpu() - cpu.detach()).abs().max()) if cpu.numel() else 0.0
    ok = err <= tol * max(1.0, float(cpu.detach().abs().max()) if cpu.numel() else 1.0)
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: max |gpu - cpu| = {err:.2e}")


TRAIN_CASES = (
    ("pendulum.node", "Pendulum"),
    ("msd.node", "MassSpringDamper"),
    ("two_masses.node", "TwoMassesLearned"),
    ("lotka_volterra.node", "LotkaVolterra"),
    ("blackbox.node", "PendulumBlackBox"),
    ("forced_msd.node", "ForcedMSD"),
    ("linear_matrix.node", "Linear3"),
)


def train_check(dev: torch.device, epochs: int = 3) -> None:
    """Train the examples on ``dev`` and on the CPU; compare; resume a ``dev`` run on the CPU."""
    import tempfile

    from nodedsl.train import run as run_module
    from nodedsl.train import run_training, select_train

    run_module.plot_run = lambda run: []  # the plots are not compared
    root = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    for file, name in TRAIN_CASES:
        prog = nodedsl.load(ROOT / "examples" / file)
        block = select_train(prog, name)
        states = {}
        for tag, device, n, resume in (
            ("dev", str(dev), epochs, False),
            ("cpu", "cpu", epochs, False),
            ("resumed", str(dev), epochs - 1, False),
            ("resumed", "cpu", epochs, True),
        ):
            # no horizon curriculum and no schedule: both depend on `epochs`, which the resumed run changes
            sets = {"epochs": str(n), "device": device, "checkpoint_every": "1", "horizon": "full", "schedule": "none"}
            started = time.perf_counter()
            run_training(prog, block, overrides=sets, run_dir=root / f"{name}-{tag}", resume=resume)
            took = time.perf_counter() - started
            states[tag] = torch.load(root / f"{name}-{tag}" / "model.pt", weights_only=True)["model_state"]
            print(f"     {name}: {n} epochs on {device}{' (resumed)' if resume else ''} in {took:.1f} s")
        flat = {k: torch.cat([v.reshape(-1) for v in st.values()]) for k, st in states.items()}
        close(f"{name} trained {epochs} epochs on {dev} vs cpu", flat["dev"], flat["cpu"], 1e-6)
        close(f"{name} {dev} run resumed on cpu vs cpu", flat["resumed"], flat["cpu"], 1e-6)


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dev = torch.device(args[0] if args else "cuda")  # "cpu" dry-runs the script
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: skipped (run `gpu_check.py cpu` for a dry run on the CPU)")
        return 0
    torch.set_default_dtype(torch.float64)
    print(torch.__version__, torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu")
    if "--train-only" in sys.argv:
        train_check(dev)
        print(f"{failures} failure(s)")
        return 1 if failures else 0
    cases = [
        ("pendulum.node", "Pendulum"),
        ("msd.node", "MassSpringDamper"),
        ("two_masses.node", "TwoMassesLearned"),
        ("arm.node", "DrivenArm"),
        ("lotka_volterra.node", "LotkaVolterra"),
    ]
    import tlnode
    import vector_field

    programs = {file: nodedsl.load(ROOT / "examples" / file) for file, _ in cases}
    # staged composites: one matmul per piece (Chain10), the sparse map (Chain70: 70 x 69 blocks); an MLP field
    # dense linear parts as x @ M^T (_fxaffine): all entries learned (StiffLinear), numbers and parameters mixed
    mixed = (
        "model AffineMixed {\n state a = 0.2\n state b = -0.1\n state c = 0.4\n input f = 0.3\n"
        " param k = 1.5\n param g = 0.7 learn\n der(a) = b - k * a + 2 * c + f\n"
        " der(b) = -g * a + k * g * c - 0.5 * b + t\n der(c) = sin(a) * b - c\n}\n"
    )
    for name, text in (
        ("Chain10", vector_field.chain_source(10)),
        ("Chain70", vector_field.chain_source(70)),
        ("NeuralVdP", tlnode.VDP_SOURCE),
        ("StiffLinear", tlnode._stiff_source(torch.tensor([[-0.01, 0.002], [0.001, -0.005]]))),
        ("AffineMixed", mixed),
    ):
        programs[name] = nodedsl.loads(text)
        cases.append((name, name))
    for file, name in cases:
        prog = programs[file]
        torch.manual_seed(0)
        cpu = prog.model(name)
        gpu = prog.model(name)
        gpu.load_state_dict(cpu.state_dict())
        gpu.to(dev)
        x = torch.randn(64, len(cpu.state_names))
        u = torch.randn(64, len(cpu.input_names))
        close(f"{name} field", gpu.field(0.0, x.to(dev), u.to(dev)), cpu.field(0.0, x, u))
        close(f"{name} observe", gpu.observe(0.0, x.to(dev), u.to(dev)), cpu.observe(0.0, x, u))
        for c in cpu.constraints:
            samples = {v: torch.rand(64, s) for (v, _, _), s in zip(c.domains, c.domain_sizes)}
            close(
                f"{name} constraint {c.name}",
                gpu.constraint_residuals(c.name, 0.0, x.to(dev), u.to(dev), {k: v.to(dev) for k, v in samples.items()}),
                cpu.constraint_residuals(c.name, 0.0, x, u, samples),
            )
        if cpu.system.ph is not None:
            close(f"{name} hamiltonian", gpu.hamiltonian(x.to(dev), 0.0, u.to(dev)), cpu.hamiltonian(x, 0.0, u))
            close(f"{name} dissipation", gpu.dissipation(x.to(dev), 0.0, u.to(dev)), cpu.dissipation(x, 0.0, u))
        try:  # Taylor-mode AD (or symbolic) coefficients, and a Taylor-Lagrange solve's gradients
            coefs = [
                torch.cat(m.taylor_coefficients(0.0, xx, 3, uu), -1)
                for m, xx, uu in ((gpu, x.to(dev), u.to(dev)), (cpu, x, u))
            ]
            close(f"{name} taylor coefficients (order 3)", coefs[0], coefs[1])
            grads = []
            for model, d in ((cpu, torch.device("cpu")), (gpu, dev)):
                model.zero_grad()
                torch.manual_seed(1)
                solver = make_solver("taylor", order=3, step=0.05, state_dim=x.shape[1]).to(d)
                x8 = x[:8].to(d).requires_grad_(True)
                ys = solve(model, x8, torch.linspace(0, 0.5, 6).to(d), solver=solver).ys
                ys.pow(2).mean().backward()
                grads.append(
                    torch.cat(
                        [x8.grad.reshape(-1).cpu()]
                        + [p.grad.reshape(-1).cpu() for p in model.parameters() if p.grad is not None]
                    )
                )
            close(f"{name} taylor solve gradients", grads[1], grads[0], 1e-8)
        except NotImplementedError:
            print(f"--   {name}: no Taylor-mode or symbolic coefficients (a net's derivative in the field)")
        # gradients of a loss through an rk4 solve, w.r.t. every parameter
        t = torch.linspace(0, 1, 21)
        grads = []
        for model, d in ((cpu, torch.device("cpu")), (gpu, dev)):
            model.zero_grad()
            x8 = x[:8].to(d).requires_grad_(True)
            ys = solve(model, x8, t.to(d), solver=make_solver("rk4", step=0.05)).ys
            ys.pow(2).mean().backward()
            grads.append(
                torch.cat(
                    [x8.grad.reshape(-1).cpu()]
                    + [p.grad.reshape(-1).cpu() for p in model.parameters() if p.grad is not None]
                )
            )
        close(f"{name} rk4 solve gradients", grads[1], grads[0], 1e-8)
        with torch.no_grad():
            a = solve(gpu, x[:8].to(dev), t.to(dev), solver=make_solver("dopri5", rtol=1e-9, atol=1e-11)).ys
            b = solve(cpu, x[:8], t, solver=make_solver("dopri5", rtol=1e-9, atol=1e-11)).ys
        close(f"{name} dopri5 solve", a, b, 1e-6)
    # throughput: compiled pendulum field, batch 65536, forward+backward
    prog = nodedsl.load(ROOT / "examples" / "pendulum.node")
    model = prog.model("Pendulum").to(dev).float()
    x = torch.randn(65536, 2, device=dev, dtype=torch.float32)
    for _ in range(3):
        model(torch.tensor(0.0, device=dev), x).sum().backward()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(50):
        model(torch.tensor(0.0, device=dev), x).sum().backward()
    sync()
    print(f"pendulum field fwd+bwd, batch 65536, float32: {(time.perf_counter() - start) / 50 * 1e3:.3f} ms")
    train_check(dev)
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
