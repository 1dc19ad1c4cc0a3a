"""The schema is the one source of defaults; the library's by-hand ones must agree with it."""

import dataclasses

import yaml
from conftest import REPO

from snakesweep.job.launch import TrialJob
from snakesweep.search.sweep import build_sweep
from snakesweep.session import TrialSession

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_defaults(*path):
    node = SCHEMA
    for key in path:
        node = node["properties"][key]
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v}


def test_trial_job_defaults_are_the_schemas_checkpoint_defaults():
    checkpoint = schema_defaults("checkpoint")
    fields = {f.name: f.default for f in dataclasses.fields(TrialJob)}
    assert checkpoint == {
        "every_steps": fields["every_steps"],
        "every_seconds": fields["every_seconds"],
        "epoch_end_max_overhead": fields["epoch_end_max_overhead"],
        "keep": fields["keep"],
        "deadline_margin_s": fields["deadline_margin_s"],
        "max_continuations": fields["max_continuations"],
    }


def test_a_session_by_hand_derives_its_deadline_margin_like_the_schema_default():
    assert schema_defaults("checkpoint")["deadline_margin_s"] == "auto"
    assert TrialSession(handle_signals=False, verbose=False).margin_s == "auto"


def test_build_sweep_fallbacks_are_the_schemas_defaults():
    top = schema_defaults()
    minimal = {
        "metric": "loss",
        "mode": "min",
        "parameters": {"lr": {"kind": "loguniform", "low": 1e-4, "high": 1e-1}},
    }
    filled = {
        **minimal,
        **{k: top[k] for k in ("epochs", "strategy", "n_trials", "seed")},
        "pruning": schema_defaults("pruning"),
    }
    assert build_sweep(minimal).trials == build_sweep(filled).trials
    assert build_sweep(minimal).rung_budgets == build_sweep(filled).rung_budgets


def test_trial_session_defaults_differ_from_the_schema_only_where_documented():
    """A script run by hand: no timed saves (every_seconds 0, the schema says 60), as the
    class docstring says; every other checkpoint default is the schema's."""
    import inspect

    from snakesweep.session import TrialSession

    params = inspect.signature(TrialSession).parameters
    checkpoint = schema_defaults("checkpoint")
    assert params["every_steps"].default == checkpoint["every_steps"]
    assert params["keep"].default == checkpoint["keep"]
    assert params["margin_s"].default == checkpoint["deadline_margin_s"]
    assert params["max_overhead"].default == checkpoint["epoch_end_max_overhead"]
    assert (params["every_seconds"].default, checkpoint["every_seconds"]) == (0.0, 60)
    assert "``every_seconds`` is 0" in TrialSession.__doc__


def test_trial_job_warm_start_defaults_are_the_schemas():
    top = schema_defaults()
    fields = {f.name: f.default for f in dataclasses.fields(TrialJob)}
    assert (top["warm_start"], top["warm_modules"]) == (
        fields["warm_start"],
        list(fields["warm_modules"]),
    )
