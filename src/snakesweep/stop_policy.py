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


@dataclass
class StopPolicy:
    """``margin_s``: seconds kept free before the deadline for the last save and exit.
    ``max_overhead``: the share of training time an extra epoch-end save may cost
    (``None``: save at every epoch end)."""

    margin_s: float = 30.0
    max_overhead: float | None = 0.01
    clock: Callable[[], float] = field(default=time.time)

    def deadline_reason(
        self, deadline: float | None, next_work_s: float, save_s: float
    ) -> str | None:
        """Why the segment must stop now: the next piece of work and a save no longer fit
        before ``deadline`` with the margin to spare; ``None`` when they fit (or no deadline)."""
        if deadline is None:
            return None
        now = self.clock()
        if now + next_work_s + save_s + self.margin_s >= deadline:
            return (
                f"deadline in {deadline - now:.1f}s cannot fit another step "
                f"({next_work_s:.2f}s) + save ({save_s:.2f}s) + margin ({self.margin_s:.1f}s): "
                "stopping"
            )
        return None

    def epoch_save_worth_it(self, since_last_save_s: float, save_s: float) -> bool:
        """Save at this epoch end? Unless saving again would spend more than ``max_overhead``
        of the training time since the last save (short epochs)."""
        if self.max_overhead is None:
            return True
        return save_s <= self.max_overhead * since_last_save_s
