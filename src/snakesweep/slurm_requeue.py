"""Continue a trial in its own SLURM job: ``scontrol requeue`` once a deadline stop has saved.

Why: a job that ends FAILED (exit 75) is seen by the controller only at its next status round,
and the SLURM executor plugin (2.8.0) spaces those rounds 10 s further apart after every round
in which no job completed, up to 180 s, so continuations wait longer and longer and each one
prints an error. A requeued job stays PENDING/RUNNING under the same id: the controller never has
to notice, and Slurm records COMPLETED once the trial is done. Slurm starts it again
``cred_expire`` + 1 s after it ended (slurm.conf AuthInfo, default 120 s). docs/slurm.md has the
measurements.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping

#: Set to 0 to continue through a new job (Snakemake's retries) instead.
ENV_REQUEUE = "SNAKESWEEP_SLURM_REQUEUE"


def requeue_own_job(env: Mapping[str, str]) -> str | None:
    """Ask Slurm to requeue the job we run in; ``None`` on success, else why not.

    Slurm then sends SIGTERM to the job's processes (this one included) and runs the job's batch
    script again. It refuses jobs submitted without ``--requeue`` on clusters with
    ``JobRequeue=0``; the caller then continues the usual way (exit 75, a new job).
    """
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        return "not in a SLURM job"
    if env.get(ENV_REQUEUE, "1") == "0":
        return f"{ENV_REQUEUE}=0"
    try:
        proc = subprocess.run(
            ["scontrol", "requeue", job_id], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"scontrol requeue {job_id}: {error}"
    if proc.returncode != 0:
        return f"scontrol requeue {job_id}: {(proc.stderr or proc.stdout).strip()}"
    return None
