"""When a training segment stops or saves: the cost model, apart from the training loop.

:class:`~snakesweep.session.TrialSession` measures how long steps, epoch ends and
saves take; this policy turns those estimates into the two decisions (stop
before the deadline? save at this epoch end?). It reads time only through an
injected clock, so it is tested like the pruning rules, without real time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: ``checkpoint.deadline_margin_s: auto``: the margin is derived by :func:`auto_margin`.
AUTO = "auto"
#: The measured exit path (script exit, launcher, ``scontrol requeue``) is kept this many times.
EXIT_SAFETY = 2.0
#: Seconds every auto margin keeps on top: Slurm reports end times in whole seconds.
MARGIN_FLOOR_S = 1.0
#: Assumed exit path until one has been measured (a trial's first stop). Measured: 0.17-0.23 s on
#: the local cluster, 0.45-0.56 s without SLURM under load (docs/checkpointing.md); a slow shared
#: file system or a loaded login node takes longer.
DEFAULT_EXIT_S = 3.0


def auto_margin(
    exit_s: float | None, next_work_s: float, save_s: float, kill_wait_s: float | None
) -> float:
    """Seconds to keep free before the deadline, from what the exit really needs.

    The stop rule already reserves the next piece of work and one save; the margin covers the
    exit after the save (the script's exit, the launcher's bookkeeping, ``scontrol requeue``):
    ``MARGIN_FLOOR_S + EXIT_SAFETY * exit_s``. A stop that still comes too late (a step slower
    than any measured) is caught by Slurm's SIGTERM at the limit, after which the session has
    ``kill_wait_s`` to finish the step, save and exit. Where that backstop cannot hold (no
    KillWait known, or shorter than ``EXIT_SAFETY`` x (step + save + exit)), the margin also keeps
    ``EXIT_SAFETY`` x (step + save) spare, since a late stop would then lose work.
    """
    exit_s = DEFAULT_EXIT_S if exit_s is None else exit_s
    margin = MARGIN_FLOOR_S + EXIT_SAFETY * exit_s
    if kill_wait_s is None or kill_wait_s < EXIT_SAFETY * (next_work_s + save_s + exit_s):
        margin += EXIT_SAFETY * (next_work_s + save_s)
    return margin


def parse_margin(value: float | str) -> float | str:
    """A margin from the config or the environment: a number of seconds (>= 0) or ``"auto"``."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    margin = float(value)
    if not margin >= 0:
        raise ValueError(f"deadline margin {value!r} is neither 'auto' nor a number >= 0")
    return margin


@dataclass
class StopPolicy:
    """``margin_s``: seconds kept free before the deadline for the last save and exit, or
    ``"auto"`` (:func:`auto_margin` of ``exit_s``, the measured exit path, and ``kill_wait_s``,
    the cluster's KillWait). ``max_overhead``: the share of training time an extra epoch-end
    save may cost (``None``: save at every epoch end)."""

    margin_s: float | str = AUTO
    max_overhead: float | None = 0.01
    exit_s: float | None = None
    kill_wait_s: float | None = None
    clock: Callable[[], float] = field(default=time.time)

    def margin(self, next_work_s: float, save_s: float) -> float:
        """The margin in seconds for this decision (fixed, or derived when ``"auto"``)."""
        if self.margin_s == AUTO:
            return auto_margin(self.exit_s, next_work_s, save_s, self.kill_wait_s)
        return float(self.margin_s)

    def deadline_reason(
        self, deadline: float | None, next_work_s: float, save_s: float
    ) -> str | None:
        """Why the segment must stop now: the next piece of work and a save no longer fit
        before ``deadline`` with the margin to spare; ``None`` when they fit (or no deadline)."""
        if deadline is None:
            return None
        now = self.clock()
        margin = self.margin(next_work_s, save_s)
        if now + next_work_s + save_s + margin >= deadline:
            auto = ", auto" if self.margin_s == AUTO else ""
            return (
                f"deadline in {deadline - now:.1f}s cannot fit another step "
                f"({next_work_s:.2f}s) + save ({save_s:.2f}s) + margin ({margin:.1f}s{auto}): "
                "stopping"
            )
        return None

    def epoch_save_worth_it(self, since_last_save_s: float, save_s: float) -> bool:
        """Save at this epoch end? Unless saving again would spend more than ``max_overhead``
        of the training time since the last save (short epochs)."""
        if self.max_overhead is None:
            return True
        return save_s <= self.max_overhead * since_last_save_s
