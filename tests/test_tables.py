"""snakesweep.load(): a sweep folder, written by the real launcher, read as pandas tables."""

import pandas as pd
from conftest import ECHO_SCRIPT, run_echo_trial

import snakesweep
from snakesweep.job.launch import TrialJob, run_segment
from snakesweep.store.trial_folder import result_path


def test_load_gives_one_row_per_trial_and_one_per_trial_and_epoch(tmp_path):
    root = tmp_path / "results" / "s"
    run_echo_trial(root, "aaaaaaaaaaaa", "ok")  # score 2, 4
    run_echo_trial(root, "bbbbbbbbbbbb", "good")  # score 4, 8
    run_echo_trial(root, "cccccccccccc", "crash")
    tables = snakesweep.load(root)
    assert (tables.metric, tables.mode) == ("score", "max")
    trials = tables.trials
    assert list(trials["trial_id"]) == ["bbbbbbbbbbbb", "aaaaaaaaaaaa", "cccccccccccc"]
    assert list(trials["status"]) == ["completed", "completed", "failed"]
    assert list(trials["final"][:2]) == [8.0, 4.0] and pd.isna(trials["final"][2])
    assert list(trials["best_epoch"][:2]) == [2, 2]
    assert list(trials["epochs"]) == [2, 2, 0]
    assert list(trials["segments"]) == [1, 1, 1] and list(trials["restarts"]) == [0, 0, 0]
    assert list(trials["params_behaviour"]) == ["good", "ok", "crash"]
    assert list(trials["params_epochs"]) == [2, 2, 2]
    assert (trials["wall_time_s"] > 0).all()
    assert "deliberate crash" in trials["error"][2]
    metrics = tables.metrics
    assert list(metrics.columns[:2]) == ["trial_id", "epoch"]
    assert metrics[["trial_id", "epoch", "score"]].to_dict("records") == [
        {"trial_id": "aaaaaaaaaaaa", "epoch": 1, "score": 2.0},
        {"trial_id": "aaaaaaaaaaaa", "epoch": 2, "score": 4.0},
        {"trial_id": "bbbbbbbbbbbb", "epoch": 1, "score": 4.0},
        {"trial_id": "bbbbbbbbbbbb", "epoch": 2, "score": 8.0},
    ]
    # the tables answer the usual questions in one line
    best = trials.loc[trials["status"] == "completed"].iloc[0]
    assert best["trial_id"] == "bbbbbbbbbbbb"
    assert metrics.groupby("trial_id")["score"].max().to_dict() == {
        "aaaaaaaaaaaa": 4.0,
        "bbbbbbbbbbbb": 8.0,
    }


def test_load_of_an_empty_sweep_has_the_columns_and_no_rows(tmp_path):
    root = tmp_path / "results" / "empty"
    (root / "trials").mkdir(parents=True)
    tables = snakesweep.load(root)
    assert tables.trials.empty and list(tables.trials.columns[:2]) == ["trial_id", "status"]
    assert tables.metrics.empty and list(tables.metrics.columns) == ["trial_id", "epoch"]


def test_a_trial_two_hyperband_brackets_share_is_read_from_its_newest_record(tmp_path):
    """Trained to 2 epochs in one bracket, then to 1 in another (its script rewrote
    metrics.jsonl): the tables show the 2-epoch record's epochs, and no restart."""
    root = tmp_path / "results" / "s"
    trial_dir = root / "trials" / "aaaaaaaaaaaa"
    run_echo_trial(root, "aaaaaaaaaaaa", "ok", epochs=2)
    revisit = TrialJob(
        trial_id="aaaaaaaaaaaa",
        trial_dir=trial_dir,
        params={"behaviour": "ok", "epochs": 2},
        script=str(ECHO_SCRIPT),
        budget=1,
        metric="score",
        mode="max",
        result_path=result_path(trial_dir, 1),
        log_path=root / "logs" / "aaaaaaaaaaaa-1ep.log",
    )
    assert run_segment(revisit) == 0
    tables = snakesweep.load(root, trials=["aaaaaaaaaaaa"])
    (row,) = tables.trials.to_dict("records")
    assert (row["status"], row["final"], row["epochs"]) == ("completed", 4.0, 2)
    assert (row["segments"], row["restarts"]) == (2, 0)
    assert list(tables.metrics["epoch"]) == [1, 2]
    assert str(tables.trials["epochs"].dtype) == "Int64"
    # a planned trial without a folder is pending; one on disk but not planned is left out
    planned = snakesweep.load(root, trials=["bbbbbbbbbbbb"]).trials
    assert planned[["trial_id", "status"]].to_dict("records") == [
        {"trial_id": "bbbbbbbbbbbb", "status": "pending"}
    ]
