"""The grid of a sweep: ``--grid key=v1,v2`` arguments, checked against a train block before anything runs,
and the runs they plan (the Cartesian product of the grid times the seeds).

Keys are those ``train --set`` takes (``lr``, ``batch``, ``solver.step``, ``solver``, ...). Values are
split at top-level commas, so a call keeps its own: ``--grid "solver=rk4(step = 0.1),dopri5"``.

Example:
    >>> parse_grid(["lr=1e-3,3e-3", "solver=rk4(step = 0.1),dopri5(rtol = 1e-6, atol = 1e-8)"])
    {'lr': ['1e-3', '3e-3'], 'solver': ['rk4(step = 0.1)', 'dopri5(rtol = 1e-6, atol = 1e-8)']}
    >>> from nodedsl.frontend.config.schema import TrainConfig
    >>> cfg = TrainConfig.model_validate({"model": "M", "data": "d", "seed": 3})
    >>> [r.name for r in plan_runs(cfg, {"batch": ["16", "32"]}, seeds=2)]
    ['batch=16_seed=3', 'batch=16_seed=4', 'batch=32_seed=3', 'batch=32_seed=4']
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

from ..core.diagnostics import Diagnostic, NodeDslError, Span
from ..frontend.config import TrainConfig, apply_overrides

__all__ = ["RunSpec", "parse_grid", "plan_runs", "split_values"]

CMDLINE = Span("<command line>", 0, 0)
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its directory name, its grid values (as given) and its seed."""

    name: str
    params: dict[str, str] = field(hash=False)
    seed: int = 0

    def overrides(self) -> dict[str, str]:
        """The ``--set`` overrides of this run (grid values and the seed)."""
        return {**self.params, "seed": str(self.seed)}


def split_values(text: str) -> list[str]:
    """``"a,b(c, d),e"`` -> ``["a", "b(c, d)", "e"]``: commas inside parentheses do not split."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def _bad(item: str, message: str, *notes: str) -> Diagnostic:
    return Diagnostic("bad-override", f"--grid '{item}': {message}", CMDLINE, tuple(notes))


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["key=v1,v2", ...]`` -> ``{key: [v1, v2]}``; malformed items are ``bad-override`` errors."""
    grid: dict[str, list[str]] = {}
    diags: list[Diagnostic] = []
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            diags.append(_bad(item, "expected key=v1,v2,...", "example: --grid lr=1e-3,3e-3"))
            continue
        vals = split_values(values)
        if any(not v for v in vals):
            diags.append(_bad(item, "empty value", "values are separated by commas: --grid batch=16,32"))
        elif key in grid:
            diags.append(_bad(item, f"key '{key}' is given twice", "put all its values in one --grid"))
        elif len(set(vals)) != len(vals):
            diags.append(_bad(item, "a value is repeated"))
        else:
            grid[key] = vals
    if diags:
        raise NodeDslError(diags)
    return grid


def check_grid(cfg: TrainConfig, grid: dict[str, list[str]], seeds: int) -> None:
    """Every grid value, alone and in every combination, must be a valid override of ``cfg``; errors name
    the ``--grid`` argument and the value."""
    diags: list[Diagnostic] = []
    if seeds < 1:
        diags.append(Diagnostic("bad-override", f"--seeds must be at least 1, got {seeds}", CMDLINE))
    if "seed" in grid and seeds > 1:
        diags.append(_bad("seed=" + ",".join(grid["seed"]), "a seed grid and --seeds > 1 together", "use one"))
    for key, vals in grid.items():
        for v in vals:
            try:
                apply_overrides(cfg, {key: v})
            except NodeDslError as err:
                diags.extend(
                    _bad(f"{key}={','.join(vals)}", f"value '{v}': {d.message}", *d.notes) for d in err.diagnostics
                )
    if diags:
        raise NodeDslError(diags)
    for combo in itertools.product(*grid.values()):
        sets = dict(zip(grid, combo))
        try:
            apply_overrides(cfg, sets)
        except NodeDslError as err:
            shown = " ".join(f"{k}={v}" for k, v in sets.items())
            raise NodeDslError(
                [
                    Diagnostic("bad-override", f"--grid combination {shown}: {d.message}", CMDLINE, d.notes)
                    for d in err.diagnostics
                ]
            ) from None


def plan_runs(cfg: TrainConfig, grid: dict[str, list[str]], seeds: int = 1) -> list[RunSpec]:
    """The runs of a sweep: every combination of the grid (in the order given) times ``seeds`` seeds
    (the train block's seed, +1, ...; a ``seed`` grid key replaces them)."""
    check_grid(cfg, grid, seeds)
    base = int(cfg.seed)
    runs: list[RunSpec] = []
    used: set[str] = set()
    for combo in itertools.product(*grid.values()):
        params = dict(zip(grid, combo))
        seed_list = [int(float(params.pop("seed")))] if "seed" in params else [base + k for k in range(seeds)]
        for seed in seed_list:
            name = run_name(params, seed)
            k = 2
            while name in used:  # two values that differ only in characters a folder name cannot hold
                name, k = f"{run_name(params, seed)}-{k}", k + 1
            used.add(name)
            runs.append(RunSpec(name, params, seed))
    return runs


def run_name(params: dict[str, str], seed: int) -> str:
    """A folder name from grid values: ``lr=0.001_batch=32_seed=0`` (unsafe characters become ``_``)."""
    parts = [f"{k}={v}" for k, v in params.items()] + [f"seed={seed}"]
    return "_".join(_UNSAFE.sub("_", p.replace(" ", "")).strip("_") for p in parts)
