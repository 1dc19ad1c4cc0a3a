"""The workflow end to end: real snakemake runs of small sweeps."""

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, demo_config, echo_config, read_json, read_leaderboard, run_workflow

pytestmark = pytest.mark.e2e


def train_jobs_run(proc) -> int:
    """How many training jobs (one trial, a PBT member or a pack) Snakemake ran, from its
    job-stats table (the first one: a run may print it again at its end)."""
    text = proc.stdout + proc.stderr
    counts: dict[str, int] = {}
    for rule, n in re.findall(r"^(train_trial|train_member|train_pack)\s+(\d+)$", text, re.M):
        counts.setdefault(rule, int(n))
    return sum(counts.values())


def test_demo_sweep_end_to_end(tmp_path):
    config = demo_config(n_trials=3, epochs=2, sweep="small", results_dir=str(tmp_path / "results"))
    proc = run_workflow(tmp_path, config)
    root = tmp_path / "results" / "small"
    rows = read_leaderboard(root)
    assert len(rows) == 3
    assert [r["status"] for r in rows] == ["completed"] * 3
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]

    records = {}
    for row in rows:
        trial = root / "trials" / row["trial_id"]
        record = read_json(trial / "result-2.json")
        records[row["trial_id"]] = record
        metrics = [json.loads(line) for line in (trial / "metrics.jsonl").read_text().splitlines()]
        assert [m["epoch"] for m in metrics] == [1, 2]
        assert record["final"] == metrics[-1]["val_accuracy"] == float(row["final"])
        assert record["epochs_done"] == 2 and record["restarts"] == 0
        assert read_json(trial / "params.json")["params"] == record["params"]
        assert Path(tmp_path / record["log"]).read_text().count("epoch 2:") == 1

    # The leaderboard is sorted best first and best.yaml holds the truly best trial.
    finals = [float(r["final"]) for r in rows]
    assert finals == sorted(finals, reverse=True)
    best_id = max(records, key=lambda t: (records[t]["final"], [-ord(c) for c in t]))
    best_text = (root / "best.yaml").read_text()
    best = yaml.safe_load(best_text)
    assert f"trial_id: {best_id}" in best_text
    expected = {k: v for k, v in records[best_id]["params"].items() if k != "epochs"}
    assert {k: v["value"] for k, v in best["parameters"].items()} == expected
    assert best["epochs"] == 2 and best["metric"] == "val_accuracy"
    # The run ends by printing the top of the leaderboard.
    assert "snakesweep: small: 3 trials (3 completed)" in proc.stdout
    assert best_id in proc.stdout

    # Running a finished sweep again does nothing.
    again = run_workflow(tmp_path, config)
    assert "Nothing to be done" in again.stdout + again.stderr

    # Growing n_trials keeps the first trials and trains only the new one.
    mtimes = {t: (root / "trials" / t / "result-2.json").stat().st_mtime for t in records}
    grown = run_workflow(tmp_path, {**config, "n_trials": 4})
    assert train_jobs_run(grown) == 1
    rows4 = read_leaderboard(root)
    assert len(rows4) == 4 and set(records) < {r["trial_id"] for r in rows4}
    for t, mtime in mtimes.items():
        assert (root / "trials" / t / "result-2.json").stat().st_mtime == mtime

    # A different budget is a different trial: nothing trained for 2 epochs is reused.
    plan = run_workflow(tmp_path, {**config, "epochs": 3}, "-n")
    assert train_jobs_run(plan) == 3
    for t in records:
        assert f"trials/{t}/" not in plan.stdout


HOSTILE = ["a; touch PWNED", "$(touch PWNED)", "`touch PWNED`", 'x\' "y" && touch PWNED #', "-rf"]


def test_parameter_values_reach_the_script_verbatim(tmp_path):
    run_workflow(tmp_path, echo_config(tmp_path, HOSTILE))
    root = tmp_path / "results" / "echo"
    seen = []
    for row in read_leaderboard(root):
        assert row["status"] == "completed", row
        argv = read_json(root / "trials" / row["trial_id"] / "argv.json")
        (value,) = [a.removeprefix("--behaviour=") for a in argv if a.startswith("--behaviour=")]
        assert row["param_behaviour"] == value
        seen.append(value)
    assert sorted(seen) == sorted(HOSTILE)
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()


def test_failures_are_recorded_and_the_sweep_still_aggregates(tmp_path):
    proc = run_workflow(tmp_path, echo_config(tmp_path, ["good", "crash", "wrong_metric", "nan"]))
    root = tmp_path / "results" / "echo"
    rows = {r["param_behaviour"]: r for r in read_leaderboard(root)}
    assert rows["good"]["status"] == "completed" and rows["good"]["rank"] == "1"

    crash = rows["crash"]
    assert crash["status"] == "failed"
    assert "RuntimeError: deliberate crash in user code" in crash["error"]
    assert "deliberate crash" in (tmp_path / crash["log"]).read_text()
    segments = (root / "trials" / crash["trial_id"] / "segments.jsonl").read_text().splitlines()
    assert len(segments) == 2  # one start, one end: failed at once, never retried

    wrong = rows["wrong_metric"]
    assert wrong["status"] == "failed"
    assert "metric 'score' was never reported" in wrong["error"] and "accuracy" in wrong["error"]
    assert wrong["final"] == ""

    assert rows["nan"]["status"] == "diverged"
    # Failed trials are named with their log at the end of the run.
    assert f"FAILED {crash['trial_id']}" in proc.stdout and crash["log"] in proc.stdout
    best = yaml.safe_load((root / "best.yaml").read_text())
    assert best["parameters"]["behaviour"]["value"] == "good"


def test_config_overrides_on_the_command_line(tmp_path):
    config = demo_config(results_dir=str(tmp_path / "results"))
    plan = run_workflow(tmp_path, config, "-n", "--config", "n_trials=5", "seed=2", "epochs=3")
    assert train_jobs_run(plan) == 5
    assert "result-3.json" in plan.stdout and "result-6.json" not in plan.stdout


def test_example_sweeps_plan_cleanly(tmp_path):
    for example in sorted((REPO / "config" / "examples").glob("*.yaml")):
        config = yaml.safe_load(example.read_text())
        config.update(
            results_dir=str(tmp_path / "results"), script=str(REPO / "scripts" / "train.py")
        )
        plan = run_workflow(tmp_path / example.stem, config, "-n")
        assert train_jobs_run(plan) > 0, example.name


@pytest.mark.parametrize(
    "example",
    ["demo", *sorted(p.stem for p in (REPO / "config" / "examples").glob("*.yaml"))],
)
@pytest.mark.parametrize("pack", [1, 3])
def test_the_workflow_lints_clean_for_every_shipped_sweep(tmp_path, example, pack):
    """`snakemake --lint` finds nothing, with one job per trial and with packs (their rules
    differ), for the demo and every example."""
    path = REPO / "config" / ("config.yaml" if example == "demo" else f"examples/{example}.yaml")
    config = yaml.safe_load(path.read_text())
    config.update(
        results_dir=str(tmp_path / "results"),
        script=str(REPO / "scripts" / "train.py"),
        pack=pack,
    )
    proc = run_workflow(tmp_path, config, "--lint")
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
