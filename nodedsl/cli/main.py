"""The ``nodedsl`` command line: the typer app, one module per command group registered on it.

Each command module (check, show, simulate, train, energy, ...) defines ``register(app)``; adding a
group is one line in ``COMMANDS``. Shared helpers (diagnostic rendering, ``fail``, ``load_or_fail``)
live in :mod:`nodedsl.cli.common`.

Example::

    nodedsl check examples/*.node
    nodedsl show examples/msd.node --model MassSpringDamper
    nodedsl simulate examples/pendulum.node --model PendulumTruth --t-end 5 --step 0.01 -o swing.csv
"""

from __future__ import annotations

import importlib

import typer

from .checking import guarded

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="nodedsl: declare dynamical systems with known physics and learned terms; check, simulate and train them.",
)

# the command modules of nodedsl.cli, in the order of `nodedsl --help`; each defines register(app)
COMMANDS = (
    "check",
    "show",
    "simulate",
    "data",
    "train",
    "sweep",
    "energy",
    "bands",
    "observe",
    "editor",
    "verify",
    "sample",
    "export",
)
for _name in COMMANDS:
    importlib.import_module(f"{__package__}.{_name}").register(app)


def main() -> None:
    """Entry point: never lets a Python traceback reach the user."""
    guarded(app)


if __name__ == "__main__":
    main()
