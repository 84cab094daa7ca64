"""Validation of dataset/train blocks: every problem a Diagnostic with a stable code at the right line."""

from __future__ import annotations

import glob

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nodedsl.core.diagnostics import NodeDslError, Span
from nodedsl.frontend import ast
from nodedsl.frontend.config import (
    DatasetConfig,
    TrainConfig,
    apply_overrides,
    key_span,
    to_plain,
    validate_dataset,
    validate_train,
)
from nodedsl.frontend.parse import parse_source


def train_of(body: str, model: str = "M"):
    return parse_source(f"train {model} {{\n{body}\n}}\n", "t.node").trains[0]


def dataset_of(body: str):
    return parse_source(f"dataset d {{\n{body}\n}}\n", "t.node").datasets[0]


def codes(diags):
    return [d.code for d in diags]


@pytest.mark.parametrize("path", sorted(glob.glob("examples/*.node")))
def test_examples_validate(path):
    with open(path, encoding="utf-8") as fh:
        mod = parse_source(fh.read(), path)
    for ds in mod.datasets:
        cfg, diags = validate_dataset(ds)
        assert diags == [] and isinstance(cfg, DatasetConfig)
    for tr in mod.trains:
        cfg, diags = validate_train(tr)
        assert diags == [] and isinstance(cfg, TrainConfig)
        assert cfg.model == tr.model


def test_pendulum_values_and_defaults():
    cfg, diags = validate_train(
        train_of(
            "data = swings\n solver = rk4(step = 0.05)\n window = 10\n"
            " optimizer = adam(lr = 3e-3)\n constraints = augmented_lagrangian("
            "mu = 1.0, growth = 2.0, update_every = 20)"
        )
    )
    assert diags == []
    assert cfg.data == "swings" and not cfg.data_is_file
    assert cfg.solver.kind == "rk4" and cfg.solver.options == {"step": 0.05}
    assert cfg.optimizer.kind == "adam" and cfg.optimizer.lr == 3e-3
    assert cfg.constraints.update_every == 20 and cfg.constraints.mu_max == 100 and cfg.constraints.scale == "auto"
    assert cfg.gradient_mode() == "backprop" and cfg.epochs == 100 and cfg.loss == "mse"
    assert key_span(cfg, "optimizer").line == 5


def test_dataset_values():
    cfg, diags = validate_dataset(
        dataset_of(
            "model = P\n trajectories = 3\n time = span(0, 1, step = 0.25)\n"
            " initial = { theta = uniform(-2, 2), q = [1, normal(0, 0.1)],"
            " left.p = 0 }\n noise = 0.01"
        )
    )
    assert diags == []
    assert cfg.times() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cfg.initial["theta"].low == -2 and cfg.initial["q"][1].std == 0.1 and cfg.initial["left.p"] == 0
    assert cfg.solver is None and cfg.seed == 0


def test_unknown_key_suggests_and_points_at_line():
    cfg, diags = validate_train(train_of("data = d\n epocs = 5"))
    assert cfg is None and codes(diags) == ["unknown-key"]
    d = diags[0]
    assert "epocs" in d.message and d.span.line == 3 and d.span.file == "t.node"
    assert any("epochs" in n for n in d.notes)


def test_unknown_nested_key():
    _, diags = validate_train(train_of("data = d\n optimizer = adam(lrr = 1e-3)"))
    assert codes(diags) == ["unknown-key"]
    assert "lrr" in diags[0].message and diags[0].span.line == 3
    assert any("'lr'" in n for n in diags[0].notes)


@pytest.mark.parametrize(
    "body, key, line",
    [
        ("data = d\n window = 2.5", "window", 3),
        ("data = d\n epochs = 0", "epochs", 3),
        ("data = d\n validation = 1.5", "validation", 3),
        ("data = d\n batch = \"x\"", "batch", 3),
        ("data = d\n loss = l1", "loss", 3),
        ("data = d\n optimizer = adam(lr = -1)", "optimizer.lr", 3),
        ("data = d\n gradient = checkpoint(segments = 0)", "gradient.segments", 3),
    ],
)
def test_bad_values_name_key_expected_and_given(body, key, line):
    cfg, diags = validate_train(train_of(body))
    assert cfg is None and codes(diags) == ["bad-value"]
    d = diags[0]
    assert f"'{key}'" in d.message and "expected" in d.message and "got" in d.message
    assert d.span.line == line


def test_bad_call_name_suggests():
    _, diags = validate_train(train_of("data = d\n optimizer = adamm(lr = 1)"))
    assert codes(diags) == ["bad-value"] and "adamm" in diags[0].message
    assert any("'adam'" in n for n in diags[0].notes)


def test_solver_options_checked_by_solver_layer():
    _, diags = validate_train(train_of("data = d\n solver = rk4(stp = 0.1)"))
    assert codes(diags) == ["unknown-key"] and "stp" in diags[0].message
    _, diags = validate_train(train_of("data = d\n solver = dopri5(rtol = -1)"))
    assert codes(diags) == ["bad-value"] and "rtol" in diags[0].message
    _, diags = validate_train(train_of("data = d\n solver = rk5"))
    assert codes(diags) == ["bad-value"] and "rk5" in diags[0].message
    cfg, diags = validate_train(train_of("data = d\n solver = rk4"))  # step filled in from the data later
    assert diags == [] and cfg.solver.options == {}


def test_missing_and_duplicate_keys():
    _, diags = validate_train(train_of("epochs = 3"))
    assert codes(diags) == ["missing-key"] and "data" in diags[0].message
    _, diags = validate_train(train_of("data = d\n epochs = 3\n epochs = 4"))
    assert "duplicate-key" in codes(diags)


def test_data_file_strings():
    cfg, diags = validate_train(train_of('data = "runs/a.csv"'))
    assert diags == [] and cfg.data_is_file
    _, diags = validate_train(train_of('data = "runs.txt"'))
    assert codes(diags) == ["bad-value"]


def test_dataset_errors():
    _, diags = validate_dataset(
        dataset_of(
            "model = P\n time = span(1, 0, step = 0.1)\n initial = { x = uniform(2, 1), y = gauss(0, 1) }\n nosie = 1"
        )
    )
    got = {(d.code, d.span.line) for d in diags}
    assert ("bad-value", 3) in got and ("bad-value", 4) in got and ("unknown-key", 5) in got
    _, diags = validate_dataset(dataset_of("model = P\n time = [0, 1, 0.5]"))
    assert codes(diags) == ["bad-value"] and "increasing" in diags[0].message


def test_positional_arguments_are_named():
    cfg, diags = validate_train(
        train_of(
            "data = d\n optimizer = adamw(0.01)\n schedule = step(10, 0.5)\n"
            " early_stopping = 7\n gradient = checkpoint(3)"
        )
    )
    assert diags == []
    assert cfg.optimizer.lr == 0.01 and cfg.schedule.every == 10 and cfg.early_stopping.patience == 7
    assert cfg.gradient_mode() == ("checkpoint", 3)
    _, diags = validate_train(train_of("data = d\n optimizer = adam(1, 2, 3)"))
    assert codes(diags) == ["bad-value"] and "positional" in diags[0].message


def test_to_plain_keeps_spans():
    tr = train_of("data = d\n optimizer = adam(lr = 1e-3)\n x = [1, { a.b = none }]")
    spans: dict = {}
    plain = {e.key: to_plain(e.value, (e.key,), spans) for e in tr.entries}
    assert plain["optimizer"] == {"name": "adam", "args": [], "kwargs": {"lr": 0.001}}
    assert plain["x"] == [1, {"a.b": None}]
    assert spans[("optimizer", "lr")].line == 3 and spans[("x", 1, "a.b")].line == 4


def test_overrides():
    cfg, _ = validate_train(train_of("data = d\n optimizer = adam(lr = 1e-3)\n solver = rk4(step = 0.1)"))
    new = apply_overrides(
        cfg,
        {
            "epochs": "10",
            "lr": "3e-3",
            "solver.step": "0.01",
            "schedule": "cosine",
            "early_stopping": "4",
            "clip": "1.5",
        },
    )
    assert new.epochs == 10 and new.optimizer.lr == 3e-3 and new.solver.options["step"] == 0.01
    assert new.schedule.kind == "cosine" and new.early_stopping.patience == 4 and new.clip == 1.5
    assert cfg.epochs == 100  # the original is untouched
    assert apply_overrides(cfg, {"optimizer": "lbfgs"}).optimizer.kind == "lbfgs"
    s = apply_overrides(cfg, {"solver": "dopri5", "solver.rtol": "1e-5"}).solver
    assert (s.kind, s.options) == ("dopri5", {"rtol": 1e-5})
    wi = apply_overrides(cfg, {"window_init": "learned", "window_init.after": "5"}).window_init
    assert (wi.kind, wi.after) == ("learned", 5) and cfg.window_init.kind == "data"
    for bad, word in [
        ({"epocs": "1"}, "epochs"),
        ({"epochs": "x"}, "epochs"),
        ({"optimizer.lrr": "1"}, "lrr"),
        ({"schedule.gamma": "0.5"}, "schedule"),
        ({"solver.stp": "1"}, "stp"),
        ({"validation": "2"}, "validation"),
    ]:
        with pytest.raises(NodeDslError) as exc:
            apply_overrides(cfg, bad)
        assert exc.value.diagnostics[0].code == "bad-override"
        assert word in exc.value.diagnostics[0].message + " ".join(exc.value.diagnostics[0].notes)


# ---------------------------------------------------------------- robustness: never an exception
_S = Span("f.node", 1, 1)
_names = st.sampled_from(
    [
        "data",
        "solver",
        "window",
        "epochs",
        "optimizer",
        "schedule",
        "constraints",
        "x",
        "gradient",
        "validation",
        "early_stopping",
        "clip",
        "time",
        "initial",
        "model",
    ]
)
_leaf = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: ast.VNumber(v, _S)),
    st.text(max_size=5).map(lambda v: ast.VString(v, _S)),
    st.sampled_from(["adam", "rk4", "none", "cosine", "span", "uniform", "adjoint", "zz"]).map(
        lambda v: ast.VName(v, _S)
    ),
)


def _extend(children):
    entries = st.lists(st.tuples(_names, children), max_size=3).map(
        lambda kv: tuple(ast.Entry(k, v, _S) for k, v in kv)
    )
    args = st.lists(
        st.tuples(st.one_of(st.none(), st.sampled_from(["lr", "step", "mu", "low", "kind"])), children), max_size=3
    ).map(lambda kv: tuple(ast.Arg(k, v, _S) for k, v in kv))
    return st.one_of(
        st.lists(children, max_size=3).map(lambda v: ast.VList(tuple(v), _S)),
        entries.map(lambda e: ast.VMap(e, _S)),
        st.tuples(st.sampled_from(["adam", "rk4", "span", "uniform", "checkpoint", "dopri5", "q"]), args).map(
            lambda na: ast.VCall(na[0], na[1], _S)
        ),
    )


_values = st.recursive(_leaf, _extend, max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_names, _values), max_size=6))
def test_arbitrary_blocks_give_diagnostics_not_exceptions(items):
    entries = tuple(ast.Entry(k, v, _S) for k, v in items)
    for validate, block in (
        (validate_train, ast.Train("M", entries, _S)),
        (validate_dataset, ast.Dataset("d", entries, _S)),
    ):
        cfg, diags = validate(block)
        assert (cfg is None) == any(d.severity == "error" for d in diags)
        assert all(d.code in {"unknown-key", "bad-value", "missing-key", "duplicate-key"} for d in diags)
