"""What a sweep in rounds shows: rounds in the status, each trial's round in the tables, the
metric against trial number with the rounds marked and the best so far."""

import json

from snakesweep.report.plots import plot_metric_by_trial
from snakesweep.report.status import scan_sweep
from snakesweep.report.status_text import format_status
from snakesweep.report.tables import load
from snakesweep.store.round_file import round_path, write_round

IDS = ["aaaaaaaaaaa0", "aaaaaaaaaaa1", "bbbbbbbbbbb0", "bbbbbbbbbbb1"]


def make_sweep(root, finals):
    """Round 0: trials 0, 1; round 1: trials 2, 3. ``finals[i]``: trial i's final metric, or
    None for a trial without a folder (pending)."""
    for k, ids in enumerate((IDS[:2], IDS[2:])):
        trials = [
            {"index": i, "trial_id": t, "params": {"x": float(k * 2 + i), "epochs": 2}}
            for i, t in enumerate(ids)
        ]
        write_round(round_path(root, k), {"round": k, "size": 2, "trials": trials})
    for i, (tid, final) in enumerate(zip(IDS, finals, strict=True)):
        if final is None:
            continue
        folder = root / "trials" / tid
        folder.mkdir(parents=True)
        params = {"x": float(i), "epochs": 2}
        (folder / "params.json").write_text(json.dumps({"params": params}))
        record = {
            "trial_id": tid,
            "status": "completed",
            "metric": "score",
            "mode": "max",
            "final": final,
            "best": final,
            "best_epoch": 2,
            "epochs_done": 2,
            "budget": 2,
            "params": params,
            "history": [{"epoch": 1, "score": final / 2}, {"epoch": 2, "score": final}],
        }
        (folder / "result-2.json").write_text(json.dumps(record))


def test_status_counts_rounds_done_running_and_to_come(tmp_path):
    make_sweep(tmp_path, [1.0, 3.0, 2.0, None])
    status = scan_sweep(tmp_path, planned={}, rounds_planned=3)
    assert status.rounds == {"done": 1, "running": 1, "to_come": 1, "planned": 3}
    # The trials of the round files belong to the plan: none is stale, the missing one pends.
    assert status.stale == [] and status.planned == 4
    assert {t.trial_id: (t.round, t.state) for t in status.trials} == {
        IDS[0]: (0, "completed"),
        IDS[1]: (0, "completed"),
        IDS[2]: (1, "completed"),
        IDS[3]: (1, "pending"),
    }
    assert "rounds: 1 done, 1 running, 1 to come (of 3)" in format_status(status)
    assert status.to_json()["rounds"]["to_come"] == 1
    # Without a plan the rounds to come are unknown.
    assert scan_sweep(tmp_path).rounds == {
        "done": 1,
        "running": 1,
        "to_come": None,
        "planned": None,
    }


def test_load_gives_each_trials_round(tmp_path):
    make_sweep(tmp_path, [1.0, 3.0, 2.0, 4.0])
    trials = load(tmp_path, "score", "max").trials
    assert dict(zip(trials["trial_id"], trials["round"], strict=True)) == dict(
        zip(IDS, [0, 0, 1, 1], strict=True)
    )
    assert str(trials["round"].dtype) == "Int64"


def test_metric_against_trial_number_marks_rounds_and_draws_the_best_so_far(tmp_path):
    make_sweep(tmp_path, [1.0, 3.0, 2.0, 4.0])
    tables = load(tmp_path, "score", "max")
    drawn = plot_metric_by_trial(
        tables, tmp_path / "by_trial.svg", "score", "max", order=IDS, budget=2
    )
    assert drawn == {"shown": 4, "hidden": 0, "rounds": [0, 1], "best_so_far": [1.0, 3.0, 3.0, 4.0]}
    svg = (tmp_path / "by_trial.svg").read_text()
    assert "round 1" in svg and "best so far" in svg
    low = plot_metric_by_trial(tables, tmp_path / "min.svg", "score", "min", order=IDS, budget=2)
    assert low["best_so_far"] == [1.0, 1.0, 1.0, 1.0]


def test_a_sweep_without_rounds_is_one_round(tmp_path):
    make_sweep(tmp_path, [1.0, 3.0, 2.0, 4.0])
    for path in (tmp_path / "rounds").iterdir():
        path.unlink()
    tables = load(tmp_path, "score", "max")
    assert tables.rounds is None and tables.trials["round"].isna().all()
    drawn = plot_metric_by_trial(tables, tmp_path / "p.svg", "score", "max", order=IDS[::-1])
    assert drawn["rounds"] == [] and drawn["best_so_far"] == [4.0, 4.0, 4.0, 4.0]
    assert "one round" in (tmp_path / "p.svg").read_text()


def test_best_yaml_of_a_tpe_sweep_is_a_one_point_grid():
    from conftest import REPO, demo_config

    from snakesweep.config_check import check_config
    from snakesweep.report.results import best_config

    sweep = demo_config(strategy="tpe", round_size=2, tpe={"n_startup_trials": 3})
    record = {
        "params": {
            "lr": 0.01,
            "batch_size": 64,
            "width": 32,
            "depth": 1,
            "weight_decay": 1e-5,
            "optimizer": "adam",
            "seed": 0,
            "epochs": 6,
        }
    }
    best = best_config(record, "demo", "val_accuracy", "max", sweep)
    assert best["strategy"] == "grid" and "tpe" not in best and "round_size" not in best
    assert {k: v["value"] for k, v in best["parameters"].items()} == {
        k: v for k, v in record["params"].items() if k != "epochs"
    }
    check_config(best, REPO / "workflow" / "schemas" / "config.schema.yaml")
