"""The job of a pack: several trials trained side by side, each in its own process.

Why: on SLURM every job costs seconds of node time around its trial (two Snakemake processes
start inside it, docs/slurm.md), which trials of seconds pay many times over; a pack pays it
once for all its members. Each member is a forked copy of this process running the usual
training job (:func:`snakesweep.job.training_job.run_training_job`, so :func:`snakesweep.job.launch.
run_segment`): its own trial lock, segments, log, provenance, checkpoint, deadline, exit code
and record (``packed-result-<budget>.json`` in its trial folder; the workflow copies it to
``result-<budget>.json`` after the pack's job). At most ``slots`` members run at once, each
pinned to its own CPUs (and GPUs) of the job's allocation inside a SLURM job.

A member that must continue (exit 75) makes the whole pack continue: the pack's job requeues
itself on SLURM (or exits 75, so that Snakemake's retries start it again) once every member
ended. The next run of the pack trains only what is left: members that finished in an earlier
run of this pack are kept (the pack's state file), even when they failed, so a failed member
fails alone and is not run again by its neighbours' continuations.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from snakesweep.cluster import slurm_job
from snakesweep.cluster.layout import thread_env
from snakesweep.cluster.packing import slot_cpus, slot_gpus
from snakesweep.job.launch import FORWARDED_SIGNALS, TrialJob, continue_in_requeued_job, run_segment
from snakesweep.job.training_job import run_training_job
from snakesweep.job.warm_start import owner_token
from snakesweep.store import contract
from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json

ENV_CUDA = "CUDA_VISIBLE_DEVICES"


@dataclass
class Member:
    """One trial of a pack: its training job, and the record the workflow keeps for it."""

    job: TrialJob
    #: The rule's declared record (``result-<budget>.json``): present when the member finished
    #: before this pack was formed (e.g. a partial pack that grew) or in a completed run.
    record: Path


def run_pack(
    members: Sequence[Member],
    config: Mapping[str, Any] | None,
    *,
    slots: int,
    cpus: int,
    gpus: int,
    state_path: Path,
    workflow_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    """Train the members that are not done, ``slots`` at a time; 0, 75 (continue) or 1.

    1 means a member's process itself broke (not its trial: a failed trial is a record and 0).
    """
    env = dict(os.environ if env is None else env)
    if slurm_job.job_id(env):  # the members' warm-start server lives and ends with this job
        env[contract.ENV_WARM_OWNER] = owner_token(env=env)
    say = say or (lambda text: print(f"snakesweep pack: {text}", file=sys.stderr, flush=True))
    state: dict[str, int] = dict(read_json(state_path) or {})
    queue = []
    for member in members:
        tid = member.job.trial_id
        if _keep_record(member):
            say(f"{tid} finished before this pack; record kept, not trained again")
        elif tid in state:
            say(f"{tid} finished in an earlier run of this pack (exit {state[tid]}); not run again")
        else:
            queue.append(member)

    stop: list[int] = []
    running: dict[int, tuple[Member, int]] = {}  # pid -> (member, slot)

    def on_signal(signum: int, frame: Any) -> None:
        stop.append(signum)
        for pid in list(running):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    previous = {sig: signal.signal(sig, on_signal) for sig in FORWARDED_SIGNALS}
    codes: dict[str, int] = {}
    try:
        while queue or running:
            free = sorted(set(range(slots)) - {slot for _, slot in running.values()})
            while queue and free and not stop:
                member, slot = queue.pop(0), free.pop(0)
                pid = _start_member(member, slot, config, workflow_dir, env, cpus, gpus)
                running[pid] = (member, slot)
                say(f"{member.job.trial_id} started in slot {slot} (pid {pid})")
            if not running:
                break  # stopped with members left unstarted
            pid, status = os.waitpid(-1, 0)
            if pid not in running:
                continue
            member, _ = running.pop(pid)
            code = os.waitstatus_to_exitcode(status)
            codes[member.job.trial_id] = code
            say(f"{member.job.trial_id} ended: exit {code}")
            if code == 0:  # a record was written: completed, pruned, diverged or failed
                state[member.job.trial_id] = code
                write_json(state_path, state)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    left = [m.job.trial_id for m in queue]
    broken = sorted(t for t, c in codes.items() if c not in (0, contract.EXIT_CONTINUE))
    if broken:
        say(f"member process(es) {broken} broke; the pack's job fails (retried by Snakemake)")
        return 1
    if left or any(c == contract.EXIT_CONTINUE for c in codes.values()):
        going_on = sorted(left + [t for t, c in codes.items() if c == contract.EXIT_CONTINUE])
        say(f"{going_on} continue in the next run of this pack")
        if not stop:
            continue_in_requeued_job(env, say)
        return contract.EXIT_CONTINUE
    return 0


def finish_pack(state_path: Path) -> None:
    """Forget the pack's run state once it succeeded: a later run (asked for by deleting its
    marker, ``--forcerun``) runs failed members again, as for unpacked trials."""
    state_path.unlink(missing_ok=True)


def _keep_record(member: Member) -> bool:
    """A declared record that exists is the member's result: copy it to the member's own record
    (which the workflow copies back) and do not train; deleting it asks for a new run."""
    record = read_json(member.record)
    if record is None:
        return False
    write_json(member.job.result_path, record)
    return True


def _start_member(
    member: Member,
    slot: int,
    config: Mapping[str, Any] | None,
    workflow_dir: str | os.PathLike | None,
    env: Mapping[str, str],
    cpus: int,
    gpus: int,
) -> int:
    """Fork a member; the child trains it and leaves with the training job's exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for sig in FORWARDED_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        child_env = _member_env(env, slot, cpus, gpus)
        os.environ.clear()
        os.environ.update(child_env)
        code = run_training_job(
            member.job, config, workflow_dir, run=partial(run_segment, requeue=False)
        )
    except BaseException:  # noqa: BLE001 (the child must always leave through os._exit)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _member_env(env: Mapping[str, str], slot: int, cpus: int, gpus: int) -> dict[str, str]:
    """The member's share of the job: the thread counts of one trial (as an unpacked job gets
    them; numerics depend on them), its CPUs pinned inside a SLURM job (locally several jobs
    share the machine's CPUs, so nothing is pinned), its GPUs through CUDA_VISIBLE_DEVICES."""
    child = thread_env(env, cpus)
    if slurm_job.job_id(env) and hasattr(os, "sched_setaffinity"):
        mine = slot_cpus(sorted(os.sched_getaffinity(0)), slot, cpus)
        if mine is not None:
            os.sched_setaffinity(0, mine)
    if gpus > 0:
        mine_gpus = slot_gpus(env.get(ENV_CUDA), slot, gpus)
        if mine_gpus is not None:
            child[ENV_CUDA] = mine_gpus
    return child
