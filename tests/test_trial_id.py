import pytest

from snakesweep.search.sweep import build_sweep
from snakesweep.search.trial_id import canonical_json, trial_id

BASE = {"lr": 0.01, "batch_size": 64, "optimizer": "adam", "epochs": 6}


def test_id_is_pinned():
    # The id scheme is a public contract: results folders are named by it.
    assert trial_id(BASE) == trial_id(dict(reversed(list(BASE.items()))))
    assert trial_id(BASE) == "838fa7879899"


def test_id_ignores_key_order_but_not_values():
    assert trial_id({"a": 1, "b": 2}) == trial_id({"b": 2, "a": 1})
    assert trial_id({"a": 1}) != trial_id({"a": 2})
    assert trial_id({"a": 1}) != trial_id({"a": 1.0})  # the script receives "1" vs "1.0"
    assert trial_id({"a": "1"}) != trial_id({"a": 1})


def test_changing_epochs_changes_the_id():
    assert trial_id({**BASE, "epochs": 7}) != trial_id(BASE)


def test_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="not finite"):
        canonical_json({"lr": float("nan")})


def config(**overrides):
    base = {
        "metric": "val_accuracy",
        "mode": "max",
        "epochs": 4,
        "strategy": "random",
        "n_trials": 8,
        "seed": 0,
        "parameters": {
            "lr": {"kind": "loguniform", "low": 1e-3, "high": 1.0},
            "depth": {"kind": "choice", "values": [1, 2]},
            "opt": {"kind": "fixed", "value": "adam"},
        },
    }
    base.update(overrides)
    return base


def test_ids_do_not_depend_on_position():
    small = build_sweep(config(n_trials=8)).trial_ids
    large = build_sweep(config(n_trials=16)).trial_ids
    assert len(small) == 8 and len(large) == 16
    assert large[:8] == small


def test_fixed_values_and_epochs_are_part_of_the_id():
    base = set(build_sweep(config()).trial_ids)
    other_fixed = config()
    other_fixed["parameters"]["opt"] = {"kind": "fixed", "value": "sgd"}
    assert base.isdisjoint(build_sweep(other_fixed).trial_ids)
    assert base.isdisjoint(build_sweep(config(epochs=5)).trial_ids)


def test_trial_params_include_epochs():
    sweep = build_sweep(config())
    for tid, params in sweep.trials.items():
        assert params["epochs"] == 4
        assert trial_id(params) == tid
