"""The schema is the one source of defaults; the library's by-hand ones must agree with it."""

import dataclasses

import yaml
from conftest import REPO

from snakesweep.launch import TrialJob
from snakesweep.session import TrialSession
from snakesweep.sweep import build_sweep

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
