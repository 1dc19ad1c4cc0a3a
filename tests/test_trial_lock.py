"""The per-trial lock: one trainer per trial, waiting for live owners, breaking dead ones' locks."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from snakesweep.cluster.host_process import process_start_time
from snakesweep.job.launch import TrialJob, run_segment
from snakesweep.job.trial_lock import LOCK_FILE, TrialLock, owner_alive
from snakesweep.store import contract
from snakesweep.store.trial_folder import finished_end, read_segments

HOST = socket.gethostname()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(trial: Path, **owner) -> Path:
    trial.mkdir(parents=True, exist_ok=True)
    path = trial / LOCK_FILE
    content = {"host": HOST, "pid": 1, "slurm_job_id": None, "token": "theirs", "time": 0}
    content.update(owner)
    path.write_text(json.dumps(content))
    return path


class Recorder:
    def __init__(self):
        self.messages = []

    def __call__(self, message):
        self.messages.append(message)

    def text(self):
        return "\n".join(self.messages)


def test_lock_holds_owner_and_is_removed_on_release(tmp_path):
    lock = TrialLock(tmp_path, env={"SLURM_JOB_ID": "42"}, heartbeat_s=0)
    with lock:
        owner = json.loads((tmp_path / LOCK_FILE).read_text())
        assert owner["host"] == HOST and owner["pid"] == os.getpid()
        assert owner["slurm_job_id"] == "42" and owner["token"] == lock.me["token"]
        assert owner["pid_start"] == process_start_time(os.getpid())
    assert not (tmp_path / LOCK_FILE).exists()
    assert not list(tmp_path.glob(".lock*")), "no temporary files left behind"


def test_waits_for_a_live_owner_then_takes_the_lock(tmp_path):
    write_lock(tmp_path, pid=os.getppid(), pid_start=process_start_time(os.getppid()))
    say, sleeps = Recorder(), []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:  # the owner ends
            (tmp_path / LOCK_FILE).unlink()

    lock = TrialLock(tmp_path, env={}, poll_s=2, say=say, sleep=sleep, heartbeat_s=0, trial_id="t1")
    lock.acquire()
    assert sleeps == [2, 2, 2]
    assert "trial t1 is being trained by pid" in say.text() and "is running" in say.text()
    assert "lock taken after waiting" in say.text()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == lock.me["token"]
    lock.release()


def test_stale_lock_of_a_dead_process_is_broken_with_a_message(tmp_path):
    write_lock(tmp_path, pid=dead_pid())
    say = Recorder()
    lock = TrialLock(tmp_path, env={}, say=say, sleep=pytest.fail, heartbeat_s=0)
    assert lock.acquire() < 1
    assert "breaking the stale lock" in say.text() and "is gone" in say.text()
    lock.release()


def test_a_reused_pid_is_not_the_owner(tmp_path):
    write_lock(tmp_path, pid=os.getppid(), pid_start="1")  # alive, but started at another time
    say = Recorder()
    TrialLock(tmp_path, env={}, say=say, sleep=pytest.fail, heartbeat_s=0).acquire()
    assert "breaking the stale lock" in say.text()


def test_lock_left_by_an_earlier_run_of_the_same_requeued_job_is_stale(tmp_path):
    write_lock(tmp_path, host="elsewhere", pid=123, slurm_job_id="77")
    say = Recorder()
    lock = TrialLock(
        tmp_path, env={"SLURM_JOB_ID": "77"}, say=say, sleep=pytest.fail, heartbeat_s=0
    )
    lock.acquire()
    assert "earlier run of this SLURM job (77" in say.text()


def test_owner_on_another_host_lives_as_long_as_its_slurm_job_runs(tmp_path):
    write_lock(tmp_path, host="node7", pid=123, slurm_job_id="9")
    states = iter(["RUNNING", "COMPLETING", ""])
    asked, sleeps, say = [], [], Recorder()

    def slurm_state(job_id):
        asked.append(job_id)
        return next(states)

    lock = TrialLock(
        tmp_path,
        env={"SLURM_JOB_ID": "10"},
        say=say,
        slurm_state=slurm_state,
        sleep=sleeps.append,
        heartbeat_s=0,
    )
    lock.acquire()
    assert asked == ["9", "9", "9"] and len(sleeps) == 2
    assert "SLURM job 9 is RUNNING" in say.text()
    assert "SLURM job 9 is no longer known to squeue" in say.text()


@pytest.mark.parametrize("state", ["PENDING", "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"])
def test_a_slurm_job_that_is_not_running_holds_no_lock(state):
    alive, why = owner_alive(
        {"host": "node7", "pid": 1, "slurm_job_id": "9"},
        {"host": HOST, "pid": 2, "slurm_job_id": "10"},
        mtime=time.time(),
        now=time.time(),
        slurm_state=lambda job: state,
    )
    assert not alive and state in why


def test_without_squeue_an_owner_lives_while_its_heartbeat_is_fresh():
    owner = {"host": "node7", "pid": 1, "slurm_job_id": "9"}
    me = {"host": HOST, "pid": 2, "slurm_job_id": None}

    def judge(age):
        return owner_alive(
            owner, me, mtime=1000.0, now=1000.0 + age, slurm_state=lambda j: None, stale_after_s=300
        )

    assert judge(10)[0] and "heartbeat" in judge(10)[1]
    assert not judge(301)[0]
    # A local run on another host (no SLURM job id) is judged by its heartbeat alone.
    local = {"host": "node7", "pid": 1, "slurm_job_id": None}
    assert owner_alive(local, me, mtime=1000.0, now=1010.0)[0]
    assert not owner_alive(local, me, mtime=1000.0, now=2000.0)[0]


def test_heartbeat_refreshes_the_lock(tmp_path):
    lock = TrialLock(tmp_path, env={}, heartbeat_s=0.05)
    with lock:
        path = tmp_path / LOCK_FILE
        os.utime(path, (0, 0))
        deadline = time.time() + 5
        while path.stat().st_mtime == 0 and time.time() < deadline:
            time.sleep(0.02)
        assert path.stat().st_mtime > 0


def test_release_leaves_a_lock_that_is_not_ours(tmp_path):
    lock = TrialLock(tmp_path, env={}, heartbeat_s=0)
    lock.acquire()
    write_lock(tmp_path, token="someone-else")  # e.g. ours was judged stale and broken
    lock.release()
    assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == "someone-else"


def test_breaking_puts_back_a_fresh_lock_taken_in_the_meantime(tmp_path):
    write_lock(tmp_path, token="fresh")
    lock = TrialLock(tmp_path, env={}, heartbeat_s=0)
    lock._break({"token": "stale-one-we-looked-at"})
    assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == "fresh"
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_FILE]


def test_an_unreadable_lock_is_waited_for_while_fresh_then_broken(tmp_path):
    (tmp_path / LOCK_FILE).write_text("{not json")
    clock = [time.time()]
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock[0] += 200

    lock = TrialLock(
        tmp_path,
        env={},
        clock=lambda: clock[0],
        sleep=sleep,
        say=Recorder(),
        stale_after_s=300,
        heartbeat_s=0,
    )
    lock.acquire()
    assert len(sleeps) == 2
    assert json.loads((tmp_path / LOCK_FILE).read_text())["token"] == lock.me["token"]


# -- the launcher with the lock --------------------------------------------------------------

SLOW_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
    print("training in", os.getpid(), flush=True)
    time.sleep(float(os.environ.get("SLOW_SECONDS", "2")))
    (trial / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "score": 0.5}) + "\\n")
    """
)

RUNNER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from snakesweep.job.launch import TrialJob, run_segment
    tmp = Path(sys.argv[1])
    job = TrialJob(trial_id="abc123abc123", trial_dir=tmp / "trial", params={"epochs": 1},
                   script=str(tmp / "script.py"), budget=1, metric="score", mode="max",
                   result_path=tmp / "trial" / "result-1.json",
                   log_path=tmp / "logs" / "abc123abc123-1ep.log", python=sys.executable)
    sys.exit(run_segment(job))
    """
)


def make_job(tmp_path: Path) -> TrialJob:
    (tmp_path / "script.py").write_text(SLOW_SCRIPT)
    return TrialJob(
        trial_id="abc123abc123",
        trial_dir=tmp_path / "trial",
        params={"epochs": 1},
        script=str(tmp_path / "script.py"),
        budget=1,
        metric="score",
        mode="max",
        result_path=tmp_path / "trial" / "result-1.json",
        log_path=tmp_path / "logs" / "abc123abc123-1ep.log",
        python=sys.executable,
    )


def test_two_launchers_of_one_trial_never_train_it_at_once(tmp_path):
    make_job(tmp_path)
    (tmp_path / "runner.py").write_text(RUNNER)
    env = {**os.environ, "SNAKESWEEP_LOCK_POLL_SECONDS": "0.2", "SLOW_SECONDS": "2"}
    first = subprocess.Popen(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path)],
        env=env,
        text=True,
        stderr=subprocess.PIPE,
    )
    lock = tmp_path / "trial" / LOCK_FILE
    deadline = time.time() + 30
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path)],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert first.wait(timeout=60) == 0 and second.returncode == 0, second.stderr
    assert "is being trained by pid" in second.stderr
    assert "already finished at 1 epochs" in second.stderr
    events = read_segments(tmp_path / "trial")
    assert [e["event"] for e in events] == ["start", "end"], "the trial was trained once"
    record = json.loads((tmp_path / "trial" / "result-1.json").read_text())
    assert record["status"] == "completed" and record["restarts"] == 0
    assert not lock.exists()


def test_a_finished_trial_is_not_trained_again(tmp_path):
    job = make_job(tmp_path)
    assert run_segment(job, env={**os.environ, "SLOW_SECONDS": "0"}) == 0
    first = job.result_path.read_text()
    job.result_path.unlink()  # what Snakemake does before it runs a job again
    job.log_path.unlink()
    assert run_segment(job, env={**os.environ, "SLOW_SECONDS": "0"}) == 0
    assert len(read_segments(job.trial_dir)) == 2, "no new segment"
    assert job.result_path.read_text() == first
    assert "training in" in job.log_path.read_text(), "the log is put back"


def test_finished_end_only_counts_a_final_outcome_at_this_budget():
    start = {"event": "start", "segment": 1, "budget": 2}
    done = {"event": "end", "segment": 1, "exit_code": 0, "outcome": "completed"}
    cont = {"event": "end", "segment": 1, "exit_code": 75, "outcome": "continue"}
    assert finished_end([start, done], 2) == done
    assert finished_end([start, done], 4) is None  # a rung: the next budget must train
    assert finished_end([start, cont], 2) is None
    assert finished_end([start], 2) is None  # a segment that died without an end event


def test_log_deleted_while_a_segment_runs_is_kept_whole(tmp_path):
    job = make_job(tmp_path)
    env = {**os.environ, "SLOW_SECONDS": "1.5"}

    def delete_log():
        deadline = time.time() + 10
        while not job.log_path.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        job.log_path.unlink()  # a duplicate job's Snakemake removing the declared log

    thread = threading.Thread(target=delete_log)
    thread.start()
    assert run_segment(job, env=env) == 0
    thread.join()
    text = job.log_path.read_text()
    assert "training in" in text and "segment 1 ended" in text
    assert (job.trial_dir / "logs" / job.log_path.name).read_text() == text
    assert json.loads(job.result_path.read_text())["status"] == "completed"
    assert contract.SEGMENTS_FILE in os.listdir(job.trial_dir)
