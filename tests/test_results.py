"""The results layer: ranking, the best trial, leaderboard rows and CSV, numbers, best.yaml,
and the leaderboard built from the pandas tables of a real sweep folder."""

import csv
import math

import pytest
from conftest import run_echo_trial

from snakesweep.report.leaderboard import (
    finished_trials,
    summary,
    sweep_has_result,
    write_leaderboard,
)
from snakesweep.report.results import (
    best_config,
    best_epoch,
    best_trial,
    leaderboard_rows,
    rank,
    status_counts,
    write_csv,
)
from snakesweep.store.number_format import format_number


def rec(tid, status, final, epochs_done=3, **extra):
    return {
        "trial_id": tid,
        "status": status,
        "final": final,
        "epochs_done": epochs_done,
        "params": {"lr": 0.1, "epochs": 3},
        **extra,
    }


def test_best_epoch_skips_non_finite_values_and_keeps_the_first_best():
    history = [
        {"epoch": 1, "acc": 0.5},
        {"epoch": 2, "acc": float("nan")},
        {"epoch": 3, "acc": 0.7},
        {"epoch": 4, "acc": 0.7},
        {"epoch": 5, "acc": True},  # a boolean is not a number here
    ]
    assert best_epoch(history, "acc", "max") == (0.7, 3)
    assert best_epoch(history, "acc", "min") == (0.5, 1)
    assert best_epoch([{"epoch": 1, "acc": math.inf}], "acc", "max") == (None, None)


def test_rank_by_status_then_finite_value_then_id():
    records = [
        rec("b", "completed", 0.5),
        rec("a", "completed", 0.5),
        rec("c", "completed", None),
        rec("d", "failed", None),
        rec("e", "pruned", 0.9),
        rec("f", "completed", 0.8),
    ]
    assert [r["trial_id"] for r in rank(records, "max")] == ["f", "a", "b", "c", "e", "d"]
    assert [r["trial_id"] for r in rank(records, "min")][:3] == ["a", "b", "f"]


def test_best_trial_is_a_completed_finite_one_at_the_full_budget():
    records = [
        rec("a", "pruned", 0.99, epochs_done=1),
        rec("b", "completed", 0.7),
        rec("c", "completed", 0.9, epochs_done=2),  # a rung's record: not the full budget
        rec("d", "diverged", None),
    ]
    assert best_trial(records, "max", budget=3)["trial_id"] == "b"
    assert best_trial(records, "max")["trial_id"] == "c"
    assert best_trial(records[:1] + records[3:], "max") is None
    assert status_counts(records) == {"completed": 2, "pruned": 1, "diverged": 1, "failed": 0}


def test_leaderboard_rows_and_csv_keep_their_columns_and_values(tmp_path):
    records = [rec("a", "completed", 0.25, best=0.3, rung=0, error=None, restarts=1)]
    rows = leaderboard_rows(records, "max")
    assert list(rows[0]) == [
        "rank",
        "trial_id",
        "status",
        "final",
        "best",
        "best_epoch",
        "epochs_done",
        "budget",
        "wall_time_s",
        "restarts",
        "rung",
        "param_epochs",
        "param_lr",
        "error",
        "log",
    ]
    write_csv(rows, tmp_path / "lb.csv")
    text = (tmp_path / "lb.csv").read_text()
    # floats as repr (no rounding), None as empty
    assert text.splitlines()[1] == "1,a,completed,0.25,0.3,,3,,,1,0,3,0.1,,"


def test_format_number_is_four_significant_digits_or_a_dash():
    assert [format_number(v) for v in (None, "", 0.123456, 12345.6, 3, "x")] == [
        "-",
        "-",
        "0.1235",
        "1.235e+04",
        "3",
        "x",
    ]


def test_best_config_fixes_the_parameters_and_drops_pruning():
    sweep_config = {"script": "train.py", "n_trials": 8, "pruning": {"method": "sha"}}
    config = best_config(rec("a", "completed", 0.5), "demo", "acc", "max", sweep_config)
    assert config["sweep"] == "demo-best" and config["epochs"] == 3
    assert config["parameters"] == {"lr": {"kind": "fixed", "value": 0.1}}
    assert config["pruning"] == {"method": "none"} and "n_trials" not in config
    assert sweep_config["pruning"] == {"method": "sha"}  # the sweep's own config is untouched


@pytest.fixture
def small_sweep(tmp_path):
    """Three trials trained by the real launcher; a fourth folder from an older config."""
    root = tmp_path / "results" / "s"
    jobs = {b: run_echo_trial(root, t, b) for t, b in [("a" * 12, "ok"), ("b" * 12, "good")]}
    jobs["crash"] = run_echo_trial(root, "c" * 12, "crash")
    run_echo_trial(root, "d" * 12, "stale")
    return root, jobs


def test_the_leaderboard_is_made_from_the_tables_of_the_planned_trials(small_sweep, tmp_path):
    root, jobs = small_sweep
    planned = ["a" * 12, "b" * 12, "c" * 12]
    records, not_finished = finished_trials(root, planned, "score", "max", 2)
    assert not_finished == 0 and [r["trial_id"] for r in records] == ["b" * 12, "a" * 12, "c" * 12]
    write_leaderboard(
        root, planned, tmp_path / "lb.csv", tmp_path / "best.yaml", "s", "score", "max", 2
    )
    with open(tmp_path / "lb.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["trial_id"] for r in rows] == planned[1::-1] + ["c" * 12]  # the stale one is not
    good = rows[0]
    assert (good["status"], good["final"], good["best"], good["best_epoch"]) == (
        "completed",
        "8.0",
        "8.0",
        "2",
    )
    assert (good["epochs_done"], good["budget"], good["restarts"], good["rung"]) == (
        "2",
        "2",
        "0",
        "0",
    )
    assert good["log"] == str(jobs["good"].log_path)
    assert (good["param_behaviour"], good["param_epochs"]) == ("good", "2")
    assert rows[2]["status"] == "failed" and "deliberate crash" in rows[2]["error"]
    assert "trial bbbbbbbbbbbb" in (tmp_path / "best.yaml").read_text()
    assert sweep_has_result(root, planned, "score", "max", 2)
    assert not sweep_has_result(root, ["c" * 12], "score", "max", 2)
    text = summary(root, [*planned, "e" * 12], "score", "max", 2)
    assert "s: 3 trials (2 completed, 1 failed, 1 not finished)" in text
    assert f"FAILED {'c' * 12}: " in text
    assert "retry the failed trials: snakemake --config retry=failed" in text
