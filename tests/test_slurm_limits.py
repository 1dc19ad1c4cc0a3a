"""Time limits and requeues on the real local Slurm, through profiles/slurm.

A segment that stops itself at a deadline requeues its own job; a trial longer than its
1-minute limit continues over several segments in its requeued job; `scontrol requeue` of a
running trial resumes it in the same job. Marked ``slurm``: skipped without a cluster. The
trials here train tests/fixtures/paced_train.py, whose steps take a set wall time, so how many
segments a trial needs follows from the clock, not from the machine's load. ~2.5 min.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import REPO, echo_config, read_json, read_leaderboard, run_workflow
from test_slurm import (
    ENV,
    SLURM_ARGS,
    assert_same_results,
    epochs_done,
    log_sections,
    no_overlap,
    records,
    run_in_background,
    segments,
    squeue_state,
    start_controller,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]


# -- 7. a continuation is not an error -------------------------------------------------------

#: First segment: stops by itself as at a deadline (exit 75, no signal); the next one finishes.
CONTINUING_SCRIPT = """
import json, os
from pathlib import Path
trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
marker = trial / "first-segment-done"
if not marker.exists():
    marker.touch()
    print("first segment: saved, stopping before the deadline", flush=True)
    raise SystemExit(75)
print("second segment: done", flush=True)
(trial / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "score": 1.0}) + "\\n")
"""


def test_a_continuation_requeues_its_job_and_reads_as_normal(tmp_path):
    """A segment that stops by itself (exit 75 at a deadline) requeues its own SLURM job: the
    next segment runs under the same job id, the controller prints no error and Slurm records
    the job COMPLETED. ~30 s (Slurm waits cred_expire + 1 s before it starts a requeued job)."""
    script = tmp_path / "continuing.py"
    script.write_text(CONTINUING_SCRIPT)
    config = echo_config(tmp_path, ["x"], epochs=1, script=str(script))
    proc = run_workflow(tmp_path, config, *SLURM_ARGS, env=ENV)
    out = proc.stdout + proc.stderr
    root = tmp_path / "results" / "echo"
    ((trial_id, record),) = records(root, 1).items()
    first, second = segments(root, trial_id)
    assert first["end"]["outcome"] == "continue" and second["end"]["outcome"] == "completed"
    assert first["slurm_job_id"] == second["slurm_job_id"]
    assert record["restarts"] == 1 and record["slurm_job_ids"] == [first["slurm_job_id"]]
    assert "Error in rule" not in out and "Trying to restart" not in out
    assert squeue_state(first["slurm_job_id"]) == "COMPLETED"
    log = (root / "logs" / "train" / f"{trial_id}-1ep.log").read_text()
    assert f"continues in SLURM job {first['slurm_job_id']}, requeued" in log
    assert "could not" not in log  # requeued, and its next start set ahead of Slurm's hold
    assert log.index("stopping before the deadline") < log.index("second segment: done")


# -- 2 and 3. a time limit shorter than the training, and `scontrol requeue` ----------------

LONG_BATCH, REQUEUE_BATCH = 16, 32
#: tests/fixtures/paced_train.py sleeps STEP_S after each of its steps (a slow accelerator), so a
#: trial's wall time follows the clock, not the machine's load: batch size 16 is 22 steps, 5.5 s
#: per epoch, and its 12 epochs (66 s) cannot fit in one 1-minute job (start-up, 15 s margin);
#: batch size 32 (2.75 s per epoch, 33 s) fits, and is requeued after its first epoch.
STEP_S = 0.25
LONG_EPOCHS = 12


@pytest.fixture(scope="module")
def long_sweep(tmp_path_factory):
    """Two trials on SLURM with a 1-minute limit: batch size 16 needs 2-3 jobs; batch size 32 fits
    in one but is requeued (`scontrol requeue`) after its first epoch. Beside it the same sweep
    locally, uninterrupted (the steps wait more than they compute, so neither run slows the
    other). LONG: ~1.5-2 min, most of it the 1-minute limit and the requeue."""
    tmp = tmp_path_factory.mktemp("long")

    def config(name):
        return {
            "sweep": "long",
            "results_dir": str(tmp / name / "results"),
            "script": str(REPO / "tests" / "fixtures" / "paced_train.py"),
            "metric": "val_mse",
            "mode": "min",
            "epochs": LONG_EPOCHS,
            "strategy": "grid",
            "parameters": {
                "lr": {"kind": "fixed", "value": 0.003},
                "step_seconds": {"kind": "fixed", "value": STEP_S},
                "batch_size": {"kind": "grid", "values": [LONG_BATCH, REQUEUE_BATCH]},
            },
            "resources": {"runtime": 1, "mem_mb": 1000, "cpus": 1, "gpus": 0},
            "checkpoint": {
                "every_steps": 0,
                "every_seconds": 10,
                "keep": 2,
                "deadline_margin_s": 15,
                "max_continuations": 20,
            },
        }

    root = tmp / "slurm" / "results" / "long"
    local = run_in_background(lambda: run_workflow(tmp / "local", config("local"), env=ENV))
    proc = start_controller(tmp / "slurm", config("slurm"), *SLURM_ARGS)
    try:
        # The requeued trial: the one with batch size 32, once it has an epoch (and a checkpoint).
        def requeue_trial():
            for params in (root / "trials").glob("*/params.json"):
                if read_json(params)["params"]["batch_size"] == REQUEUE_BATCH:
                    return params.parent
            return None

        trial = wait_for("the trials to start", requeue_trial, 180, proc)
        wait_for("an epoch of the requeued trial", lambda: epochs_done(trial) >= 1, 180, proc)
        job_id = segments(root, trial.name)[0]["slurm_job_id"]
        requeued_at = epochs_done(trial)
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        assert proc.wait(timeout=600) == 0, (tmp / "slurm" / "controller.log").read_text()[-5000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    local()
    return {
        "root": root,
        "local": tmp / "local" / "results" / "long",
        "requeued": trial.name,
        "requeued_job": job_id,
        "requeued_at_epoch": requeued_at,
    }


def trial_with_batch(root: Path, batch_size: int) -> str:
    (trial_id,) = [
        t for t, r in records(root, LONG_EPOCHS).items() if r["params"]["batch_size"] == batch_size
    ]
    return trial_id


def test_a_trial_longer_than_its_time_limit_continues_in_its_requeued_job(long_sweep):
    """SLURM time limit 1 minute, training longer: the trial saves before its job's end time
    (read with squeue inside the job), exits 75 and requeues its own job, which runs again under
    the same id and resumes; its final metrics equal the uninterrupted local run. LONG (shares
    the long_sweep run)."""
    root = long_sweep["root"]
    assert_same_results(root, long_sweep["local"], budget=LONG_EPOCHS)
    trial_id = trial_with_batch(root, LONG_BATCH)
    record = read_json(root / "trials" / trial_id / f"result-{LONG_EPOCHS}.json")
    segs = segments(root, trial_id)
    assert len(segs) >= 2 and no_overlap(segs)
    for before, after in zip(segs, segs[1:], strict=False):
        # Saved and exited by itself before the limit (75, not killed by Slurm) ...
        assert before["end"]["outcome"] == "continue" and before["end"]["exit_code"] == 75
        assert before["end"]["time"] - before["time"] < 60
        # ... and continued in the same job, requeued: the controller saw no failure.
        assert after["slurm_job_id"] == before["slurm_job_id"]
        # Its exit path (stop to requeue) was measured for the auto margin of the next ones.
        assert before["exit"]["requeued"] is True and before["exit"]["exit_s"] > 0
    assert segs[-1]["exit"] is None
    assert segs[-1]["end"]["outcome"] == "completed"
    assert record["restarts"] == len(segs) - 1 >= 1
    assert record["slurm_job_ids"] == [segs[0]["slurm_job_id"]]
    row = {r["trial_id"]: r for r in read_leaderboard(root)}[trial_id]
    assert row["restarts"] == str(record["restarts"])
    sections = log_sections(Path(record["log"]))
    assert len(sections) == len(segs), "the log keeps every segment"
    assert "deadline in" in sections[0] and "cannot fit another step" in sections[0]
    assert all("=== continues in SLURM job" in s for s in sections[:-1])
    assert all("[snakesweep] resumed from ckpt-" in s for s in sections[1:])


def test_a_requeued_trial_resumes_in_the_same_job(long_sweep):
    """`scontrol requeue` of a running trial: SIGTERM, the trial saves and exits 75; Slurm runs
    the same job id again, which resumes from the checkpoint, with the same final metrics as
    the uninterrupted local run (checked in the test above). LONG (shares the long_sweep run)."""
    root, trial_id = long_sweep["root"], long_sweep["requeued"]
    record = read_json(root / "trials" / trial_id / f"result-{LONG_EPOCHS}.json")
    local = read_json(long_sweep["local"] / "trials" / trial_id / f"result-{LONG_EPOCHS}.json")
    assert record["status"] == "completed" and record["history"] == local["history"]
    segs = segments(root, trial_id)
    assert no_overlap(segs)
    first, second = segs[0], segs[1]
    assert first["slurm_job_id"] == second["slurm_job_id"] == long_sweep["requeued_job"]
    # The requeue came while it trained: it saved and left (SIGTERM) or was killed.
    assert first["end"] is None or first["end"]["outcome"] == "continue"
    assert record["restarts"] >= 1 and long_sweep["requeued_job"] in record["slurm_job_ids"]
    sections = log_sections(Path(record["log"]))
    assert "received SIGTERM" in sections[0]
    assert "[snakesweep] resumed from ckpt-" in sections[1]
    resumed_epoch = int(sections[1].split("resumed from ckpt-")[1].split("epoch ")[1].split(",")[0])
    assert resumed_epoch >= long_sweep["requeued_at_epoch"] >= 1, "resumed, not restarted"
    row = {r["trial_id"]: r for r in read_leaderboard(root)}[trial_id]
    assert row["restarts"] == str(record["restarts"])
