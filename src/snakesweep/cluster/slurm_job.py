"""The SLURM job environment: the one reader of ``SLURM_*`` variables and caller of ``squeue``
and ``scontrol``.

Like submitit's ``JobEnvironment``: code that needs to know whether it runs in a
SLURM job, which one, or what SLURM says about a job (state, end time) asks
here, so that the variable names, the ``squeue`` command line, its timeout and
what a failure means are decided once.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

#: The id of the job this process runs in (unset outside SLURM).
ENV_JOB_ID = "SLURM_JOB_ID"
#: How long one ``squeue`` call may take before it counts as "SLURM did not answer".
SQUEUE_TIMEOUT_S = 20.0
#: SLURM job states in which the job's processes may still run.
ALIVE_STATES = frozenset(
    {
        "RUNNING",
        "COMPLETING",
        "CONFIGURING",
        "SUSPENDED",
        "STOPPED",
        "SIGNALING",
        "RESIZING",
        "STAGE_OUT",
    }
)


def job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The SLURM job id of this process (``None`` outside a SLURM job)."""
    env = os.environ if env is None else env
    return env.get(ENV_JOB_ID) or None


def _ask(command: list[str], run: Callable[..., Any] | None = None) -> Any | None:
    """Run one Slurm command with the module's timeout; ``None`` if it could not run at all."""
    try:
        return (run or subprocess.run)(
            command,
            capture_output=True,
            text=True,
            timeout=SQUEUE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def squeue_field(job: str, field: str, run: Callable[..., Any] | None = None) -> str | None:
    """One ``squeue --format`` field of ``job``: its text, ``""`` when squeue does not
    list the job (ended and forgotten), ``None`` when squeue could not answer."""
    out = _ask(["squeue", "--noheader", "--jobs", str(job), "--format", field], run)
    if out is None:
        return None
    if out.returncode != 0:
        # squeue exits 1 with "Invalid job id specified" for a job it has forgotten.
        return "" if "invalid job id" in (out.stderr or "").lower() else None
    lines = out.stdout.splitlines()
    return lines[0].strip() if lines else ""


def job_state(job: str) -> str | None:
    """State of a SLURM job (``RUNNING``...; ``""``: not listed); ``None`` if squeue failed."""
    text = squeue_field(job, "%T")
    return text.upper() if text is not None else None


def parse_slurm_time(text: str) -> float | None:
    """Parse squeue's ``%e`` (``2026-11-22T10:00:00``, local time) to a Unix time.

    Returns ``None`` for values that mean "no end" (``N/A``, ``Unknown``, empty).
    """
    text = text.strip()
    if not text or text in ("N/A", "Unknown", "NONE", "None"):
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").timestamp()
    except ValueError:
        return None


def job_end_time(job: str, query: Callable[[str, str], str | None] = squeue_field) -> float | None:
    """End time of SLURM job ``job`` as squeue reports it; ``None`` if unknown or no answer."""
    text = query(job, "%e")
    return parse_slurm_time(text) if text else None


# -- the cluster's settings (`scontrol show config`) -------------------------------------------

#: Slurm's KillWait when the cluster does not say (slurm.conf's documented default).
DEFAULT_KILL_WAIT_S = 30.0
#: Slurm's job credential lifetime when AuthInfo has no ``cred_expire`` (slurm.conf default).
DEFAULT_CRED_EXPIRE_S = 120.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(sec|secs|seconds?|s)?$")


def parse_config(text: str) -> dict[str, str]:
    """``scontrol show config``'s ``Key = value`` lines as a dict (other lines are left out)."""
    config = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        key = key.strip()
        if sep and key and " " not in key:
            config[key] = value.strip()
    return config


def _seconds(value: str | None) -> float | None:
    match = _DURATION.match(value.strip()) if value else None
    return float(match.group(1)) if match else None


def kill_wait_s(config: Mapping[str, str]) -> float:
    """Seconds between Slurm's SIGTERM at a job's limit (or a requeue, scancel) and its SIGKILL."""
    found = _seconds(config.get("KillWait"))
    return DEFAULT_KILL_WAIT_S if found is None else found


def cred_expire_s(config: Mapping[str, str]) -> float:
    """The job credential lifetime (``AuthInfo=...,cred_expire=N``): Slurm holds a requeued job
    this long + 1 s after it ended before it may start again (reason ``BeginTime``)."""
    for part in re.split(r"[,\s]+", config.get("AuthInfo", "")):
        name, _, value = part.partition("=")
        seconds = _seconds(value) if name == "cred_expire" else None
        if seconds is not None:
            return seconds
    return DEFAULT_CRED_EXPIRE_S


_config_cache: dict[str, str] | None = None


def cluster_config(run: Callable[..., Any] | None = None) -> dict[str, str] | None:
    """The cluster's settings, asked once per process (``None`` when scontrol cannot answer).

    ``run`` replaces ``subprocess.run`` (tests); such answers are not cached."""
    global _config_cache
    if run is None and _config_cache is not None:
        return _config_cache
    out = _ask(["scontrol", "show", "config"], run)
    if out is None or out.returncode != 0:
        return None
    config = parse_config(out.stdout)
    if run is None:
        _config_cache = config
    return config


def kill_wait(env: Mapping[str, str]) -> float | None:
    """KillWait of the cluster whose job we run in; ``None`` outside SLURM or without an answer."""
    if not job_id(env):
        return None
    config = cluster_config()
    return kill_wait_s(config) if config is not None else None


# Continuing a trial in its own job (why, from the measurements in docs/slurm.md):
# A job that ends FAILED (exit 75) is seen by the controller only at its next status round,
# and the SLURM executor plugin (2.8.0) spaces those rounds 10 s further apart after every round
# in which no job completed, up to 180 s, so continuations wait longer and longer and each one
# prints an error. A requeued job stays PENDING/RUNNING under the same id: the controller never has
# to notice, and Slurm records COMPLETED once the trial is done. Slurm starts it again
# ``cred_expire`` + 1 s after it ended (slurm.conf AuthInfo, default 120 s). docs/slurm.md has the
# measurements.

#: Set to 0 to continue through a new job (Snakemake's retries) instead.
ENV_REQUEUE = "SNAKESWEEP_SLURM_REQUEUE"
#: Seconds ahead that a requeued job's next start is set (``scontrol update StartTime=now+N``).
#: Slurm holds a requeued job for ``cred_expire`` + 1 s once it has ended, unless its begin time
#: then already lies in the future: N must outlast the job's own ending (its processes leaving on
#: the requeue's SIGTERM, and the cluster's Epilog: 0.7 s here). Too short costs the hold, never a
#: failure. ``SNAKESWEEP_SLURM_REQUEUE_START_S`` overrides it (a cluster with a slow Epilog).
REQUEUE_START_DELAY_S = 3
ENV_REQUEUE_START = "SNAKESWEEP_SLURM_REQUEUE_START_S"


def requeue_own_job(env: Mapping[str, str]) -> str | None:
    """Ask Slurm to requeue the job we run in; ``None`` on success, else why not.

    Slurm then sends SIGTERM to the job's processes (this one included) and runs the job's batch
    script again. It refuses jobs submitted without ``--requeue`` on clusters with
    ``JobRequeue=0``; the caller then continues the usual way (exit 75, a new job).
    """
    own = job_id(env)
    if not own:
        return "not in a SLURM job"
    if env.get(ENV_REQUEUE, "1") == "0":
        return f"{ENV_REQUEUE}=0"
    try:
        proc = subprocess.run(
            ["scontrol", "requeue", own], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"scontrol requeue {own}: {error}"
    if proc.returncode != 0:
        return f"scontrol requeue {own}: {(proc.stderr or proc.stdout).strip()}"
    return None


def hasten_requeued_start(env: Mapping[str, str]) -> str | None:
    """Set our requeued job's next start ``REQUEUE_START_DELAY_S`` ahead (or as many seconds as
    ``ENV_REQUEUE_START`` says) instead of Slurm's hold of ``cred_expire`` + 1 s (default 121 s);
    ``None`` on success, else why not (the hold then applies: slower, nothing else). Measured on
    the local cluster in docs/slurm.md."""
    own = job_id(env)
    if not own:
        return "not in a SLURM job"
    delay = env.get(ENV_REQUEUE_START) or str(REQUEUE_START_DELAY_S)
    if not delay.isdigit():
        return f"{ENV_REQUEUE_START}={delay!r} is not a whole number of seconds"
    command = ["scontrol", "update", f"JobId={own}", f"StartTime=now+{delay}"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{' '.join(command)}: {error}"
    if proc.returncode != 0:
        return f"{' '.join(command)}: {(proc.stderr or proc.stdout).strip()}"
    return None


# Ranks of a multi-node trial, one SLURM task each (srun): who they are in the job.
#: Rank, local rank and world size of a task started by ``srun``.
ENV_PROCID = "SLURM_PROCID"
ENV_LOCALID = "SLURM_LOCALID"
ENV_NTASKS = "SLURM_NTASKS"
ENV_NODELIST = "SLURM_JOB_NODELIST"


def task_rank(env: Mapping[str, str]) -> tuple[int, int, int] | None:
    """``(rank, local_rank, world_size)`` of an ``srun`` task; ``None`` outside one."""
    if not env.get(ENV_PROCID) or not env.get(ENV_NTASKS):
        return None
    return int(env[ENV_PROCID]), int(env.get(ENV_LOCALID) or 0), int(env[ENV_NTASKS])


def first_node(env: Mapping[str, str]) -> str | None:
    """The first host of this job's allocation (``scontrol show hostnames``), rank 0's host."""
    nodelist = env.get(ENV_NODELIST)
    if not nodelist:
        return None
    proc = _ask(["scontrol", "show", "hostnames", nodelist])
    if proc is None:
        return None
    hosts = proc.stdout.split()
    return hosts[0] if proc.returncode == 0 and hosts else None
