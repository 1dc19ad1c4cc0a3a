"""Model-based rounds without the workflow: sizes, seeds, how records are told, the study."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from snakesweep.search.rounds import (
    FAIL,
    PRUNED,
    build_study,
    records_digest,
    round_seed,
    round_sizes,
    settings_changes,
    told_trial,
)
from snakesweep.search.samplers import SAMPLERS, TPE
from snakesweep.search.space import ConfigError, parse_parameters
from snakesweep.search.sweep import build_sweep, round_maker
from snakesweep.search.trial_id import trial_id
from snakesweep.store.round_file import read_rounds, round_path, write_round

CONFIG = {
    "metric": "score",
    "mode": "max",
    "epochs": 3,
    "strategy": "tpe",
    "seed": 7,
    "tpe": {"n_startup_trials": 4},
    "parameters": {
        "behaviour": {"kind": "choice", "values": ["a", "bb", "ccc"]},
        "offset": {"kind": "uniform", "low": 0.0, "high": 10.0},
        "width": {"kind": "int", "low": 2, "high": 64, "log": True},
        "act": {"kind": "fixed", "value": "relu"},
    },
}


def record(params, status="completed", final=None, history=(), tid=None):
    return {
        "trial_id": tid or trial_id(params),
        "status": status,
        "final": final,
        "params": params,
        "history": list(history),
    }


def finished(round_content, score):
    """The records of a round's trials, as if each scored ``score(params)`` at its last epoch."""
    out = []
    for entry in round_content["trials"]:
        value = score(entry["params"])
        history = [{"epoch": e, "score": value * e / 3} for e in (1, 2, 3)]
        out.append(record(entry["params"], final=value, history=history, tid=entry["trial_id"]))
    return out


def score(params):
    return len(params["behaviour"]) * 10 + params["offset"] - abs(params["width"] - 16) / 8


def test_round_sizes_keep_written_rounds_and_fill_with_round_size():
    assert round_sizes(6, 3, {}) == (3, 3)
    assert round_sizes(10, 4, {}) == (4, 4, 2)
    # Growing: the short round 2 that was written stays short; new rounds come after it.
    assert round_sizes(12, 4, {0: 4, 1: 4, 2: 2}) == (4, 4, 2, 2)
    # Lowering into a written round keeps it whole; a round_size change affects new rounds only.
    assert round_sizes(5, 4, {0: 4, 1: 4}) == (4, 4)
    assert round_sizes(9, 2, {0: 4}) == (4, 2, 2, 1)


def test_each_round_has_its_own_seed_from_the_sweep_seed():
    seeds = [round_seed(7, k) for k in range(5)]
    assert len(set(seeds)) == 5
    assert seeds[0] == int(np.random.SeedSequence([7, 0]).generate_state(1, dtype=np.uint32)[0])
    assert round_seed(8, 0) != seeds[0]


def test_records_are_told_as_complete_pruned_or_fail():
    params = {"behaviour": "a", "offset": 1.5, "width": 4, "act": "relu", "epochs": 9}
    names = ["behaviour", "offset", "width"]
    rungs = (1, 3, 9)
    history = [{"epoch": e, "score": float(e)} for e in range(1, 4)]
    done = told_trial(record(params, "completed", 9.0, history), names, "score", rungs)
    assert (done.state, done.value, done.intermediate) == ("COMPLETE", 9.0, {1: 1.0, 3: 3.0})
    assert done.params == {"behaviour": "a", "offset": 1.5, "width": 4}
    pruned = told_trial(record(params, "pruned", 3.0, history), names, "score", rungs)
    assert (pruned.state, pruned.value, pruned.intermediate) == (PRUNED, None, {1: 1.0, 3: 3.0})
    # Pruned at an epoch that is not a rung (no rungs given): its last finite value.
    off_rung = told_trial(record(params, "pruned", 3.0, history), names, "score", ())
    assert off_rung.intermediate == {3: 3.0}
    nan = [{"epoch": 1, "score": float("nan")}]
    for status, hist in (("failed", []), ("diverged", nan), ("pruned", nan)):
        bad = told_trial(record(params, status, None, hist), names, "score", rungs)
        assert (bad.state, bad.value, bad.intermediate) == (FAIL, None, {})


def test_the_study_holds_the_told_trials_in_order_with_their_states():
    from optuna.trial import TrialState

    maker = round_maker(CONFIG)
    p = [
        {"behaviour": "a", "offset": 1.0, "width": 8, "act": "relu", "epochs": 3},
        {"behaviour": "bb", "offset": 2.0, "width": 16, "act": "relu", "epochs": 3},
        {"behaviour": "ccc", "offset": 3.0, "width": 32, "act": "relu", "epochs": 3},
    ]
    records = [
        record(p[0], "completed", 5.0, [{"epoch": 3, "score": 5.0}]),
        record(p[1], "pruned", 1.0, [{"epoch": 1, "score": 1.0}]),
        record(p[2], "failed"),
    ]
    told = maker.tell(records)
    study = build_study(maker.space, told, "max", SAMPLERS["tpe"].build(maker.options, 0))
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL]
    assert [t.value for t in trials] == [5.0, None, None]
    assert [t.intermediate_values for t in trials] == [{}, {1: 1.0}, {}]
    assert [t.params for t in trials] == [
        {"behaviour": "a", "offset": 1.0, "width": 8},
        {"behaviour": "bb", "offset": 2.0, "width": 16},
        {"behaviour": "ccc", "offset": 3.0, "width": 32},
    ]
    assert study.direction.name == "MAXIMIZE"


def test_a_round_is_the_same_from_the_same_records():
    maker = round_maker(CONFIG)
    first = maker.make(0, 4, [])
    records = finished(first, score)
    again = maker.make(1, 4, records)
    assert again == maker.make(1, 4, records)
    assert again["records"] == {
        "count": 4,
        "states": {"COMPLETE": 4, "PRUNED": 0, "FAIL": 0},
        "digest": records_digest(maker.tell(records)),
    }
    assert again["seed"] == round_seed(7, 1)
    assert [e["index"] for e in again["trials"]] == [0, 1, 2, 3]
    assert all(e["trial_id"] == trial_id(e["params"]) for e in again["trials"])
    assert all(e["params"]["act"] == "relu" and e["params"]["epochs"] == 3 for e in again["trials"])
    # The digest is of what was told, in order (the order can change TPE's suggestions).
    assert records_digest(maker.tell(records[::-1])) != again["records"]["digest"]
    # Distinct seeds per round: round 1 does not repeat round 0's random start-up.
    cold = maker.make(1, 4, [])
    assert {e["trial_id"] for e in cold["trials"]}.isdisjoint(
        e["trial_id"] for e in first["trials"]
    )


def test_a_round_is_bit_identical_in_a_fresh_process():
    """Optuna's suggestions compared as text (float repr) across two interpreters."""
    code = (
        "import json,sys; from snakesweep.search.sweep import round_maker; "
        f"m = round_maker(json.loads({json.dumps(json.dumps(CONFIG))})); "
        "r0 = m.make(0, 3, []); "
        "recs = [dict(trial_id=e['trial_id'], status='completed', final=float(i), params=e['params'], history=[]) "
        "for i, e in enumerate(r0['trials'])]; "
        "print(json.dumps([r0, m.make(1, 3, recs)], sort_keys=True))"
    )
    outs = [
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(REPO / "src"), "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    ]
    assert outs[0] == outs[1]
    assert len(json.loads(outs[0])[1]["trials"]) == 3


def test_after_a_round_where_every_trial_failed_the_sampler_starts_over_at_random():
    """Optuna's TPE leaves FAIL trials out of its model and of n_startup_trials: the round after
    an all-failed round suggests what a round with no records at all would."""
    maker = round_maker({**CONFIG, "tpe": {"n_startup_trials": 2}})
    first = maker.make(0, 3, [])
    failed = [record(e["params"], "failed", tid=e["trial_id"]) for e in first["trials"]]
    after = maker.make(1, 3, failed)
    assert after["records"]["states"] == {"COMPLETE": 0, "PRUNED": 0, "FAIL": 3}
    assert after["trials"] == maker.make(1, 3, [])["trials"]


def test_a_repeated_suggestion_is_asked_again_until_the_space_runs_out():
    config = {**CONFIG, "parameters": {"x": {"kind": "choice", "values": ["u", "v"]}}}
    maker = round_maker(config)
    first = maker.make(0, 3, [])
    assert sorted(e["params"]["x"] for e in first["trials"]) == ["u", "v"]
    assert first["size"] == 3 and first["duplicates"] >= 1
    records = [record(e["params"], "completed", 1.0, tid=e["trial_id"]) for e in first["trials"]]
    assert maker.make(1, 2, records)["trials"] == []


def test_round_files_of_a_sweep_are_read_back_and_planned_rounds_listed(tmp_path):
    config = {**CONFIG, "results_dir": str(tmp_path), "sweep": "s", "n_trials": 10, "round_size": 4}
    sweep = build_sweep(config)
    assert sweep.rounds.sizes == (4, 4, 2)
    assert [len(b.trial_ids) for b in sweep.brackets] == [4, 0, 0]
    assert sweep.rounds.written == frozenset()
    root = tmp_path / "s"
    write_round(round_path(root, 0), sweep.rounds.known[0])
    write_round(
        round_path(root, 1), round_maker(config).make(1, 4, finished(sweep.rounds.known[0], score))
    )
    again = build_sweep(config)
    assert again.rounds.written == frozenset({0, 1})
    assert again.rounds.known[0] == sweep.rounds.known[0]
    assert list(again.trials) == [
        e["trial_id"] for k in (0, 1) for e in read_rounds(root)[k]["trials"]
    ]
    assert [len(b.trial_ids) for b in again.brackets] == [4, 4, 0]


def test_a_written_round_refuses_other_search_settings(tmp_path):
    config = {**CONFIG, "results_dir": str(tmp_path), "sweep": "s", "n_trials": 4}
    write_round(round_path(tmp_path / "s", 0), build_sweep(config).rounds.known[0])
    changed = {**config, "tpe": {"n_startup_trials": 5}, "seed": 8}
    with pytest.raises(ConfigError) as info:
        build_sweep(changed)
    message = str(info.value)
    assert message.startswith("seed, tpe: differ from the settings round 0 was made with")
    assert "never rewritten" in message and str(tmp_path / "s" / "rounds") in message
    # The same range written with integer bounds is the same setting.
    same = {**config["parameters"], "offset": {"kind": "uniform", "low": 0, "high": 10}}
    assert build_sweep({**config, "parameters": same}).rounds.written == frozenset({0})
    # n_trials and round_size are not search settings: growing is allowed.
    assert build_sweep({**config, "n_trials": 12, "round_size": 2}).rounds.sizes == (4, 2, 2, 2, 2)


def test_settings_changes_names_the_keys():
    assert settings_changes({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}) == []
    assert settings_changes({"a": 1, "b": 2}, {"a": 1.0, "c": 2}) == ["a", "b", "c"]


def test_tpe_options_are_optunas_and_the_schemas_defaults():
    import inspect

    import yaml
    from optuna.samplers import TPESampler

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    block = schema["properties"]["tpe"]["properties"]
    assert {k: v["default"] for k, v in block.items()} == dict(TPE.defaults)
    signature = inspect.signature(TPESampler.__init__).parameters
    for name in ("n_startup_trials", "n_ei_candidates", "constant_liar"):
        assert signature[name].default == TPE.defaults[name]
    # Optuna's None means True with one objective (what a sweep has).
    assert signature["multivariate"].default is None and TPE.defaults["multivariate"] is True
    from snakesweep.search.sweep import DEFAULT_ROUND_SIZE

    assert schema["properties"]["round_size"]["default"] == DEFAULT_ROUND_SIZE


def test_parameters_are_asked_one_by_one_in_the_space_order():
    """Define-by-run: each parameter is a separate suggest call, in order; fixed values are
    part of the trial without being asked."""
    import optuna

    maker = round_maker(CONFIG)
    from snakesweep.search.rounds import ask_params

    asked = []

    class Recorder:
        def __getattr__(self, name):
            def suggest(param, *args, **kwargs):
                asked.append((name, param))
                return {"suggest_categorical": "a", "suggest_float": 1.0, "suggest_int": 2}[name]

            return suggest

    assert ask_params(Recorder(), maker.space) == {
        "act": "relu",
        "behaviour": "a",
        "offset": 1.0,
        "width": 2,
    }
    assert asked == [
        ("suggest_categorical", "behaviour"),
        ("suggest_float", "offset"),
        ("suggest_int", "width"),
    ]
    assert optuna.__version__ == "5.0.0"
    assert [p.name for p in parse_parameters(CONFIG["parameters"], "tpe")] == [
        "act",
        "behaviour",
        "offset",
        "width",
    ]


CONDITIONAL = {
    **CONFIG,
    "parameters": {
        "optimizer": {"kind": "choice", "values": ["adam", "sgd"]},
        "momentum": {"kind": "uniform", "low": 0.8, "high": 0.99, "when": {"optimizer": "sgd"}},
        "lr": {"kind": "loguniform", "low": 0.001, "high": 0.1},
    },
}


def test_conditional_parameters_are_asked_only_when_their_condition_holds():
    """tpe walks parents first and skips a parameter whose ``when`` is false: an adam trial has
    no momentum, is told without it, and its id does not hold it."""
    maker = round_maker(CONDITIONAL)
    assert maker.options["group"] is True  # multivariate TPE models the groups that occur
    records = []
    for k in range(4):
        made = maker.make(k, 4, records)
        for entry in made["trials"]:
            params = entry["params"]
            assert ("momentum" in params) == (params["optimizer"] == "sgd"), params
            assert entry["trial_id"] == trial_id(params)
            score = params["lr"] * (10 if params["optimizer"] == "sgd" else 1)
            records.append(record(params, final=score, history=[{"epoch": 3, "score": score}]))
    optimizers = {r["params"]["optimizer"] for r in records}
    assert optimizers == {"adam", "sgd"}
    assert maker.make(4, 4, records) == maker.make(4, 4, records)  # reproducible


def test_group_follows_multivariate_and_the_space():
    plain = round_maker(CONFIG)
    assert plain.options["group"] is False
    off = round_maker({**CONDITIONAL, "tpe": {"multivariate": False}})
    assert off.options["group"] is False
    assert round_maker({**CONFIG, "tpe": {"group": True}}).options["group"] is True
