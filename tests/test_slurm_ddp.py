"""Multi-process trials (issue 11) on the real local Slurm, through profiles/slurm.

A 2-rank trial is one SLURM task holding both ranks' cores (resources.cpus 1 x
processes_per_node 2); the launcher inside the job spawns the ranks (docs/ddp.md).
Marked ``slurm``: skipped without a cluster. ~3 min on the 2-core test machine.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, read_leaderboard, run_workflow
from test_slurm import (
    ENV,
    SLURM_ARGS,
    epochs_done,
    log_sections,
    no_overlap,
    records,
    run_in_background,
    segments,
    start_controller,
    wait_for,
)
from trial_processes import CRASHING_RANK

from snakesweep.job.launch import TrialJob, run_segment
from snakesweep.session.checkpoint import load_latest

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

#: The time-limit test trains tests/fixtures/paced_train.py on 2 ranks: 11 steps of STEP_S per
#: epoch (2.75 s), whatever the machine's load. A 1-minute job keeps MARGIN_S free at its end,
#: so after the ranks' start-up a segment trains ~20 s (~7 epochs): 12 epochs need several
#: segments, and each ends long before the limit, which keeps the test short.
EPOCHS = 12
STEP_S = 0.25
MARGIN_S = 30


def ddp_config(
    results: Path, script: Path | None = None, epochs: int = EPOCHS, margin_s: float = 15
) -> dict:
    return {
        "sweep": "ddp",
        "results_dir": str(results),
        "script": str(script or REPO / "scripts" / "train.py"),
        "metric": "val_accuracy",
        "mode": "max",
        "epochs": epochs,
        "strategy": "grid",
        "parameters": {
            "lr": {"kind": "fixed", "value": 0.001},
            "width": {"kind": "fixed", "value": 512},
            "depth": {"kind": "fixed", "value": 2},
            "batch_size": {"kind": "fixed", "value": 8},
        },
        "resources": {"runtime": 1, "mem_mb": 1000, "cpus": 1, "processes_per_node": 2},
        "checkpoint": {
            "every_steps": 0,
            "every_seconds": 10,
            "keep": 2,
            "deadline_margin_s": margin_s,
            "max_continuations": 20,
        },
    }


def paced_config(results: Path) -> dict:
    config = ddp_config(results, script=REPO / "tests" / "fixtures" / "paced_train.py")
    config.update(metric="val_mse", mode="min")
    config["checkpoint"]["deadline_margin_s"] = MARGIN_S
    config["parameters"] = {
        "lr": {"kind": "fixed", "value": 0.003},
        "step_seconds": {"kind": "fixed", "value": STEP_S},
    }
    return config


def requeue_while_training(root: Path, trial: Path, proc: subprocess.Popen) -> str:
    """`scontrol requeue` the trial's job once its running segment has finished an epoch (so
    the ranks are past their start-up and hold a checkpoint); a job that is between two
    segments (requeued by itself, pending) is asked again in its next one."""
    epochs_at_first_sight: dict[int, int] = {}

    def training():
        segs = segments(root, trial.name)
        if not segs or segs[-1]["end"] is not None:
            return None
        done = epochs_done(trial)
        first = epochs_at_first_sight.setdefault(segs[-1]["segment"], done)
        return segs[-1] if done > first else None

    for _ in range(10):
        segment = wait_for("a segment that trains", training, 300, proc)
        job_id = segment["slurm_job_id"]
        if subprocess.run(["scontrol", "requeue", job_id], capture_output=True).returncode == 0:
            return job_id
        wait_for("the segment's end", lambda: segments(root, trial.name)[-1]["end"], 120, proc)
    raise AssertionError("the job was never found running to be requeued")


def test_a_two_rank_trial_over_time_limits_and_a_requeue_matches_the_local_run(tmp_path):
    """1-minute SLURM limit, one `scontrol requeue` once it trains: the 2-rank trial continues in
    its requeued job until done, and its metrics equal the local 2-rank run (run beside it:
    the steps wait more than they compute)."""
    root = tmp_path / "slurm" / "results" / "ddp"
    config = paced_config(root.parent)
    local_config = paced_config(tmp_path / "local" / "results")
    local = run_in_background(lambda: run_workflow(tmp_path / "local", local_config, env=ENV))
    proc = start_controller(tmp_path / "slurm", config, *SLURM_ARGS)
    try:
        trial = wait_for(
            "the trial to start",
            lambda: next(iter((root / "trials").glob("*/params.json")), None),
            180,
            proc,
        ).parent
        job_id = requeue_while_training(root, trial, proc)
        assert proc.wait(timeout=900) == 0, (tmp_path / "slurm" / "controller.log").read_text()[
            -5000:
        ]
    finally:
        if proc.poll() is None:
            proc.kill()
    local()
    local_root = tmp_path / "local" / "results" / "ddp"

    (record,) = records(root, EPOCHS).values()
    (local,) = records(local_root, EPOCHS).values()
    assert record["status"] == local["status"] == "completed", record["error"]
    assert record["history"] == local["history"]  # every epoch's metrics, bit for bit
    assert read_leaderboard(root)[0]["final"] == read_leaderboard(local_root)[0]["final"]
    segs = segments(root, trial.name)
    assert len(segs) >= 3 and no_overlap(segs)  # the requeue, and at least one time limit
    assert {s["slurm_job_id"] for s in segs} == {job_id}  # all in the one requeued job
    sections = log_sections(Path(record["log"]))
    assert len(sections) == len(segs)
    (requeued,) = [i for i, text in enumerate(sections) if "received SIGTERM" in text]
    assert segs[requeued]["end"]["stop_requested"]
    # The others that went on: a deadline stop, not a signal, on whichever rank found first
    # that no step fits.
    stopped = [i for i in range(len(segs) - 1) if i != requeued]
    assert stopped, "at least one segment ended at the time limit"
    assert all(not segs[i]["end"]["stop_requested"] for i in stopped)
    assert all("cannot fit another step" in sections[i] for i in stopped)
    assert all("[snakesweep] resumed from ckpt-" in s for s in sections[1:])
    assert all(s["end"]["exit_code"] == 75 for s in segs[:-1])
    assert segs[-1]["end"]["outcome"] == "completed"
    state, _ = load_latest(trial / "checkpoints")
    assert len(state["ranks"]) == 2


def test_a_crashing_rank_is_recorded_failed_at_once(tmp_path):
    """Rank 1 raises at step 25: the trial is failed with rank 1's error in one segment."""
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_RANK.format(train=str(REPO / "scripts" / "train.py")))
    config = ddp_config(tmp_path / "results", script=script, epochs=2)
    run_workflow(tmp_path, config, *SLURM_ARGS, env=ENV, check=False)
    (record,) = records(tmp_path / "results" / "ddp", 2).values()
    assert record["status"] == "failed"
    assert re.search(r"\(rank [01] of 2\) exited with code 1", record["error"]), record["error"]
    assert (record["segments"], record["restarts"]) == (1, 0)
    assert len(record["slurm_job_ids"]) == 1
    assert "deliberate failure on rank 1 at step 25" in Path(record["log"]).read_text()


SRUN_JOB = """
import os, sys, time
from pathlib import Path
from snakesweep.job import launch, spawn
job = launch.TrialJob(
    trial_id="srun0", trial_dir=Path({trial!r}), params={params!r}, script={train!r}, budget=2,
    metric="val_accuracy", mode="max", result_path=Path({trial!r}) / "result-2.json",
    log_path=Path({trial!r}) / "train.log", every_steps=7, every_seconds=0.0, processes_per_node=2,
)
job.trial_dir.mkdir(parents=True, exist_ok=True)
env = launch._child_env(job, dict(os.environ), time.time())
with open(job.log_path, "a") as log:
    decided, ends = spawn.run_srun(launch.command_line(job), env, log, [], 2, 2, 1)
sys.exit(decided.code)
"""


def test_the_multi_node_launch_path_gives_the_local_result(tmp_path):
    """The ranks as `srun` tasks (what nodes > 1 uses; here 2 tasks on the one node), rank
    from SLURM_PROCID and rank 0's host from scontrol: metrics equal the local spawner's."""
    params = {"epochs": 2, "batch_size": 128, "width": 32, "dropout": 0.1, "lr": 0.01, "seed": 3}
    train = str(REPO / "scripts" / "train.py")
    script = tmp_path / "srun_job.py"
    script.write_text(SRUN_JOB.format(trial=str(tmp_path / "srun"), params=params, train=train))
    proc = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--ntasks=2",
            "--cpus-per-task=1",
            "--nodes=1",
            f"--output={tmp_path / 'sbatch.out'}",
            "--wrap",
            f"{sys.executable} {script}",
        ],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (tmp_path / "sbatch.out").read_text()
    local = TrialJob(
        trial_id="local0",
        trial_dir=tmp_path / "local",
        params=params,
        script=train,
        budget=2,
        metric="val_accuracy",
        mode="max",
        result_path=tmp_path / "local" / "result-2.json",
        log_path=tmp_path / "local.log",
        every_steps=7,
        every_seconds=0.0,
        processes_per_node=2,
    )
    assert run_segment(local, env={**os.environ, **ENV}) == 0
    srun_metrics = (tmp_path / "srun" / "metrics.jsonl").read_bytes()
    assert srun_metrics == (tmp_path / "local" / "metrics.jsonl").read_bytes()
    state, _ = load_latest(tmp_path / "srun" / "checkpoints")
    assert len(state["ranks"]) == 2
