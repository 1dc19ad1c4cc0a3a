"""Every kind of bad sweep config fails at ``snakemake -n`` naming the key; nothing is created."""

import copy
import subprocess

import pytest
from conftest import REPO, demo_config, run_workflow, workflow_command

from snakesweep.config_check import check_config, continuation_retries_problem
from snakesweep.search.space import ConfigError

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def with_param(name, spec):
    config = demo_config()
    config["parameters"] = copy.deepcopy(config["parameters"])
    config["parameters"][name] = spec
    return config


def without(key):
    config = demo_config()
    del config[key]
    return config


# (id, config, fragments that must all appear in the error)
CASES = [
    (
        "unknown-strategy",
        demo_config(strategy="bayes"),
        ["strategy", "'bayes'", "['grid', 'random', 'tpe']"],
    ),
    (
        "unknown-kind",
        with_param("lr", {"kind": "normal", "low": 0, "high": 1}),
        ["parameters.lr.kind", "'normal'", "'choice'", "'loguniform'", "'fixed'"],
    ),
    (
        "low-not-below-high",
        with_param("lr", {"kind": "uniform", "low": 0.5, "high": 0.5}),
        ["parameters.lr", "low (0.5) must be smaller than high (0.5)"],
    ),
    (
        "loguniform-non-positive",
        with_param("lr", {"kind": "loguniform", "low": 0.0, "high": 1.0}),
        ["parameters.lr.low", "must be > 0"],
    ),
    (
        "int-log-non-positive",
        with_param("width", {"kind": "int", "low": 0, "high": 8, "log": True}),
        ["parameters.width.low", "must be > 0"],
    ),
    ("n-trials-zero", demo_config(n_trials=0), ["n_trials", "must be >= 1", "got 0"]),
    ("n-trials-not-integer", demo_config(n_trials=2.5), ["n_trials", "2.5", "integer"]),
    ("n-trials-string", demo_config(n_trials="many"), ["n_trials", "'many'", "integer"]),
    (
        "empty-choice",
        with_param("depth", {"kind": "choice", "values": []}),
        ["parameters.depth.values", "at least 1"],
    ),
    ("missing-metric", without("metric"), ["metric", "missing required key"]),
    (
        "tpe-with-sha",
        demo_config(strategy="tpe", pruning={"method": "sha"}),
        ["pruning.method", "'sha'", "strategy 'tpe'", "['none', 'asha']"],
    ),
    (
        "tpe-with-hyperband",
        demo_config(strategy="tpe", pruning={"method": "hyperband"}),
        ["pruning.method", "'hyperband'", "strategy 'tpe'", "['none', 'asha']"],
    ),
    (
        "tpe-grid-parameter",
        {**with_param("act", {"kind": "grid", "values": ["relu", "gelu"]}), "strategy": "tpe"},
        ["parameters.act.kind", "'grid' is not allowed with strategy 'tpe'", "kind 'choice'"],
    ),
    (
        "tpe-unknown-option",
        demo_config(strategy="tpe", tpe={"n_startup": 3}),
        ["tpe", "['n_startup']", "n_startup_trials"],
    ),
    (
        "tpe-round-size-zero",
        demo_config(strategy="tpe", round_size=0),
        ["round_size", "must be >= 1", "got 0"],
    ),
    (
        "tpe-startup-negative",
        demo_config(strategy="tpe", tpe={"n_startup_trials": -1}),
        ["tpe.n_startup_trials", "must be >= 0"],
    ),
    (
        "bad-parameter-name",
        with_param("../escape", {"kind": "fixed", "value": 1}),
        ["parameters", "'../escape'", "letters, digits and '_'"],
    ),
    (
        "parameter-name-with-space",
        with_param("learning rate", {"kind": "fixed", "value": 1}),
        ["'learning rate'", "must match"],
    ),
    (
        "unknown-top-level-key",
        demo_config(n_trails=16),
        ["unknown key(s) ['n_trails']", "'n_trials'"],
    ),
    (
        "unknown-parameter-key",
        with_param("lr", {"kind": "uniform", "low": 0, "high": 1, "step": 0.1}),
        ["parameters.lr", "unknown key(s) ['step']", "'high'"],
    ),
    ("unknown-mode", demo_config(mode="best"), ["mode", "'best'", "['min', 'max']"]),
    (
        "continuous-kind-in-grid",
        demo_config(strategy="grid"),
        ["parameters.lr.kind", "cannot be enumerated by strategy 'grid'"],
    ),
    (
        "deadline-margin-neither-number-nor-auto",
        demo_config(checkpoint={"deadline_margin_s": "soon"}),
        ["checkpoint.deadline_margin_s", "'soon' is not of type number", "'auto' was expected"],
    ),
    (
        "warm-module-not-installed",
        demo_config(warm_modules=["sklearn.datasets", "no_such_package.sub"]),
        ["warm_modules", "'no_such_package.sub'", "no module 'no_such_package'"],
    ),
    (
        "warm-module-not-a-name",
        demo_config(warm_modules=["sklearn datasets"]),
        ["warm_modules", "'sklearn datasets'"],
    ),
    ("warm-start-not-boolean", demo_config(warm_start="yes"), ["warm_start", "'yes'", "boolean"]),
    (
        "epochs-as-parameter",
        with_param("epochs", {"kind": "choice", "values": [1, 2]}),
        ["parameters.epochs", "budget"],
    ),
]


@pytest.mark.parametrize("config,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_check_config_names_the_key(config, fragments):
    with pytest.raises(ConfigError) as info:
        check_config(config, SCHEMA)
    for fragment in fragments:
        assert fragment in str(info.value)


DRY_RUN_CASES = [
    c
    for c in CASES
    if c[0]
    in {
        "unknown-strategy",
        "unknown-kind",
        "low-not-below-high",
        "loguniform-non-positive",
        "n-trials-zero",
        "n-trials-not-integer",
        "empty-choice",
        "missing-metric",
        "tpe-with-sha",
        "tpe-grid-parameter",
        "bad-parameter-name",
        "unknown-top-level-key",
    }
]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "config,fragments", [c[1:] for c in DRY_RUN_CASES], ids=[c[0] for c in DRY_RUN_CASES]
)
def test_dry_run_fails_before_anything_runs(tmp_path, config, fragments):
    config["results_dir"] = str(tmp_path / "results")
    proc = run_workflow(tmp_path, config, "-n", check=False)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "invalid sweep config" in output
    for fragment in fragments:
        assert fragment in output
    assert not (tmp_path / "results").exists()
    assert "train_trial" not in proc.stdout


def test_the_demo_config_is_valid():
    check_config(demo_config(), SCHEMA)


def test_retries_below_max_continuations_names_both_and_the_fix():
    assert continuation_retries_problem(20, 20) is None
    assert continuation_retries_problem(50, 20) is None
    problem = continuation_retries_problem(3, 20)
    for fragment in ("retries is 3", "checkpoint.max_continuations is 20", "--retries 20"):
        assert fragment in problem


@pytest.mark.e2e
def test_a_run_with_too_few_retries_stops_before_any_job(tmp_path):
    config = demo_config(results_dir=str(tmp_path / "results"))
    cmd = workflow_command(tmp_path, config, "--retries", "3", "--cores", "1")
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "retries is 3 but checkpoint.max_continuations is 20" in output
    assert "Set `retries: 20`" in output
    assert not list((tmp_path / "results").glob("*/trials/*/segments.jsonl"))


def test_a_parameter_named_epochs_points_to_the_top_level_key():
    config = demo_config()
    config["parameters"]["epochs"] = {"kind": "fixed", "value": 3}
    with pytest.raises(ConfigError) as info:
        check_config(config, SCHEMA)
    assert "set by the top-level key `epochs`" in str(info.value)
    assert "budget.epochs" not in str(info.value)
