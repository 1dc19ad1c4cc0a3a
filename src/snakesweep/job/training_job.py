"""The training rule's job: one segment of one trial, with its records around it.

The rule's script (``workflow/scripts/run_trial.py``) builds a
:class:`~snakesweep.job.launch.TrialJob` and calls :func:`run_training_job`, which
writes provenance (:mod:`snakesweep.job.provenance`) before and after the segment
(:func:`snakesweep.job.launch.run_segment`), then feeds the enabled trackers.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from snakesweep.job.launch import TrialJob, run_segment
from snakesweep.job.provenance import write_provenance
from snakesweep.report.trackers import sync_trackers
from snakesweep.store.trial_folder import read_metrics


def run_training_job(
    job: TrialJob,
    config: Mapping[str, Any] | None,
    workflow_dir: str | os.PathLike | None = None,
    run: Callable[[TrialJob], int] = run_segment,
) -> int:
    """Run one segment between two provenance writes, then feed the enabled trackers.

    Provenance and tracking are a record, never a reason to lose training: an
    error in either is reported on stderr (or in the trial's log) and the
    segment's exit code is returned all the same.
    """
    _quietly(write_provenance, job, config, "running", workflow_dir)
    try:
        code = run(job)
    finally:
        _quietly(write_provenance, job, config, "ended", workflow_dir)
    tracking = (config or {}).get("tracking")
    if tracking and any(tracking.values()):
        report = sync_trackers(
            tracking,
            job.trial_dir,
            job.trial_id,
            job.params,
            str((config or {}).get("sweep", "snakesweep")),
            read_metrics(job.trial_dir),
        )
        with open(job.log_path, "a", encoding="utf-8") as log:
            for name, what in report.items():
                log.write(f"=== tracking {name}: {what}\n")
    return code


def _quietly(function: Callable[..., Any], *args: Any) -> None:
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 (a record must not stop training)
        print(
            f"snakesweep: could not write provenance: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
