"""Run one segment of one trial and leave an honest record of what happened.

The training script runs as a child process with its hyper-parameters as
separate arguments (never through a shell). Its exit code decides the outcome:
0 completed (or diverged), 76 pruned, 75 (the script saved and asked to stop):
continue later (a stop at a deadline requeues its own SLURM job, which starts
again 3 s later; otherwise the job exits 75 and Snakemake's ``retries`` start
the next segment). Death by a signal continues only if the segment made progress (a new
epoch or a new checkpoint) or the stop was asked for (a signal passed on to the
script); a script killed before it got anywhere (a crash at import, an OOM kill
at the same place again) is failed at once instead of being restarted
``max_continuations`` times. Anything else: failed for a real error, recorded at
once with the log's tail and never retried. Segments are appended to ``segments.jsonl`` in the trial folder.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.cluster import slurm_job
from snakesweep.cluster.layout import threads_per_process
from snakesweep.job import spawn, warm_start
from snakesweep.job.trial_lock import TrialLock
from snakesweep.report.results import best_epoch, is_finite
from snakesweep.store import contract
from snakesweep.store.atomic import write_bytes
from snakesweep.store.trial_folder import (
    append_segment_event,
    exit_seconds,
    finished_end,
    progress_mark,
    read_metrics,
    read_segments,
    read_timings,
    segment_counts,
    segment_end,
    segment_start,
    slurm_job_ids,
    wall_time,
    write_params,
    write_result,
)

FORWARDED_SIGNALS = spawn.FORWARDED_SIGNALS
LOG_TAIL_LINES = 20


@dataclass
class TrialJob:
    """What one training job needs to know; built by the workflow's training rule.

    The rule passes every checkpoint setting from the validated config; the field
    defaults are the schema's (``workflow/schemas/config.schema.yaml``, the one
    source), pinned by ``tests/test_defaults.py``, for callers outside the rule.
    """

    trial_id: str
    trial_dir: Path
    params: Mapping[str, Any]
    script: str
    budget: int
    metric: str
    mode: str
    result_path: Path
    log_path: Path
    threads: int = 1
    every_steps: int = 0
    every_seconds: float = 60.0
    keep: int = 2
    epoch_end_max_overhead: float | None = 0.01
    deadline_margin_s: float | str = "auto"
    max_continuations: int = 20
    #: Process layout (resources.processes_per_node, resources.nodes): ranks of one trial.
    processes_per_node: int = 1
    nodes: int = 1
    python: str = field(default_factory=lambda: sys.executable)
    #: Start a one-process trial as a fork of a prepared server (warm_start, docs/speed.md),
    #: which has imported torch, numpy, snakesweep and ``warm_modules``.
    warm_start: bool = True
    warm_modules: tuple[str, ...] = ()
    #: Where warm-start servers write their logs (None: beside their socket).
    warm_log_dir: Path | None = None

    @property
    def threads_per_process(self) -> int:
        """One rank's threads: ``threads`` is every rank's cores on a node together."""
        return threads_per_process(self.threads, self.processes_per_node)


#: The sweep config's ``checkpoint`` keys that are TrialJob fields of the same name.
CHECKPOINT_FIELDS = (
    "every_steps",
    "every_seconds",
    "keep",
    "epoch_end_max_overhead",
    "deadline_margin_s",
    "max_continuations",
)


def checkpoint_fields(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """TrialJob's checkpoint fields from the validated config's ``checkpoint`` section, so the
    training rule and the pack rule pass the same settings the same way."""
    return {name: checkpoint[name] for name in CHECKPOINT_FIELDS}


def warm_fields(config: Mapping[str, Any], job_log: Path) -> dict[str, Any]:
    """TrialJob's warm-start fields from the validated config, read by the rules' scripts
    (not rule params: switching the warm start must not make Snakemake rerun trials).
    Servers log beside the jobs' logs (``logs/warm/``)."""
    return {
        "warm_start": bool(config["warm_start"]),
        "warm_modules": tuple(config["warm_modules"]),
        "warm_log_dir": job_log.parent.parent / "warm",
    }


def format_argument(value: Any) -> str:
    """Text of a parameter value on the command line: strings verbatim, others as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def command_line(job: TrialJob) -> list[str]:
    argv = [job.python, job.script]
    for name, value in sorted(job.params.items()):
        # One argv word per parameter, "--name=value": a value that starts with "-" stays a value.
        argv.append(f"--{name}={format_argument(value)}")
    return argv


def run_segment(
    job: TrialJob, env: Mapping[str, str] | None = None, *, requeue: bool = True
) -> int:
    """Run the next segment of ``job``; return the exit code for the Snakemake job (0 or 75).

    ``requeue=False``: never requeue the SLURM job on a continuation; a pack of trials shares
    one job and requeues it once, after all its members ended (``snakesweep.job.pack_job``).
    Holds the trial's lock (``snakesweep.job.trial_lock``) throughout: a second job for the same
    trial (a restarted controller resubmits trials whose old jobs still run) waits for the
    first to end, then resumes, or only rewrites the record if the trial finished meanwhile.
    """
    env = dict(os.environ if env is None else env)
    job.trial_dir.mkdir(parents=True, exist_ok=True)
    job.log_path.parent.mkdir(parents=True, exist_ok=True)
    signals: list[int] = []
    with TrialLock(job.trial_dir, env=env, trial_id=job.trial_id):
        code = _run_segment_locked(job, env, signals)
    if code == contract.EXIT_CONTINUE and not signals:
        # Stopped by itself before the job's end (a deadline), not by Slurm or a user: continue
        # in this same job, requeued, rather than through the controller (slurm_job.requeue_own_job).
        # Slurm answers a requeue with SIGTERM to the whole job: ignored here, so that the time the
        # exit took (the auto margin's input) is still recorded.
        previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            requeued = _requeue(job, env) if requeue else False
            _record_exit(job, requeued)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return code


def _requeue(job: TrialJob, env: Mapping[str, str]) -> bool:
    """Requeue our own SLURM job for the next segment; whether it was."""
    return continue_in_requeued_job(env, lambda message: _say(job, message))


def continue_in_requeued_job(env: Mapping[str, str], say: Callable[[str], None]) -> bool:
    """Requeue the SLURM job we run in and have it start again in seconds rather than after
    Slurm's hold (docs/slurm.md); whether it was requeued. Shared by a trial's job and a pack's."""
    own_job = slurm_job.job_id(env)
    if not own_job:
        return False
    say(f"continues in SLURM job {own_job}, requeued")
    why_not = slurm_job.requeue_own_job(env)
    if why_not is not None:
        say(f"could not requeue ({why_not}); continuing in a new job")
        return False
    slow = slurm_job.hasten_requeued_start(env)
    if slow is not None:
        config = slurm_job.cluster_config() or {}
        hold = slurm_job.cred_expire_s(config) + 1
        say(f"could not set the next start ({slow}); Slurm's requeue hold (~{hold:g}s) applies")
    return True


def _record_exit(job: TrialJob, requeued: bool) -> None:
    """Append how long the exit path took, from the session's stop (``stopped_at`` in its
    timings) to now: the ``auto`` deadline margin of the next segments is derived from it."""
    stopped = read_timings(job.trial_dir).get("stopped_at")
    starts = [e for e in read_segments(job.trial_dir) if e.get("event") == "start"]
    if stopped is None or not starts or stopped < starts[-1].get("time", 0.0):
        return  # this segment's script stopped without a TrialSession's stop: nothing measured
    now = time.time()
    event = {
        "event": "exit",
        "segment": starts[-1].get("segment"),
        "time": now,
        "exit_s": round(now - stopped, 3),
        "requeued": requeued,
    }
    append_segment_event(job.trial_dir, event)


def _say(job: TrialJob, message: str) -> None:
    """One line to the job's output and the trial's log."""
    print(f"snakesweep: trial {job.trial_id} {message}", file=sys.stderr, flush=True)
    with open(job.log_path, "a", encoding="utf-8") as log:
        log.write(f"=== {message}\n")


def _run_segment_locked(job: TrialJob, env: dict[str, str], signals: list[int]) -> int:
    if not (job.trial_dir / contract.PARAMS_FILE).exists():
        write_params(job.trial_dir, job.trial_id, job.params)

    events = read_segments(job.trial_dir)
    continued = sum(1 for e in events if e.get("event") == "end" and e.get("outcome") == "continue")
    segment = 1 + sum(1 for e in events if e.get("event") == "start")
    done = finished_end(events, job.budget)
    # Snakemake deletes a job's log before it runs the job (--forcerun, a retry): put the
    # earlier segments' output back before anything reads it.
    _restore_log(job)
    # A trial that failed for a real error is run again when its job runs again (a retry, its
    # record deleted, --forcerun): the user may have fixed the cause. Anything else finished is
    # not retrained.
    finished = _classify(done.get("exit_code"), continued, job) if done is not None else None
    if finished is not None and finished[0] not in ("continue", "failed"):
        # Finished by an earlier job whose success Snakemake never saw (its controller was
        # killed), or rerun by --forcerun: rewrite the record from the trial folder; training
        # never runs twice.
        outcome, error = finished
        write_result(job.result_path, build_record(job, outcome, error, events))
        print(
            f"snakesweep: trial {job.trial_id} already finished at {job.budget} epochs "
            f"(segment {done.get('segment')}: {done.get('outcome')}); record rewritten",
            file=sys.stderr,
        )
        return 0
    started = time.time()
    start_event = segment_start(
        segment, job.budget, started, socket.gethostname(), os.getpid(), slurm_job.job_id(env)
    )
    append_segment_event(job.trial_dir, start_event)

    child_env = _child_env(job, env, started)
    argv = command_line(job)
    # One open file for the whole segment: if the path is deleted meanwhile (a duplicate job's
    # Snakemake removes the log before it waits for our lock) the text is still read back.
    with open(job.log_path, "a+", encoding="utf-8", errors="surrogateescape") as log:
        log.write(
            f"=== snakesweep trial {job.trial_id} segment {segment} (budget {job.budget} epochs) "
            f"on {start_event['host']}"
            + (f", SLURM job {start_event['slurm_job_id']}" if start_event["slurm_job_id"] else "")
            + f", {time.strftime('%Y-%m-%d %H:%M:%S')}\n=== {' '.join(argv)}\n"
        )
        log.flush()
        before = progress_mark(job.trial_dir)
        returncode, who = _run_ranks(job, argv, child_env, log, signals)
        progressed = progress_mark(job.trial_dir) != before

        outcome, error = _classify(
            returncode, continued, job, progressed=progressed, stop_requested=bool(signals), who=who
        )
        append_segment_event(
            job.trial_dir,
            segment_end(segment, time.time(), returncode, outcome, progressed, bool(signals)),
        )
        log.write(f"=== segment {segment} ended: exit code {returncode} -> {outcome}\n")
        log.flush()
        log.seek(0)
        text = log.read()
    _keep_log(job, text)
    if outcome == "continue":
        print(
            f"snakesweep: trial {job.trial_id} saved its state (segment {segment}); exiting "
            f"{contract.EXIT_CONTINUE} so that the next job continues it",
            file=sys.stderr,
        )
        return contract.EXIT_CONTINUE
    record = build_record(job, outcome, error, read_segments(job.trial_dir))
    write_result(job.result_path, record)
    if record["status"] == "failed":
        print(
            f"snakesweep: trial {job.trial_id} FAILED: {record['error']} (log: {job.log_path})",
            file=sys.stderr,
        )
    return 0


def _log_copy(job: TrialJob) -> Path:
    return job.trial_dir / "logs" / job.log_path.name


def _restore_log(job: TrialJob) -> None:
    """Put earlier segments' output back: Snakemake deletes a job's log before a retry.

    Where the file system allows, the rule's log becomes a hard link to the trial's kept copy:
    one file under two names, so whatever a segment writes is kept even when its job step is
    killed (SIGKILL, a node failure) before `_keep_log` runs. Elsewhere the copy is put back.
    """
    copy = _log_copy(job)
    log = job.log_path
    if _same_file(log, copy):
        return
    if copy.exists() and (not log.exists() or log.stat().st_size == 0):
        data = copy.read_bytes()
    elif log.exists():
        data = log.read_bytes()
    else:
        data = b""
    write_bytes(copy, data)
    try:
        tmp = log.with_name(f".{log.name}.link")
        tmp.unlink(missing_ok=True)
        os.link(copy, tmp)
        os.replace(tmp, log)
    except OSError:  # no hard links here (some object stores, FUSE): copy back at the end
        write_bytes(log, data)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _keep_log(job: TrialJob, text: str | None = None) -> None:
    if _same_file(job.log_path, _log_copy(job)):
        return  # one file under two names: already kept
    data = job.log_path.read_bytes() if text is None else text.encode("utf-8", "surrogateescape")
    write_bytes(_log_copy(job), data)
    if not job.log_path.exists():  # deleted while the segment ran: put it back
        _restore_log(job)


def _child_env(job: TrialJob, env: dict[str, str], started: float) -> dict[str, str]:
    child = dict(env)
    child.update(
        {
            contract.ENV_TRIAL_DIR: str(job.trial_dir),
            contract.ENV_TRIAL_ID: job.trial_id,
            contract.ENV_STOP_AT_EPOCH: str(job.budget),
            contract.ENV_CHECKPOINT_EVERY_STEPS: str(job.every_steps),
            contract.ENV_CHECKPOINT_EVERY_SECONDS: str(job.every_seconds),
            contract.ENV_CHECKPOINT_KEEP: str(job.keep),
            contract.ENV_CHECKPOINT_MAX_OVERHEAD: str(job.epoch_end_max_overhead).lower(),
            contract.ENV_DEADLINE_MARGIN: str(job.deadline_margin_s).lower(),
            contract.ENV_METRIC: job.metric,
            contract.ENV_MODE: job.mode,
            "PYTHONUNBUFFERED": "1",
        }
    )
    measured_exit = exit_seconds(read_segments(job.trial_dir))
    if measured_exit is not None:
        child[contract.ENV_EXIT_SECONDS] = str(measured_exit)
    kill_wait = slurm_job.kill_wait(env)
    if kill_wait is not None:
        child[contract.ENV_KILL_WAIT] = str(kill_wait)
    child.setdefault("OMP_NUM_THREADS", str(job.threads))
    child.setdefault("MKL_NUM_THREADS", str(job.threads))
    if env.get(contract.ENV_SEGMENT_SECONDS) and not env.get(contract.ENV_DEADLINE):
        child[contract.ENV_DEADLINE] = str(started + float(env[contract.ENV_SEGMENT_SECONDS]))
    return child


def _run_ranks(
    job: TrialJob, argv: Sequence[str], env: Mapping[str, str], log: Any, signals: list[int]
) -> tuple[int, str]:
    """Run the script's one process, or its ranks (:mod:`snakesweep.job.spawn`); the exit code
    that stands for the segment and which process it came from (for error messages)."""
    world = job.processes_per_node * job.nodes
    if world == 1:
        code = None
        if job.warm_start:  # ranks of a multi-process trial always start fresh
            code = warm_start.run_warm(
                job.python, argv[1:], env, log, signals, job.warm_modules, job.warm_log_dir
            )
        if code is None:
            code = _run_child(argv, env, log, signals)
        return code, "training script"
    if job.nodes == 1:
        decided, _ = spawn.run_ranks(argv, env, log, signals, world, job.threads_per_process)
        return decided.code, f"training script (rank {decided.rank} of {world})"
    if not slurm_job.job_id(env):
        raise RuntimeError(f"resources.nodes={job.nodes} needs a SLURM allocation (srun)")
    decided, _ = spawn.run_srun(
        argv, env, log, signals, world, job.processes_per_node, job.threads_per_process
    )
    return decided.code, f"training script ({world} srun tasks)"


def _run_child(argv: Sequence[str], env: Mapping[str, str], log: Any, signals: list[int]) -> int:
    """Run the training script; pass stop signals on to it and wait for it to save and exit.

    Each signal passed on is appended to ``signals``: such a stop was asked for.
    """
    proc = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, env=dict(env), stdin=subprocess.DEVNULL
    )

    def forward(signum: int, frame: Any) -> None:
        signals.append(signum)
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _classify(
    returncode: int,
    continued: int,
    job: TrialJob,
    *,
    progressed: bool = True,
    stop_requested: bool = False,
    who: str = "training script",
) -> tuple[str, str | None]:
    if returncode == 0:
        return "completed", None
    if returncode == contract.EXIT_PRUNED:
        return "pruned", None
    if returncode < 0 and not progressed and not stop_requested:
        name = _signal_name(returncode)
        return "failed", (
            f"{who} was killed by {name} before it reported an epoch or saved a "
            "checkpoint, and no stop was asked for: not continued (a crash at startup, or an "
            f"out-of-memory kill, would repeat). {_log_tail(job.log_path)}"
        )
    if returncode == contract.EXIT_CONTINUE or returncode < 0:
        if continued >= job.max_continuations:
            return "failed", (
                f"gave up after {continued} continuations (checkpoint.max_continuations="
                f"{job.max_continuations}); last segment exit code {returncode}"
            )
        return "continue", None
    return "failed", f"{who} exited with code {returncode}: {_log_tail(job.log_path)}"


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def _log_tail(path: Path) -> str:
    """The last lines of a trial's log, for its record's error; a missing log is said as such
    (never an error: the record must still be written)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"no log tail ({path} is missing)"
    lines = [ln for ln in text.splitlines() if not ln.startswith("===")]
    tail = lines[-LOG_TAIL_LINES:]
    # The last line of a traceback names the exception; keep it first for the leaderboard.
    return (tail[-1].strip() if tail else "no output") + (
        " | " + " / ".join(t.strip() for t in tail[:-1][-5:]) if len(tail) > 1 else ""
    )


def build_record(
    job: TrialJob, outcome: str, error: str | None, events: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The result record of a trial at ``job.budget`` epochs."""
    # A lower rung's record recomputed after the trial trained further describes that rung.
    history = [row for row in read_metrics(job.trial_dir) if row["epoch"] <= job.budget]
    counts = segment_counts(events)
    status = outcome
    final = history[-1].get(job.metric) if history else None
    if status in ("completed", "pruned"):
        if not history:
            status, error = (
                "failed",
                "the training script reported no metrics (metrics.jsonl is empty)",
            )
        elif job.metric not in history[-1]:
            reported = sorted({k for row in history for k in row} - {"epoch"})
            status, error = (
                "failed",
                f"metric {job.metric!r} was never reported; the script reported {reported}",
            )
        elif status == "completed" and history[-1]["epoch"] < job.budget:
            status, error = (
                "failed",
                (
                    f"the script exited 0 after {history[-1]['epoch']} epochs; the budget is {job.budget}"
                ),
            )
        elif not is_finite(final):
            status, error = "diverged", f"{job.metric} is {final} at epoch {history[-1]['epoch']}"
    best, best_at = best_epoch(history, job.metric, job.mode)
    return {
        "trial_id": job.trial_id,
        "status": status,
        "metric": job.metric,
        "mode": job.mode,
        "final": final if is_finite(final) else None,
        "best": best,
        "best_epoch": best_at,
        "epochs_done": history[-1]["epoch"] if history else 0,
        "budget": job.budget,
        "params": dict(job.params),
        "wall_time_s": round(wall_time(events), 3),
        "segments": counts.segments,
        # Extra segments at the same budget: time limits, preemption, kills (not rungs).
        "restarts": counts.restarts,
        "slurm_job_ids": slurm_job_ids(events),  # in order of first use
        "error": error,
        "log": str(job.log_path),
        "history": history,
    }
