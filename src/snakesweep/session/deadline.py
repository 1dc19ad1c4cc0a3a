"""When must this segment stop? A job's end time, from SLURM or the environment.

SLURM can change a running job's time limit (``scontrol update``), so the end
time is re-read now and then (every :data:`REFRESH_SECONDS`) instead of once at
start. A failed ``squeue`` keeps the end time read before: a transient error must
not make a job forget its deadline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from snakesweep.cluster import slurm_job
from snakesweep.store.contract import ENV_DEADLINE

#: How often a SLURM end time is re-read, in seconds.
REFRESH_SECONDS = 60.0


class Deadline:
    """The time by which the current segment must have saved and exited.

    Sources, first match wins: an explicit value; ``SNAKESWEEP_DEADLINE`` (Unix
    seconds); the end time of the SLURM job in ``SLURM_JOB_ID``. ``at()`` is
    ``None`` when there is no deadline. ``clock`` and ``slurm_query`` are there
    for tests.
    """

    def __init__(
        self,
        explicit: float | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        slurm_query: Callable[[str], float | None] = slurm_job.job_end_time,
    ) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        self._query = slurm_query
        self._job_id = slurm_job.job_id(env)
        self._fixed = explicit
        self._source = "explicit"
        if self._fixed is None and env.get(ENV_DEADLINE):
            try:
                self._fixed = float(env[ENV_DEADLINE])
            except ValueError:
                raise ValueError(
                    f"{ENV_DEADLINE}={env[ENV_DEADLINE]!r} is not a Unix time in seconds"
                ) from None
            self._source = "env"
        self._slurm_end: float | None = None
        self._checked_at = float("-inf")

    @property
    def source(self) -> str:
        """Where the deadline comes from: ``explicit``, ``env``, ``slurm`` or ``none``."""
        if self._fixed is not None:
            return self._source
        return "slurm" if self._job_id else "none"

    def at(self) -> float | None:
        """The deadline as a Unix time, refreshing a SLURM end time at most once a minute."""
        if self._fixed is not None:
            return self._fixed
        if self._job_id is None:
            return None
        now = self._clock()
        if now - self._checked_at >= REFRESH_SECONDS:
            self._checked_at = now
            end = self._query(self._job_id)
            if end is not None:  # None: squeue failed or said "no end"; keep what we knew
                self._slurm_end = end
        return self._slurm_end
