"""Retrying failed trials after a fix (issue 26): ``--config retry=failed``, a trial started
over, ``--forcerun`` on the training rule, and a retry interrupted half-way.

The sweeps run tests/fixtures/flaky_train.py: a 2-trial grid (steady, flaky) of 2 epochs whose
flaky trial checkpoints epoch 1 and then fails with a full disk while the file ``broken``
exists, and trains to the end once it is gone.
"""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import flaky_config, read_json, read_leaderboard, run_echo_trial, run_workflow

from snakesweep.cli import main as snakesweep_main
from snakesweep.job.launch import _log_tail, run_segment
from snakesweep.snakemake_glue import take_retry_switch
from snakesweep.store.retry_request import read_requests, wanted_request, write_request

RETRY = ("--config", "retry=failed")
RESUMED = "resumed from ckpt-"


def trial_ids(root: Path) -> tuple[str, str]:
    """(steady, flaky) trial ids, from the trial folders' params."""
    kinds = {
        read_json(p)["params"]["kind"]: read_json(p)["trial_id"]
        for p in root.glob("trials/*/params.json")
    }
    return kinds["steady"], kinds["flaky"]


def record(root: Path, trial_id: str) -> dict:
    return read_json(root / "trials" / trial_id / "result-2.json")


def ends(root: Path, trial_id: str) -> list[str]:
    """The outcome of each segment the trial ran, in order."""
    lines = (root / "trials" / trial_id / "segments.jsonl").read_text().splitlines()
    return [e["outcome"] for e in map(json.loads, lines) if e["event"] == "end"]


def jobs_run(proc, rule: str) -> int:
    """How many jobs of ``rule`` Snakemake ran, from its job-stats table."""
    match = re.search(rf"^{rule}\s+(\d+)$", proc.stdout + proc.stderr, re.M)
    return int(match.group(1)) if match else 0


def nothing_to_do(proc) -> bool:
    return "Nothing to be done" in proc.stdout + proc.stderr


def best_trial(root: Path) -> str:
    return yaml.safe_load((root / "best.yaml").read_text())["parameters"]["kind"]["value"]


def status_counts(root: Path) -> dict:
    out = io.StringIO()
    assert snakesweep_main(["status", str(root), "--json"], out) == 0
    return json.loads(out.getvalue())["counts"]


def first_run(tmp_path: Path, config: dict) -> tuple[Path, str, str]:
    """Run the sweep while its cause of failure is there: steady completes, flaky fails."""
    (tmp_path / "broken").touch()
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "flaky"
    steady, flaky = trial_ids(root)
    failed = record(root, flaky)
    assert failed["status"] == "failed" and failed["epochs_done"] == 1
    assert "OSError: [Errno 28] No space left on device" in failed["error"]
    assert record(root, steady)["status"] == "completed"
    assert (root / "trials" / flaky / "checkpoints").is_dir()
    return root, steady, flaky


# -- the one documented way: --config retry=failed -----------------------------------------


@pytest.mark.e2e
def test_retry_failed_retrains_only_the_failed_trial_from_its_checkpoint(tmp_path):
    config = flaky_config(tmp_path)
    root, steady, flaky = first_run(tmp_path, config)
    steady_segments = (root / "trials" / steady / "segments.jsonl").read_text()
    first = record(root, flaky)
    assert best_trial(root) == "steady"
    curves = (root / "plots" / "learning_curves.svg").read_bytes()
    assert status_counts(root)["failed"] == 1

    # A plain run never retrains a failed trial.
    assert nothing_to_do(run_workflow(tmp_path, config))

    # Retried while the cause is still there: it fails again, from its checkpoint, and is
    # recorded again with the new error; the request keeps the record it replaced.
    proc = run_workflow(tmp_path, config, *RETRY)
    assert jobs_run(proc, "train_trial") == 1 and jobs_run(proc, "retry_request") == 1
    second = record(root, flaky)
    assert second["status"] == "failed" and second["segments"] == 2
    assert second["error"] != first["error"] and RESUMED in second["error"]
    assert "No space left on device" in second["error"]
    request = read_json(root / "retries" / f"{flaky}-2ep-s1.json")
    assert request["replaces"] == first
    assert (root / "trials" / steady / "segments.jsonl").read_text() == steady_segments

    # The cause fixed: the retry resumes at epoch 1's checkpoint and completes the trial.
    (tmp_path / "broken").unlink()
    proc = run_workflow(tmp_path, config, *RETRY)
    assert jobs_run(proc, "train_trial") == 1
    done = record(root, flaky)
    assert done["status"] == "completed" and done["epochs_done"] == 2 and done["error"] is None
    assert [row["epoch"] for row in done["history"]] == [1, 2]
    assert done["history"][0] == first["history"][0]  # epoch 1 was not trained again
    assert ends(root, flaky) == ["failed", "failed", "completed"]
    log = Path(done["log"]).read_text()
    assert log.count(RESUMED) == 2 and "resumed from ckpt-" in log.split("segment 3 (budget")[-1]
    assert (root / "trials" / steady / "segments.jsonl").read_text() == steady_segments
    assert sorted(p.name for p in (root / "retries").iterdir()) == [
        f"{flaky}-2ep-s1.json",
        f"{flaky}-2ep-s2.json",
    ]

    # Leaderboard, best.yaml, plots and status follow.
    rows = read_leaderboard(root)
    assert [(r["trial_id"], r["status"]) for r in rows] == [
        (flaky, "completed"),
        (steady, "completed"),
    ]
    assert best_trial(root) == "flaky"
    assert (root / "plots" / "learning_curves.svg").read_bytes() != curves
    assert status_counts(root)["completed"] == 2 and status_counts(root)["failed"] == 0

    # Nothing left to retry: neither a retry nor a plain run does anything.
    assert nothing_to_do(run_workflow(tmp_path, config, *RETRY))
    assert nothing_to_do(run_workflow(tmp_path, config))


# -- the three ways of issue 26 --------------------------------------------------------------


@pytest.mark.e2e
def test_forcerun_a_deleted_record_and_a_deleted_folder_train_again(tmp_path):
    config = flaky_config(tmp_path)
    root, steady, flaky = first_run(tmp_path, config)
    steady_segments = (root / "trials" / steady / "segments.jsonl").read_text()
    steady_record = record(root, steady)

    # 3. --forcerun train_trial removed every record and log, then crashed the launcher
    # (_classify -> _log_tail: FileNotFoundError). Now: the failed trial is trained again (it
    # fails again, cause still there); the completed one only has its record rewritten.
    proc = run_workflow(tmp_path, config, "--forcerun", "train_trial")
    assert "FileNotFoundError" not in proc.stdout + proc.stderr
    assert ends(root, flaky) == ["failed", "failed"]
    assert record(root, flaky)["status"] == "failed"
    assert "No space left on device" in record(root, flaky)["error"]
    assert (root / "trials" / steady / "segments.jsonl").read_text() == steady_segments
    assert record(root, steady) == steady_record
    assert f"trial {steady} already finished at 2 epochs" in proc.stderr

    # 1. The failed trial's record deleted: was "Nothing to be done"; now a plain run trains
    # it again, from its checkpoint, and the leaderboard follows.
    (tmp_path / "broken").unlink()
    (root / "trials" / flaky / "result-2.json").unlink()
    proc = run_workflow(tmp_path, config)
    assert jobs_run(proc, "train_trial") == 1 and jobs_run(proc, "leaderboard") == 1
    assert record(root, flaky)["status"] == "completed"
    assert ends(root, flaky) == ["failed", "failed", "completed"]
    assert RESUMED in Path(record(root, flaky)["log"]).read_text().split("segment 3 (budget")[-1]
    assert {r["status"] for r in read_leaderboard(root)} == {"completed"}

    # 2. A trial's folder deleted: was "Nothing to be done", and the leaderboard kept listing
    # it; now it is trained afresh (one segment, a fresh log) with the same result.
    shutil.rmtree(root / "trials" / steady)
    proc = run_workflow(tmp_path, config)
    assert jobs_run(proc, "train_trial") == 1
    again = record(root, steady)
    assert ends(root, steady) == ["completed"] and again["history"] == steady_record["history"]
    assert Path(again["log"]).read_text().count("=== snakesweep trial") == 1
    assert [r["trial_id"] for r in read_leaderboard(root)] == [flaky, steady]
    assert nothing_to_do(run_workflow(tmp_path, config))


# -- packed trials, and a retry interrupted after its request ---------------------------------


@pytest.mark.e2e
def test_a_packed_retry_interrupted_after_its_request_is_finished_by_a_plain_run(tmp_path):
    config = flaky_config(tmp_path, pack=2)
    root, steady, flaky = first_run(tmp_path, config)
    steady_segments = (root / "trials" / steady / "segments.jsonl").read_text()
    first = record(root, flaky)
    (tmp_path / "broken").unlink()

    # Stopped right after the request was written: the failed record moved into it.
    run_workflow(tmp_path, config, *RETRY, "--until", "retry_request")
    assert not (root / "trials" / flaky / "result-2.json").exists()
    assert read_json(root / "retries" / f"{flaky}-2ep-s1.json")["replaces"] == first

    # A plain run finishes the retry: the pack runs again and trains only that member.
    proc = run_workflow(tmp_path, config)
    assert jobs_run(proc, "train_pack") == 1
    assert f"{steady} finished before this pack; record kept" in proc.stderr
    assert record(root, flaky)["status"] == "completed"
    assert ends(root, flaky) == ["failed", "completed"]
    assert (root / "trials" / steady / "segments.jsonl").read_text() == steady_segments
    assert best_trial(root) == "flaky"

    # A packed trial's folder deleted: its pack already ran, so the run says what to do.
    shutil.rmtree(root / "trials" / steady)
    proc = run_workflow(tmp_path, config, check=False)
    assert proc.returncode != 0
    (marker,) = root.glob("packs/*.json")
    assert f"delete its pack's marker {marker}" in proc.stdout + proc.stderr
    marker.unlink()
    proc = run_workflow(tmp_path, config)
    assert record(root, steady)["status"] == "completed" and ends(root, steady) == ["completed"]
    assert ends(root, flaky) == ["failed", "completed"]  # kept, not trained again


# -- the parts -------------------------------------------------------------------------------


def test_a_failed_trial_whose_log_snakemake_removed_is_trained_again(tmp_path):
    """Issue 26, failure 3 at the launcher: a finished failed segment was classified again from
    the log that Snakemake had just removed (FileNotFoundError)."""
    job = run_echo_trial(tmp_path, "aaaaaaaaaaaa", "crash")
    assert read_json(job.result_path)["status"] == "failed"
    job.log_path.unlink()  # what Snakemake does before it runs the job again
    job.result_path.unlink()
    assert run_segment(job) == 0
    again = read_json(job.result_path)
    assert again["status"] == "failed" and again["segments"] == 2
    assert "RuntimeError: deliberate crash in user code" in again["error"]
    # The log holds both segments: the first put back from the trial's copy.
    assert job.log_path.read_text().count("=== snakesweep trial") == 2


def test_a_missing_log_tail_is_said_as_such(tmp_path):
    missing = tmp_path / "gone.log"
    assert _log_tail(missing) == f"no log tail ({missing} is missing)"


@pytest.mark.parametrize(
    ("status", "retried"),
    [("failed", True), ("completed", False), ("pruned", False), ("diverged", False)],
)
def test_only_failed_records_are_retried(status, retried):
    rec = {"trial_id": "abcdefabcdef", "budget": 4, "status": status, "segments": 3}
    wanted = wanted_request("results/s", rec, ("failed",))
    assert wanted == ("results/s/retries/abcdefabcdef-4ep-s3.json" if retried else None)
    assert wanted_request("results/s", None, ("failed",)) is None


def test_requests_on_disk_are_read_by_trial_and_budget_in_order(tmp_path):
    folder = tmp_path / "retries"
    folder.mkdir()
    for name in ["abcdefabcdef-4ep-s10.json", "abcdefabcdef-4ep-s2.json", "x.json"]:
        (folder / name).write_text("{}")
    assert read_requests(tmp_path) == {
        ("abcdefabcdef", 4): [
            f"{tmp_path}/retries/abcdefabcdef-4ep-s2.json",
            f"{tmp_path}/retries/abcdefabcdef-4ep-s10.json",
        ]
    }
    assert read_requests(tmp_path / "none") == {}


def test_a_request_keeps_the_record_it_replaces(tmp_path):
    rec_path = tmp_path / "result-2.json"
    rec = {"trial_id": "abcdefabcdef", "status": "failed", "error": "disk full"}
    rec_path.write_text(json.dumps(rec))
    request = tmp_path / "retries" / "abcdefabcdef-2ep-s1.json"
    write_request(request, rec_path)
    assert not rec_path.exists()
    assert read_json(request)["replaces"] == rec


def test_the_retry_switch_is_taken_out_of_the_config_and_checked(capsys):
    config = {"sweep": "s", "retry": "failed"}
    assert take_retry_switch(config) == ("failed",) and config == {"sweep": "s"}
    assert take_retry_switch(config) == ()
    with pytest.raises(SystemExit):
        take_retry_switch({"retry": "all"})
    assert "retry: 'all' is not allowed; allowed values: ['failed']" in capsys.readouterr().err
