"""The launcher's bookkeeping around one segment: logs kept across retries, restarts counted."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from trial_processes import TRAIN, assert_matches_reference, base_env, train_job

from snakesweep.job.launch import TrialJob, command_line, run_segment
from snakesweep.store import contract
from snakesweep.store.contract import ENV_SEGMENT_SECONDS
from snakesweep.store.trial_folder import read_segments

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
    marker = trial / "first-segment-done"
    print("hello from segment", 1 if not marker.exists() else 2)
    if not marker.exists():
        marker.touch()
        sys.exit(75)
    (trial / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "score": 0.5}) + "\\n")
    """
)


def make_job(tmp_path: Path, **overrides) -> TrialJob:
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    fields = dict(
        trial_id="abc123abc123",
        trial_dir=tmp_path / "trial",
        params={"epochs": 1, "name": "-x; $(y)"},
        script=str(script),
        budget=1,
        metric="score",
        mode="max",
        result_path=tmp_path / "trial" / "result-1.json",
        log_path=tmp_path / "logs" / "abc123abc123-1ep.log",
        python=sys.executable,
    )
    fields.update(overrides)
    return TrialJob(**fields)


def test_command_line_is_one_word_per_parameter(tmp_path):
    job = make_job(tmp_path)
    assert command_line(job)[2:] == ["--epochs=1", "--name=-x; $(y)"]


def test_log_of_earlier_segments_survives_snakemake_deleting_it(tmp_path):
    job = make_job(tmp_path)
    assert run_segment(job) == contract.EXIT_CONTINUE
    job.log_path.unlink()  # what Snakemake does before it retries a job
    assert run_segment(job) == 0
    log = job.log_path.read_text()
    assert "hello from segment 1" in log and "hello from segment 2" in log
    assert log.index("segment 1") < log.index("hello from segment 2")
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "completed"
    assert (record["segments"], record["restarts"]) == (2, 1)


def test_rungs_are_not_counted_as_restarts(tmp_path):
    job = make_job(tmp_path)
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "first-segment-done").touch()
    assert run_segment(job) == 0
    second_rung = make_job(tmp_path, budget=2, result_path=tmp_path / "trial" / "result-2.json")
    (tmp_path / "trial" / "metrics.jsonl").unlink()
    run_segment(second_rung)
    record = json.loads(second_rung.result_path.read_text())
    assert (record["segments"], record["restarts"]) == (2, 0)


def test_a_lower_rungs_record_describes_that_rung_only(tmp_path):
    # Recomputed after the trial trained further (say its result-1.json was deleted),
    # the record for budget 1 must report epoch 1, not the trial's latest epoch.
    job = make_job(tmp_path)
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "first-segment-done").touch()
    assert run_segment(job) == 0
    rows = [{"epoch": 1, "score": 0.5}, {"epoch": 2, "score": 0.9}]
    (tmp_path / "trial" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    from snakesweep.job.launch import build_record
    from snakesweep.store.trial_folder import read_segments

    record = build_record(job, "completed", None, read_segments(job.trial_dir))
    assert (record["epochs_done"], record["final"], len(record["history"])) == (1, 0.5, 1)


def test_the_records_slurm_job_ids_keep_the_order_the_trial_ran_in(tmp_path):
    # Job 10 ran after job 9 (a retry in a new job): a string sort would put "10" first.
    from snakesweep.job.launch import build_record
    from snakesweep.store.trial_folder import (
        append_segment_event,
        read_segments,
        segment_end,
        segment_start,
    )

    job = make_job(tmp_path)
    job.trial_dir.mkdir()
    for segment, job_id in enumerate(["9", "9", "10"], start=1):
        append_segment_event(job.trial_dir, segment_start(segment, 1, segment, "node", 1, job_id))
        append_segment_event(job.trial_dir, segment_end(segment, segment + 0.5, 0, "completed"))
    record = build_record(job, "completed", None, read_segments(job.trial_dir))
    assert record["slurm_job_ids"] == ["9", "10"]


def test_a_failed_trial_runs_again_when_its_record_is_deleted(tmp_path):
    job = make_job(tmp_path, script=str(tmp_path / "broken.py"))
    (tmp_path / "broken.py").write_text("raise SystemExit('bug in my script')\n")
    assert run_segment(job) == 0
    assert json.loads(job.result_path.read_text())["status"] == "failed"
    # The user fixes the script and deletes the record (or uses --forcerun): it trains again.
    (tmp_path / "broken.py").write_text(
        "import json, os, pathlib\n"
        "d = pathlib.Path(os.environ['SNAKESWEEP_TRIAL_DIR'])\n"
        "(d / 'metrics.jsonl').write_text(json.dumps({'epoch': 1, 'score': 1.0}) + '\\n')\n"
    )
    job.result_path.unlink()
    assert run_segment(job) == 0
    record = json.loads(job.result_path.read_text())
    assert (record["status"], record["final"], record["segments"]) == ("completed", 1.0, 2)


def test_a_finished_trial_is_not_trained_again(tmp_path):
    job = make_job(tmp_path)
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "first-segment-done").touch()
    assert run_segment(job) == 0
    job.result_path.unlink()
    assert run_segment(job) == 0  # only the record is rewritten
    assert json.loads(job.result_path.read_text())["segments"] == 1


KILLED_SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
    marker = trial / "segment-started"
    if not marker.exists():
        print("output of the killed segment", flush=True)
        marker.touch()
        time.sleep(60)
    print("output of the next segment")
    (trial / "metrics.jsonl").write_text('{"epoch": 1, "score": 0.5}\\n')
    """
)


def test_a_segment_killed_with_sigkill_keeps_its_output_in_the_log(tmp_path):
    """SIGKILL to the launcher and its script (`scancel --signal=KILL <job>.0` does that to the
    job step) leaves no chance to copy the log back; the next segment still shows that output."""
    job = make_job(tmp_path)
    Path(job.script).write_text(KILLED_SCRIPT)
    first = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import pickle, sys; from snakesweep.job.launch import run_segment; "
            "sys.exit(run_segment(pickle.loads(sys.stdin.buffer.read())))",
        ],
        stdin=subprocess.PIPE,
        start_new_session=True,
    )
    first.stdin.write(pickle.dumps(job))
    first.stdin.close()
    marker = job.trial_dir / "segment-started"
    deadline = time.time() + 30
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    job.log_path.unlink()  # Snakemake, before it runs the job again
    assert run_segment(job) == 0
    log = job.log_path.read_text()
    assert log.index("output of the killed segment") < log.index("output of the next segment")
    assert log.count("=== snakesweep trial abc123abc123 segment") == 2


def _job_running(tmp_path: Path, source: str) -> TrialJob:
    job = make_job(tmp_path, max_continuations=5)
    Path(job.script).write_text(textwrap.dedent(source))
    return job


def test_a_signal_death_without_progress_fails_at_once(tmp_path):
    job = _job_running(tmp_path, "import os\nos.abort()\n")
    assert run_segment(job, env={}) == 0  # recorded as failed, not continued
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "failed" and record["segments"] == 1
    assert "killed by SIGABRT before it reported an epoch" in record["error"]
    end = [json.loads(x) for x in (job.trial_dir / "segments.jsonl").read_text().splitlines()][-1]
    assert end["progressed"] is False and end["stop_requested"] is False


def test_a_signal_death_after_progress_continues(tmp_path):
    job = _job_running(
        tmp_path,
        """
        import json, os
        from pathlib import Path
        trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
        rows = (trial / "metrics.jsonl").read_text().splitlines() if (trial / "metrics.jsonl").exists() else []
        epoch = len(rows) + 1
        with open(trial / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"epoch": epoch, "score": 0.5}) + "\\n")
        if epoch < 2:
            os.abort()
        """,
    )
    job.budget = 2
    job.params = {"epochs": 2}
    assert run_segment(job, env={}) == contract.EXIT_CONTINUE  # an epoch was reported
    assert run_segment(job, env={}) == 0
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "completed" and record["segments"] == 2


# -- real training: failures, the continuation cap, continuations over segments ---------------
def test_crashing_trial_fails_fast_with_its_cause(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\nraise ValueError('deliberate failure in user code: ' + sys.argv[1])\n"
    )
    job = train_job(tmp_path, script, {"lr": 0.5})
    started = time.monotonic()
    assert run_segment(job, env=base_env()) == 0
    assert time.monotonic() - started < 30
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "failed"
    assert "ValueError: deliberate failure in user code: --lr=0.5" in record["error"]
    assert "exited with code 1" in record["error"]
    assert record["segments"] == 1 and record["restarts"] == 0
    assert [e["event"] for e in read_segments(job.trial_dir)] == ["start", "end"]


def test_max_continuations_caps_a_trial_that_never_finishes(tmp_path):
    script = tmp_path / "forever.py"
    script.write_text(f"import sys\nprint('saved, not done')\nsys.exit({contract.EXIT_CONTINUE})\n")
    job = train_job(tmp_path, script, {"lr": 0.5}, max_continuations=2)
    codes = [run_segment(job, env=base_env()) for _ in range(3)]
    assert codes == [contract.EXIT_CONTINUE, contract.EXIT_CONTINUE, 0]
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "failed"
    assert "gave up after 2 continuations" in record["error"]
    assert record["segments"] == 3 and record["restarts"] == 2


def test_run_segment_continues_a_trial_over_segments(reference, tmp_path):
    """SNAKESWEEP_SEGMENT_SECONDS: each segment gets start+N s; run_segment exits 75 until done.

    The first two segments get 0 s: their deadline has passed when the script starts, so each
    saves after one step and exits 75, however fast or busy the machine is; the next ones get
    plenty of time.
    """
    params = {"epochs": 3, "batch_size": 16, "width": 32, "dropout": 0.1, "lr": 0.01, "seed": 3}
    # Save every step here (the reference saved every 7): results must not depend on it.
    job = train_job(tmp_path, TRAIN, params, every_steps=1, max_continuations=5)
    plenty_s = 3 * reference["startup_s"] + 30
    codes: list[int] = []
    while not codes or codes[-1] != 0:
        assert len(codes) <= job.max_continuations, codes
        segment_s = 0 if len(codes) < 2 else plenty_s
        codes.append(run_segment(job, env=base_env(**{ENV_SEGMENT_SECONDS: f"{segment_s:.2f}"})))
    assert codes[:2] == [contract.EXIT_CONTINUE] * 2
    assert set(codes[:-1]) == {contract.EXIT_CONTINUE} and codes[-1] == 0
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "completed", record["error"]
    assert record["segments"] == len(codes) and record["restarts"] == len(codes) - 1
    assert record["history"] == reference["metrics"]
    ends = [e for e in read_segments(job.trial_dir) if e["event"] == "end"]
    assert [e["exit_code"] for e in ends] == codes[:-1] + [0]
    # One step each in the first two segments: their checkpoints say so.
    assert [e["progressed"] for e in ends[:2]] == [True, True]
    assert_matches_reference(job.trial_dir, reference)


def test_a_deadline_stops_exit_time_is_measured_and_reaches_the_next_segment(tmp_path):
    """The exit path runs from the session's stop (``stopped_at`` in its timings file) to the
    launcher's end; the next segment's script gets the measured figure for its auto margin. A
    script that exits 75 without a session's stop (no ``stopped_at``) measures nothing."""
    job = _job_running(
        tmp_path,
        """
        import json, os, sys, time
        from pathlib import Path
        trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
        print("margin", os.environ["SNAKESWEEP_DEADLINE_MARGIN"])
        print("exit_s", os.environ.get("SNAKESWEEP_EXIT_SECONDS", "unset"))
        runs = trial / "runs"
        n = len(runs.read_text()) if runs.exists() else 0
        runs.write_text("x" * (n + 1))
        if n == 0:  # stops as TrialSession does at a deadline
            (trial / "checkpoints").mkdir()
            timings = {"save_s": 0.1, "stopped_at": time.time()}
            (trial / "checkpoints" / "timings.json").write_text(json.dumps(timings))
            sys.exit(75)
        if n == 1:  # exits 75 by itself
            sys.exit(75)
        (trial / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "score": 0.5}) + "\\n")
        """,
    )
    assert run_segment(job, env={}) == contract.EXIT_CONTINUE
    assert run_segment(job, env={}) == contract.EXIT_CONTINUE
    assert run_segment(job, env={}) == 0
    events = [json.loads(x) for x in (job.trial_dir / "segments.jsonl").read_text().splitlines()]
    (exit_event,) = [e for e in events if e["event"] == "exit"]
    assert exit_event["segment"] == 1 and exit_event["requeued"] is False
    end_1 = next(e for e in events if e["event"] == "end" and e["segment"] == 1)
    assert exit_event["exit_s"] > 0 and exit_event["time"] >= end_1["time"]
    log = job.log_path.read_text()
    assert log.count("margin auto") == 3
    assert log.count(f"exit_s {exit_event['exit_s']}") == 2  # segments 2 and 3
    assert "exit_s unset" in log.split("segment 2")[0]
