"""Conditional parameters (``when``): the plan, the ids, the tables, the plot and the errors."""

import copy
import csv

import pytest
import yaml
from conftest import REPO, demo_config, read_json, run_workflow

from snakesweep.config_check import check_config
from snakesweep.report.plots import plot_metric_vs_params
from snakesweep.report.results import best_config, leaderboard_rows, write_csv
from snakesweep.report.tables import SweepTables, metrics_frame, trials_frame
from snakesweep.search.conditions import active_values, is_active, parent_first
from snakesweep.search.sampling import expand
from snakesweep.search.space import ConfigError, parse_parameters
from snakesweep.search.sweep import build_sweep
from snakesweep.search.trial_id import trial_id

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MOMENTUM = {"kind": "uniform", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}}


def sweep_config(strategy="random", **parameters):
    """A sweep of scripts/train.py: optimizer adam/sgd, lr sampled or fixed, plus ``parameters``."""
    lr = (
        {"kind": "loguniform", "low": 1e-3, "high": 0.3}
        if strategy == "random"
        else {"kind": "fixed", "value": 0.01}
    )
    return {
        "sweep": "cond",
        "script": str(REPO / "scripts" / "train.py"),
        "metric": "val_accuracy",
        "mode": "max",
        "epochs": 1,
        "strategy": strategy,
        "n_trials": 12,
        "seed": 4,
        "parameters": {
            "optimizer": {"kind": "choice", "values": ["adam", "sgd"]},
            "lr": lr,
            **parameters,
        },
    }


# -- the module's API (what a define-by-run sampler asks)


def test_parent_first_is_name_order_with_each_parent_before_its_children():
    params = parse_parameters(
        {
            "a": {"kind": "fixed", "value": 1},
            "b": {"kind": "choice", "values": [1, 2], "when": {"c": "x"}},
            "c": {"kind": "choice", "values": ["x", "y"], "when": {"d": True}},
            "d": {"kind": "choice", "values": [True, False]},
            "e": {"kind": "uniform", "low": 0, "high": 1},
        },
        "random",
    )
    assert [p.name for p in parent_first(params)] == ["a", "d", "c", "b", "e"]
    plain = parse_parameters({n: {"kind": "fixed", "value": 0} for n in "zyx"}, "random")
    assert [p.name for p in parent_first(plain)] == ["x", "y", "z"]


def test_a_chained_parameter_is_absent_when_its_parent_is_absent():
    params = {
        p.name: p
        for p in parse_parameters(
            {
                "optimizer": {"kind": "choice", "values": ["adam", "sgd", "rmsprop"]},
                "momentum": {
                    "kind": "choice",
                    "values": [0.0, 0.9],
                    "when": {"optimizer": ["sgd", "rmsprop"]},
                },
                "nesterov": {"kind": "choice", "values": [True, False], "when": {"momentum": 0.9}},
            },
            "random",
        )
    }
    assert is_active(params["momentum"], {"optimizer": "rmsprop"})
    assert not is_active(params["momentum"], {"optimizer": "adam"})
    assert is_active(params["nesterov"], {"optimizer": "sgd", "momentum": 0.9})
    assert not is_active(params["nesterov"], {"optimizer": "adam"})  # momentum absent
    # Values drawn beforehand: the absent ones are dropped, keys that are no parameter kept.
    drawn = {"optimizer": "adam", "momentum": 0.9, "nesterov": True, "epochs": 3}
    assert active_values(list(params.values()), drawn) == {"optimizer": "adam", "epochs": 3}
    drawn["optimizer"] = "sgd"
    assert active_values(list(params.values()), drawn) == drawn


def test_a_condition_value_matches_as_yaml_reads_it():
    params = {
        p.name: p
        for p in parse_parameters(
            {
                "flag": {"kind": "choice", "values": [True, 1]},
                "x": {"kind": "fixed", "value": 0, "when": {"flag": True}},
                "width": {"kind": "grid", "values": [1.0, 2.0]},
                "y": {"kind": "fixed", "value": 0, "when": {"width": 1}},
            },
            "random",
        )
    }
    assert is_active(params["x"], {"flag": True}) and not is_active(params["x"], {"flag": 1})
    assert is_active(params["y"], {"width": 1.0}) and not is_active(params["y"], {"width": 2.0})


# -- grid


def test_grid_plans_only_the_valid_combinations():
    config = sweep_config(
        "grid",
        momentum={"kind": "grid", "values": [0.5, 0.9], "when": {"optimizer": "sgd"}},
        nesterov={"kind": "choice", "values": [True, False], "when": {"momentum": 0.9}},
        dampening={"kind": "fixed", "value": 0.1, "when": {"nesterov": False}},
    )
    sweep = build_sweep(config)
    assert list(sweep.trials.values()) == [
        {"lr": 0.01, "optimizer": "adam", "epochs": 1},
        {"lr": 0.01, "optimizer": "sgd", "momentum": 0.5, "epochs": 1},
        {"lr": 0.01, "optimizer": "sgd", "momentum": 0.9, "nesterov": True, "epochs": 1},
        {
            "lr": 0.01,
            "optimizer": "sgd",
            "momentum": 0.9,
            "nesterov": False,
            "dampening": 0.1,
            "epochs": 1,
        },
    ]
    # The id hashes exactly the parameters a trial has.
    assert list(sweep.trials) == [trial_id(t) for t in sweep.trials.values()]
    assert trial_id({"lr": 0.01, "optimizer": "adam", "epochs": 1}) in sweep.trials


# -- random


def test_random_same_seed_same_trials_and_conditional_values_obey_their_condition():
    config = sweep_config(momentum=MOMENTUM)
    first, again = build_sweep(config), build_sweep(copy.deepcopy(config))
    assert first.trials == again.trials
    optimizers = [t["optimizer"] for t in first.trials.values()]
    assert set(optimizers) == {"adam", "sgd"}
    for t in first.trials.values():
        assert ("momentum" in t) == (t["optimizer"] == "sgd")
        assert "momentum" not in t or 0.8 <= t["momentum"] <= 0.99


def test_adding_a_conditional_parameter_changes_no_trial_where_it_is_false():
    """Conditional parameters draw from their own streams: every other value stays put."""
    base = expand(parse_parameters(sweep_config()["parameters"], "random"), "random", 12, 4)
    with_momentum = sweep_config(momentum=MOMENTUM, nesterov={**MOMENTUM, "kind": "uniform"})
    grown = expand(parse_parameters(with_momentum["parameters"], "random"), "random", 12, 4)
    for before, after in zip(base, grown, strict=True):
        assert {k: v for k, v in after.items() if k not in ("momentum", "nesterov")} == before
        if before["optimizer"] == "adam":
            assert after == before  # same values, hence the same trial id
    adam_ids = {
        trial_id({**t, "epochs": 1}) for t in base if t["optimizer"] == "adam"
    }  # the trials where the condition is false
    assert adam_ids and adam_ids <= set(build_sweep(with_momentum).trials)


def test_sweeps_without_conditions_keep_their_trial_ids():
    # Pinned from before conditions existed: the shared (seed, index) stream is unchanged.
    assert list(build_sweep(demo_config()).trials) == [
        "73b16821bd35",
        "5a6b1b5183fb",
        "06ca7c6ae79b",
        "bd281d5a7e7a",
        "0348055d2043",
        "73cc89f4068f",
        "4fd77292c94a",
        "69a927048a7c",
    ]


def test_random_crosses_a_conditional_grid_axis_only_with_samples_where_it_holds():
    config = sweep_config(
        momentum={"kind": "grid", "values": [0.5, 0.9], "when": {"optimizer": "sgd"}}
    )
    config["n_trials"] = 6
    trials = list(build_sweep(config).trials.values())
    samples = expand(parse_parameters(sweep_config()["parameters"], "random"), "random", 6, 4)
    expected = []
    for s in samples:
        momenta = [0.5, 0.9] if s["optimizer"] == "sgd" else [None]
        for m in momenta:
            expected.append({**s, **({"momentum": m} if m is not None else {}), "epochs": 1})
    assert trials == expected


# -- leaderboard, best.yaml, plot


def trial(tid, final, params):
    """A completed one-epoch trial as the tables hold it, and its metric row."""
    row = {"trial_id": tid, "status": "completed", "epochs": 1, "budget": 1, "final": final}
    row.update({f"params_{k}": v for k, v in params.items()})
    return row, [{"trial_id": tid, "epoch": 1, "acc": final}]


def test_a_trial_without_the_parameter_has_an_empty_leaderboard_cell(tmp_path):
    records = [
        {"trial_id": "a", "status": "completed", "final": 0.9, "params": {"optimizer": "adam"}},
        {
            "trial_id": "s",
            "status": "completed",
            "final": 0.8,
            "params": {"optimizer": "sgd", "momentum": 0.9},
        },
    ]
    rows = leaderboard_rows(records, "max")
    assert [list(r)[-4:-2] for r in rows] == [["param_momentum", "param_optimizer"]] * 2
    write_csv(rows, tmp_path / "lb.csv")
    with open(tmp_path / "lb.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(r["trial_id"], r["param_momentum"]) for r in table] == [("a", ""), ("s", "0.9")]


def test_best_yaml_of_a_trial_without_the_parameter_leaves_it_out():
    record = {"trial_id": "a", "params": {"optimizer": "adam", "lr": 0.01, "epochs": 1}}
    config = best_config(record, "cond", "val_accuracy", "max", sweep_config(momentum=MOMENTUM))
    assert config["parameters"] == {
        "lr": {"kind": "fixed", "value": 0.01},
        "optimizer": {"kind": "fixed", "value": "adam"},
    }
    assert list(build_sweep(config).trials) == [trial_id(record["params"])]


def test_the_metric_plot_of_a_parameter_uses_only_the_trials_that_have_it(tmp_path):
    trials = [
        trial("t1", 0.9, {"optimizer": "adam"}),
        trial("t2", 0.5, {"optimizer": "adam"}),
        trial("t3", 0.7, {"optimizer": "sgd", "momentum": 0.8}),
        trial("t4", 0.6, {"optimizer": "sgd", "momentum": 0.95}),
        trial("t5", 0.4, {"optimizer": "sgd", "nesterov": True}),
        trial("t6", 0.3, {"optimizer": "sgd", "nesterov": True}),
    ]
    tables = SweepTables(
        root="results/s",
        metric="acc",
        mode="max",
        trials=trials_frame([row for row, _ in trials]),
        metrics=metrics_frame([m for _, rows in trials for m in rows]),
    )
    path = tmp_path / "params.svg"
    names = ["momentum", "nesterov", "optimizer"]
    info = plot_metric_vs_params(tables, path, "acc", "max", names, budget=1)
    # momentum: numbers on a linear axis, not a category holding "None"; nesterov has one value
    # among the trials that have it, so it does not vary and gets no panel.
    assert info["panels"] == {"momentum": "linear", "optimizer": "category"}
    assert info["points"] == {"momentum": 2, "optimizer": 6}
    assert "4 trial(s) without momentum not shown" in path.read_text()


# -- errors, at dry-run

ERRORS = [
    (
        "unknown-parameter",
        {"momentum": {**MOMENTUM, "when": {"optimiser": "sgd"}}},
        ["parameters.momentum.when.optimiser", "no parameter 'optimiser'", "'optimizer'"],
    ),
    (
        "value-the-parent-cannot-take",
        {"momentum": {**MOMENTUM, "when": {"optimizer": ["sgd", "rmsprop"]}}},
        ["parameters.momentum.when.optimizer", "'rmsprop' is not a value", "['adam', 'sgd']"],
    ),
    (
        "cycle",
        {
            "momentum": {"kind": "choice", "values": [0.0, 0.9], "when": {"nesterov": True}},
            "nesterov": {"kind": "choice", "values": [True, False], "when": {"momentum": 0.9}},
        },
        ["parameters.momentum.when", "loop (momentum -> nesterov -> momentum)"],
    ),
    (
        "condition-on-a-continuous-parameter",
        {"momentum": {**MOMENTUM, "when": {"lr": 0.01}}},
        ["parameters.momentum.when.lr", "'lr' is a 'loguniform' parameter", "'choice'"],
    ),
]
MORE_ERRORS = [
    (
        "self-loop",
        {"momentum": {"kind": "choice", "values": [0.9], "when": {"momentum": 0.9}}},
        ["parameters.momentum.when", "loop (momentum -> momentum)"],
    ),
    (
        "value-a-fixed-parent-cannot-take",
        {"opt": {"kind": "fixed", "value": "adam"}, "m": {**MOMENTUM, "when": {"opt": "sgd"}}},
        ["parameters.m.when.opt", "'sgd' is not a value 'opt' can take", "['adam']"],
    ),
    (
        "condition-on-an-int-parameter",
        {"width": {"kind": "int", "low": 1, "high": 4}, "m": {**MOMENTUM, "when": {"width": 2}}},
        ["parameters.m.when.width", "'width' is a 'int' parameter"],
    ),
    ("empty-when", {"momentum": {**MOMENTUM, "when": {}}}, ["parameters.momentum.when", "empty"]),
    (
        "when-not-a-mapping",
        {"momentum": {**MOMENTUM, "when": "sgd"}},
        ["parameters.momentum.when", "'sgd' is not allowed", "{optimizer: [sgd, rmsprop]}"],
    ),
    (
        "empty-value-list",
        {"momentum": {**MOMENTUM, "when": {"optimizer": []}}},
        ["parameters.momentum.when.optimizer", "at least 1 item"],
    ),
]


@pytest.mark.parametrize(
    "parameters,fragments",
    [c[1:] for c in ERRORS + MORE_ERRORS],
    ids=[c[0] for c in ERRORS + MORE_ERRORS],
)
def test_check_config_names_the_condition_at_fault(parameters, fragments):
    with pytest.raises(ConfigError) as info:
        check_config(sweep_config(**parameters), SCHEMA)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_when_is_accepted_on_every_kind():
    gate = {"when": {"optimizer": "sgd"}}
    config = sweep_config(
        a={"kind": "choice", "values": [1, 2], **gate},
        b={"kind": "grid", "values": [1, 2], **gate},
        c={"kind": "uniform", "low": 0, "high": 1, **gate},
        d={"kind": "loguniform", "low": 0.1, "high": 1, **gate},
        e={"kind": "int", "low": 1, "high": 3, "log": True, **gate},
        f={"kind": "fixed", "value": 1, **gate},
    )
    check_config(config, SCHEMA)
    for t in build_sweep(config).trials.values():
        assert (set(t) >= set("abcdef")) == (t["optimizer"] == "sgd")
        assert set(t) & set("abcdef") in (set(), set("abcdef"))


@pytest.mark.e2e
@pytest.mark.parametrize(
    "parameters,fragments", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_dry_run_refuses_a_bad_condition_before_anything_runs(tmp_path, parameters, fragments):
    config = sweep_config(**parameters)
    config["results_dir"] = str(tmp_path / "results")
    proc = run_workflow(tmp_path, config, "-n", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "invalid sweep config" in output
    for fragment in fragments:
        assert fragment in output
    assert not (tmp_path / "results").exists()
    assert "train_trial" not in proc.stdout


# -- a real sweep


@pytest.mark.e2e
def test_a_grid_sweep_passes_momentum_only_to_sgd_trials(tmp_path):
    """Three real trials of scripts/train.py, which refuses --momentum for adam."""
    config = sweep_config(
        "grid", momentum={"kind": "grid", "values": [0.0, 0.5], "when": {"optimizer": "sgd"}}
    )
    config["results_dir"] = str(tmp_path / "results")
    sweep = build_sweep(config)
    adam = trial_id({"lr": 0.01, "optimizer": "adam", "epochs": 1})
    assert sorted(sweep.trials) == sorted(
        [
            adam,
            trial_id({"lr": 0.01, "optimizer": "sgd", "momentum": 0.0, "epochs": 1}),
            trial_id({"lr": 0.01, "optimizer": "sgd", "momentum": 0.5, "epochs": 1}),
        ]
    )
    run_workflow(tmp_path, config, "--cores", "2", timeout=900)
    root = tmp_path / "results" / "cond"
    for tid, params in sweep.trials.items():
        assert read_json(root / "trials" / tid / "params.json")["params"] == params
    with open(root / "leaderboard.csv", newline="") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert {r["status"] for r in rows.values()} == {"completed"}  # adam got no --momentum
    assert {tid: rows[tid]["param_momentum"] for tid in rows} == {
        tid: "" if tid == adam else repr(params["momentum"]) for tid, params in sweep.trials.items()
    }
    # Adam (lr 0.01) learns the digits in one epoch far better than plain SGD: it is the best.
    best_text = (root / "best.yaml").read_text()
    assert f"# trial_id: {adam}" in best_text
    best = yaml.safe_load(best_text)
    assert "momentum" not in best["parameters"]
    assert list(build_sweep(best).trials) == [adam]  # re-running best.yaml trains that trial
    log = (root / "logs" / "plots.log").read_text()
    assert "'points': {'momentum': 2, 'optimizer': 3}" in log
