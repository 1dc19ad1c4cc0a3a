"""Provenance of a trial: what ran, with which code and config, where, and in how many jobs.

``provenance.json`` in the trial folder is written when a segment starts and
refreshed when it ends (by :func:`snakesweep.job.training_job.run_training_job`, the
training rule's job). It holds the resolved parameters, the sha256 of the sweep's validated
config, the git commit of the workflow (and whether the work tree had
uncommitted changes), the training script's sha256, the versions of Python,
snakesweep, torch and Snakemake, the host, and every job segment from
``segments.jsonl`` with its SLURM job id, start and end times and outcome.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import math
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep import __version__
from snakesweep.cluster import slurm_job
from snakesweep.job.launch import TrialJob
from snakesweep.search.trial_id import canonical_json
from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json
from snakesweep.store.trial_folder import (
    PROVENANCE_FILE,
    count_segments,
    pair_segments,
    read_metrics,
    read_segments,
    slurm_job_ids,
)

FORMAT_VERSION = 1
GIT_TIMEOUT_S = 10


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data: mappings with string keys, lists, finite numbers, text."""
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def config_sha256(config: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of a (validated) sweep config."""
    return hashlib.sha256(canonical_json(canonical(config)).encode("utf-8")).hexdigest()


def file_sha256(path: str | os.PathLike) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def code_version(path: str | os.PathLike) -> dict[str, Any] | None:
    """The git commit of the repository holding ``path`` and whether tracked files changed.

    ``None`` when there is no git, no repository, or no commit yet.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", "-C", str(folder), *args],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "repo": git("rev-parse", "--show-toplevel"),
        "commit": commit,
        "dirty": None if status is None else bool(status),
    }


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def runtime_versions() -> dict[str, str | None]:
    """Versions of the software a trial ran with (looked up without importing torch)."""
    return {
        "python": platform.python_version(),
        "snakesweep": __version__,
        "torch": package_version("torch"),
        "numpy": package_version("numpy"),
        "snakemake": package_version("snakemake"),
    }


def summarize_segments(
    events: Sequence[Mapping[str, Any]], running: bool = False
) -> dict[str, Any]:
    """The segments part of provenance: paired segments and their counts, as defined by
    :mod:`snakesweep.store.trial_folder` (the record and ``status`` use the same definitions)."""
    segments = pair_segments(events, running=running)
    counts = count_segments(segments)
    return {
        "segments": segments,
        "n_segments": counts.segments,
        "resumes": counts.resumes,
        "relaunches": counts.relaunches,
        "restarts": counts.restarts,
        "promotions": counts.promotions,
        "revisits": counts.revisits,
        "slurm_job_ids": slurm_job_ids(events),
        "hosts": sorted({s["host"] for s in segments if s["host"]}),
    }


def build_provenance(
    job: TrialJob,
    config: Mapping[str, Any] | None,
    state: str,
    workflow_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The provenance record of ``job``'s trial as it stands (``state``: running or ended)."""
    env = os.environ if env is None else env
    now = time.time() if now is None else now
    summary = summarize_segments(read_segments(job.trial_dir), running=state == "running")
    result = read_json(job.result_path) if state != "running" else None
    history = read_metrics(job.trial_dir)
    script = Path(job.script)
    return {
        "format": FORMAT_VERSION,
        "trial_id": job.trial_id,
        "state": state,
        "status": result.get("status") if result else None,
        "updated": now,
        "params": dict(job.params),
        "budget": job.budget,
        "metric": job.metric,
        "mode": job.mode,
        "epochs_done": history[-1].get("epoch") if history else 0,
        "sweep": {
            "name": (config or {}).get("sweep"),
            "config_sha256": config_sha256(config) if config is not None else None,
        },
        "code": code_version(workflow_dir) if workflow_dir is not None else None,
        "script": {
            "path": str(script),
            "sha256": file_sha256(script),
            "code": code_version(script) if script.exists() else None,
        },
        "versions": runtime_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "current_job": {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job_id": slurm_job.job_id(env),
            "budget": job.budget,
        },
        **summary,
    }


def write_provenance(
    job: TrialJob,
    config: Mapping[str, Any] | None,
    state: str,
    workflow_dir: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    path = job.trial_dir / PROVENANCE_FILE
    write_json(path, build_provenance(job, config, state, workflow_dir=workflow_dir, env=env))
    return path
