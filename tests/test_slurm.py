"""The workflow on a real Slurm (scripts/slurm-cluster.sh up), end to end, through profiles/slurm.

Every test here is marked ``slurm``: it skips without a cluster and fails collection
when SNAKESWEEP_REQUIRE_SLURM=1. The cluster must have no accounting database
(status through ``squeue``, as the local one) or one: both work. Sweeps are tiny;
the long tests (a 1-minute SLURM time limit, a requeue, a killed controller) say
so in their docstrings. OMP_NUM_THREADS=1 in every run makes floats bitwise
reproducible, so SLURM results are compared exactly with local ones.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    REPO,
    demo_config,
    echo_config,
    flaky_config,
    read_json,
    read_leaderboard,
    run_workflow,
    workflow_command,
)

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]

PROFILE = str(REPO / "profiles" / "slurm")
#: The command line that works against a cluster without slurmdbd (docs/slurm.md).
SLURM_ARGS = (
    f"--profile={PROFILE}",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--jobs",
    "4",
    "--slurm-keep-successful-logs",
    "--slurm-no-account",  # no accounting database: nothing to guess an account from
)
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "SNAKESWEEP_LOCK_POLL_SECONDS": "2"}
#: Columns of a leaderboard that must not depend on where a trial ran.
SAME_EVERYWHERE = ("rank", "trial_id", "status", "final", "best", "best_epoch", "epochs_done")


# -- helpers -----------------------------------------------------------------------------------


def records(root: Path, budget: int) -> dict[str, dict]:
    return {p.parent.name: read_json(p) for p in (root / "trials").glob(f"*/result-{budget}.json")}


def segments(root: Path, trial_id: str) -> list[dict]:
    """Segments of a trial: start events merged with their end and exit events (if any)."""
    path = root / "trials" / trial_id / "segments.jsonl"
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    ends = {e["segment"]: e for e in events if e["event"] == "end"}
    exits = {e["segment"]: e for e in events if e["event"] == "exit"}
    return [
        {**start, "end": ends.get(start["segment"]), "exit": exits.get(start["segment"])}
        for start in events
        if start["event"] == "start"
    ]


def log_sections(log: Path) -> list[str]:
    """The trial log cut at each segment's header line."""
    text = log.read_text()
    parts = text.split("=== snakesweep trial ")
    return ["=== snakesweep trial " + p for p in parts[1:]]


def assert_same_results(slurm_root: Path, local_root: Path, budget: int) -> None:
    """Same trials, statuses, ranks and metrics (every epoch, bit for bit) as the local run."""
    slurm_rows, local_rows = read_leaderboard(slurm_root), read_leaderboard(local_root)
    assert [{k: r[k] for k in SAME_EVERYWHERE} for r in slurm_rows] == [
        {k: r[k] for k in SAME_EVERYWHERE} for r in local_rows
    ]
    slurm_records, local_records = records(slurm_root, budget), records(local_root, budget)
    assert slurm_records.keys() == local_records.keys()
    for trial_id, local in local_records.items():
        ran = slurm_records[trial_id]
        assert ran["final"] == local["final"] and ran["best"] == local["best"], trial_id
        assert ran["history"] == local["history"], f"metrics of {trial_id} differ"
        assert local["slurm_job_ids"] == [] and ran["slurm_job_ids"], trial_id


def run_in_background(fn: Callable[[], object]) -> Callable[[], object]:
    """Run ``fn`` in a thread; the returned function waits for it and returns (or raises)."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join():
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["value"]

    return join


def start_controller(workdir: Path, config: dict, *args: str) -> subprocess.Popen:
    """A Snakemake controller started like ``run_workflow`` does, but not waited for."""
    cmd = workflow_command(workdir, config, *args)
    out = open(workdir / "controller.log", "ab")  # noqa: SIM115 - closed by the child's exit
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **ENV},
        start_new_session=True,  # a login session of its own: killed alone, as when it dies
    )


def wait_for(what: str, check: Callable[[], object], timeout: float, proc=None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the controller ended ({proc.returncode}) before {what}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def epochs_done(trial_dir: Path) -> int:
    path = trial_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def squeue_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    )
    return out.stdout.strip()


def no_overlap(segs: list[dict]) -> bool:
    """Segments of one trial never ran at the same time (each ended before the next started)."""
    return all(
        a["end"] and a["end"]["time"] <= b["time"] for a, b in zip(segs, segs[1:], strict=False)
    )


# -- 1. the demo sweep -------------------------------------------------------------------------


def small_config(results: Path, **extra) -> dict:
    """The demo sweep, small: 3 trials of scripts/train.py, 2 epochs."""
    return demo_config(n_trials=3, epochs=2, sweep="small", results_dir=str(results), **extra)


@pytest.fixture(scope="module")
def local_small(tmp_path_factory):
    """The small demo sweep run locally, once for the tests that compare SLURM runs with it:
    started in the background, so that it trains while their first SLURM run does. Returns
    a function that waits for it and gives its results folder."""
    tmp = tmp_path_factory.mktemp("local-small")
    join = run_in_background(lambda: run_workflow(tmp, small_config(tmp / "results"), env=ENV))

    def results() -> Path:
        join()
        return tmp / "results" / "small"

    return results


def test_demo_sweep_on_slurm_matches_the_local_run(tmp_path, local_small):
    """The demo sweep (3 trials, 2 epochs, scripts/train.py) through profiles/slurm gives the
    local leaderboard exactly; every trial records its one SLURM job and no restarts. ~40 s."""
    proc = run_workflow(tmp_path, small_config(tmp_path / "results"), *SLURM_ARGS, env=ENV)
    slurm_root = tmp_path / "results" / "small"
    assert_same_results(slurm_root, local_small(), budget=2)
    assert "snakesweep: small: 3 trials (3 completed)" in proc.stdout
    rows = read_leaderboard(slurm_root)
    assert [r["restarts"] for r in rows] == ["0", "0", "0"]
    for trial_id, record in records(slurm_root, 2).items():
        (segment,) = segments(slurm_root, trial_id)
        assert record["slurm_job_ids"] == [segment["slurm_job_id"]]
        assert (record["segments"], record["restarts"]) == (1, 0)
        assert segment["end"]["outcome"] == "completed"
    # Each trial was its own SLURM job.
    job_ids = {r["slurm_job_ids"][0] for r in records(slurm_root, 2).values()}
    assert len(job_ids) == 3


def test_a_packed_sweep_on_slurm_matches_the_unpacked_local_run(tmp_path, local_small):
    """pack: 2 runs the demo sweep's 3 trials in 2 SLURM jobs (2 members, then 1) and gives the
    unpacked local leaderboard exactly; each member records its pack's job. ~40 s."""
    config = small_config(
        tmp_path / "results", pack=2, resources={"runtime": 5, "mem_mb": 1000, "cpus": 1, "gpus": 0}
    )
    run_workflow(tmp_path, config, *SLURM_ARGS, env=ENV)
    slurm_root = tmp_path / "results" / "small"
    assert_same_results(slurm_root, local_small(), budget=2)
    jobs = [tuple(r["slurm_job_ids"]) for r in records(slurm_root, 2).values()]
    assert sorted(len(j) for j in jobs) == [1, 1, 1] and len(set(jobs)) == 2
    for trial_id in records(slurm_root, 2):
        (segment,) = segments(slurm_root, trial_id)
        assert segment["end"]["outcome"] == "completed"
    # Each member was a fork of its pack job's warm-start server (docs/speed.md): one per job.
    for log in (slurm_root / "logs" / "train").glob("*.log"):
        assert "=== warm start" not in log.read_text(), log.read_text()
    assert len(list((slurm_root / "logs" / "warm").glob("server-*.log"))) == 2


# -- 5. a real failure -------------------------------------------------------------------------


def test_a_crashing_trial_is_failed_once_and_the_sweep_still_aggregates(tmp_path):
    """A trial that raises is recorded failed with its log's path, is never resubmitted (one
    segment, one SLURM job), and the leaderboard still ranks the others. ~20 s."""
    proc = run_workflow(tmp_path, echo_config(tmp_path, ["good", "crash"]), *SLURM_ARGS, env=ENV)
    root = tmp_path / "results" / "echo"
    rows = {r["param_behaviour"]: r for r in read_leaderboard(root)}
    assert rows["good"]["status"] == "completed" and rows["good"]["rank"] == "1"
    crash = rows["crash"]
    assert crash["status"] == "failed" and crash["rank"] == "2"
    assert "RuntimeError: deliberate crash in user code" in crash["error"]
    log = Path(crash["log"])
    assert log.is_absolute() and "deliberate crash" in log.read_text()
    (segment,) = segments(root, crash["trial_id"])  # failed at once, never retried
    assert segment["end"]["outcome"] == "failed" and segment["end"]["exit_code"] == 1
    record = read_json(root / "trials" / crash["trial_id"] / "result-2.json")
    assert record["slurm_job_ids"] == [segment["slurm_job_id"]] and record["restarts"] == 0
    assert f"FAILED {crash['trial_id']}" in proc.stdout and crash["log"] in proc.stdout
    assert "Trying to restart" not in proc.stdout + proc.stderr


def test_retry_failed_on_slurm_resumes_the_failed_trial_in_a_new_job(tmp_path):
    """Issue 26 on Slurm: a trial that failed with a full disk (tests/fixtures/flaky_train.py)
    is retried with `--config retry=failed` once the cause is gone: only it runs, in a new
    SLURM job, from its checkpoint; the completed trial is not touched. ~60-90 s."""
    broken = tmp_path / "broken"
    broken.touch()
    config = flaky_config(tmp_path)
    run_workflow(tmp_path, config, *SLURM_ARGS, env=ENV)
    root = tmp_path / "results" / "flaky"
    kinds = {r["param_kind"]: r for r in read_leaderboard(root)}
    steady, flaky = kinds["steady"]["trial_id"], kinds["flaky"]["trial_id"]
    assert kinds["flaky"]["status"] == "failed" and "No space left" in kinds["flaky"]["error"]
    steady_segments = (root / "trials" / steady / "segments.jsonl").read_bytes()
    (first_job,) = read_json(root / "trials" / flaky / "result-2.json")["slurm_job_ids"]

    broken.unlink()
    run_workflow(tmp_path, config, *SLURM_ARGS, "--config", "retry=failed", env=ENV)
    record = read_json(root / "trials" / flaky / "result-2.json")
    assert record["status"] == "completed" and record["epochs_done"] == 2
    first, second = segments(root, flaky)
    assert first["end"]["outcome"] == "failed" and second["end"]["outcome"] == "completed"
    assert second["slurm_job_id"] != first_job
    assert record["slurm_job_ids"] == [first_job, second["slurm_job_id"]]
    assert "[snakesweep] resumed from ckpt-" in log_sections(Path(record["log"]))[-1]
    assert (root / "trials" / steady / "segments.jsonl").read_bytes() == steady_segments
    assert read_json(root / "retries" / f"{flaky}-2ep-s1.json")["replaces"]["status"] == "failed"
    assert [r["status"] for r in read_leaderboard(root)] == ["completed", "completed"]


# -- 6. a job step killed with SIGKILL ------------------------------------------------------

#: First segment: prints, then waits to be killed; the next one finishes the trial.
KILLED_STEP_SCRIPT = """
import json, os, sys, time
from pathlib import Path
trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
marker = trial / "first-segment-started"
if not marker.exists():
    print("output of the killed segment", flush=True)
    marker.touch()
    time.sleep(120)
print("output of the next segment", flush=True)
(trial / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "score": 1.0}) + "\\n")
"""


def test_a_killed_job_step_keeps_its_output_in_the_trial_log(tmp_path):
    """`scancel --signal=KILL <job>.0` kills the launcher before it can copy its log anywhere;
    Snakemake deletes the log before the retry. The trial's log still holds both segments. ~40 s."""
    script = tmp_path / "killed_step.py"
    script.write_text(KILLED_STEP_SCRIPT)
    config = echo_config(tmp_path, ["x"], epochs=1, script=str(script))
    controller = start_controller(tmp_path, config, *SLURM_ARGS)
    root = tmp_path / "results" / "echo"
    marker = wait_for(
        "the first segment to start",
        lambda: next(root.glob("trials/*/first-segment-started"), None),
        120,
        controller,
    )
    trial_id = marker.parent.name
    job_id = segments(root, trial_id)[0]["slurm_job_id"]
    subprocess.run(["scancel", "--signal=KILL", f"{job_id}.0"], check=True)
    assert controller.wait(timeout=240) == 0, (tmp_path / "controller.log").read_text()[-4000:]
    first, second = segments(root, trial_id)
    assert first["end"] is None and second["end"]["outcome"] == "completed"
    assert second["slurm_job_id"] != job_id
    log = (root / "logs" / "train" / f"{trial_id}-1ep.log").read_text()
    assert log.index("output of the killed segment") < log.index("output of the next segment")
    assert [
        s.split(" segment ")[1].split(" ")[0]
        for s in log_sections(Path(root / "logs" / "train" / f"{trial_id}-1ep.log"))
    ] == ["1", "2"]


# -- 4. the controller dies ---------------------------------------------------------------------


def test_a_killed_controller_restarts_without_training_anything_twice(tmp_path):
    """SIGKILL to the Snakemake controller mid-sweep (its SLURM jobs keep running), one old job
    then cancelled (a time limit or preemption while nobody watches), and a new controller
    started (after --unlock, as Snakemake asks). Finished trials do not run again, the trial
    whose old job still runs is waited for (per-trial lock) and never trained by two jobs at
    once, the cancelled one resumes from its checkpoint, and the leaderboard is complete.
    The trials train tests/fixtures/paced_train.py, whose steps take a set wall time, so which
    trial is finished or mid-training when the controller dies follows from the clock, not
    from how busy the machine is. ~1 min."""
    config = {
        "sweep": "kill",
        "results_dir": str(tmp_path / "results"),
        "script": str(REPO / "tests" / "fixtures" / "paced_train.py"),
        "metric": "val_mse",
        "mode": "min",
        "epochs": 6,
        "strategy": "grid",
        "parameters": {
            "lr": {"kind": "fixed", "value": 0.003},
            "batch_size": {"kind": "fixed", "value": 64},
            # 36 steps: ~1 s, ~14 s and ~29 s of training whatever the load: whatever order
            # Slurm starts them in, one finishes while another still trains.
            "step_seconds": {"kind": "grid", "values": [0.02, 0.4, 0.8]},
        },
        "resources": {"runtime": 10, "mem_mb": 1000, "cpus": 1, "gpus": 0},
        "checkpoint": {"every_steps": 0, "every_seconds": 5, "keep": 2},
    }
    root = tmp_path / "results" / "kill"
    first = start_controller(tmp_path, config, *SLURM_ARGS)
    try:

        def trials_by_state():
            """Finished trials, and slow ones (step_seconds >= 0.4) mid-training, slowest first."""
            done, training = [], []
            for trial in (root / "trials").glob("*"):
                if list(trial.glob("result-*.json")):
                    done.append(trial.name)
                elif epochs_done(trial) >= 1:
                    step_s = read_json(trial / "params.json")["params"]["step_seconds"]
                    if step_s >= 0.4:
                        training.append((-step_s, trial.name))
            training = [t for _, t in sorted(training)]
            return (done, training) if len(done) >= 1 and len(training) >= 1 else None

        wait_for("a finished and a training trial", trials_by_state, 240, first)
    finally:
        os.kill(first.pid, signal.SIGKILL)  # the controller only; its SLURM jobs live on
        first.wait()
    done, training = trials_by_state()
    finished_before = {t: (root / "trials" / t / "segments.jsonl").read_bytes() for t in done}
    # One trial's old job ends while no controller runs: it saves its state (SIGTERM) and stops.
    cancelled = training[0]
    old_job = segments(root, cancelled)[0]["slurm_job_id"]
    subprocess.run(["scancel", old_job], check=True)
    wait_for(
        f"job {old_job} to end",
        lambda: squeue_state(old_job) not in ("RUNNING", "COMPLETING"),
        60,
    )
    running_then = {
        t: segments(root, t)[0]["slurm_job_id"]
        for t in (p.name for p in (root / "trials").glob("*"))
        if t not in done and t != cancelled and (root / "trials" / t / "segments.jsonl").exists()
    }

    unlock = run_workflow(tmp_path, config, *SLURM_ARGS, "--unlock", env=ENV)
    assert unlock.returncode == 0
    proc = run_workflow(tmp_path, config, *SLURM_ARGS, env=ENV)
    assert "snakesweep: kill: 3 trials (3 completed)" in proc.stdout

    rows = read_leaderboard(root)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"completed"}
    for trial_id, before in finished_before.items():
        assert (root / "trials" / trial_id / "segments.jsonl").read_bytes() == before, (
            f"finished trial {trial_id} ran again"
        )
    for trial_id in (r["trial_id"] for r in rows):
        segs = segments(root, trial_id)
        assert no_overlap(segs), f"two jobs trained {trial_id} at once: {segs}"
        record = read_json(root / "trials" / trial_id / "result-6.json")
        assert record["restarts"] == len(segs) - 1
        assert record["history"][-1]["epoch"] == 6
    # The cancelled trial resumed in a job of the new controller.
    segs = segments(root, cancelled)
    assert len(segs) >= 2 and segs[0]["slurm_job_id"] == old_job
    assert segs[-1]["slurm_job_id"] != old_job
    record = read_json(root / "trials" / cancelled / "result-6.json")
    assert "[snakesweep] resumed from ckpt-" in log_sections(Path(record["log"]))[-1]
    assert record["restarts"] >= 1 and old_job in record["slurm_job_ids"]
    # Trials whose old jobs were still running (or pending) were not started over by the new
    # controller's jobs: those waited for the lock, or found the trial already finished.
    # Both controllers' jobs log to .snakemake/slurm_logs/rule_train_trial/<trial>_6/<job>.log.
    logs = tmp_path / ".snakemake" / "slurm_logs" / "rule_train_trial"
    for trial_id, job in running_then.items():
        (segment,) = segments(root, trial_id)  # trained once, by its old job, to the end
        assert segment["slurm_job_id"] == job and segment["end"]["outcome"] == "completed"
        for log in logs.glob(f"{trial_id}_6/*.log"):
            if log.stem != job:  # a job of the new controller for the same trial
                text = log.read_text()
                assert "is being trained by" in text or "already finished at 6 epochs" in text, (
                    f"{log} neither waited for the lock nor found the trial finished"
                )


# -- strategy tpe: rounds are local rules, trials SLURM jobs -----------------------------------


def test_tpe_rounds_on_slurm_equal_the_local_rounds(tmp_path):
    """Through profiles/slurm the trials are SLURM jobs and the rounds local rules: the same
    round files and leaderboard as a local run."""
    from test_tpe_workflow import board, round_bytes, round_trials, tpe_config

    local, slurm = tmp_path / "local", tmp_path / "slurm"
    run_workflow(local, tpe_config(local, n_trials=4, round_size=2), env=ENV)
    proc = run_workflow(slurm, tpe_config(slurm, n_trials=4, round_size=2), *SLURM_ARGS, env=ENV)
    root = slurm / "results" / "tpe"
    assert round_bytes(root) == round_bytes(local / "results" / "tpe")
    assert list(round_bytes(root)) == ["round-0.json", "round-1.json"]
    assert board(root) == board(local / "results" / "tpe")
    assert "snakesweep: tpe: 4 trials (4 completed)" in proc.stdout
    for k in (0, 1):
        for t in round_trials(root, k):
            record = json.loads((root / "trials" / t / "result-2.json").read_text())
            assert len(record["slurm_job_ids"]) == 1
