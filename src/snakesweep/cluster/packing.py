"""Which trials share a job when ``pack`` > 1: pure functions of the sweep plan.

A pack is a run of consecutive trials of one rung of one bracket, in sweep order (the order
of sampling; at a later rung, the promoted trials in that same order). Growing ``n_trials``
appends trials, so every full pack keeps its members; only a partial last pack grows. A pack's
name holds a digest of its members, so a pack whose members changed is a new job (its members
that finished at this budget are recognised by their trial folders and not trained again).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: ``packs/<name>.json`` below the sweep root: the marker a pack's job writes when it ends.
PACK_NAME = "bracket{bracket}-rung{rung}-pack{index}-{digest}"


@dataclass(frozen=True)
class Pack:
    """Trials trained side by side in one job, at one rung of one bracket."""

    bracket: int
    rung: int
    index: int
    members: tuple[str, ...]

    @property
    def digest(self) -> str:
        return members_digest(self.members)

    @property
    def name(self) -> str:
        return PACK_NAME.format(
            bracket=self.bracket, rung=self.rung, index=self.index, digest=self.digest
        )


def members_digest(members: Iterable[str]) -> str:
    """Eight hex digits naming a member list (order included)."""
    return hashlib.sha256(",".join(members).encode()).hexdigest()[:8]


def in_sweep_order(trial_ids: Iterable[str], order: Sequence[str]) -> list[str]:
    """``trial_ids`` sorted by their position in ``order`` (a rung's promoted trials come sorted
    by score; packing them in sweep order keeps packs stable when scores change)."""
    position = {tid: i for i, tid in enumerate(order)}
    return sorted(trial_ids, key=lambda tid: (position.get(tid, len(position)), tid))


def make_packs(bracket: int, rung: int, trial_ids: Sequence[str], size: int) -> list[Pack]:
    """Consecutive runs of ``size`` trials (the last one may be shorter)."""
    if size < 1:
        raise ValueError(f"pack size must be >= 1, got {size}")
    return [
        Pack(bracket, rung, index, tuple(trial_ids[start : start + size]))
        for index, start in enumerate(range(0, len(trial_ids), size))
    ]


def pack_slots(size: int, parallel: int) -> int:
    """How many members of a pack train at once: ``parallel`` (0: all ``size``), at most ``size``."""
    return size if parallel <= 0 else min(parallel, size)


def pack_waves(size: int, parallel: int) -> int:
    """How many members one slot trains one after another in a full pack (time limit factor)."""
    return math.ceil(size / pack_slots(size, parallel))


def slot_cpus(available: Sequence[int], slot: int, per_slot: int) -> list[int] | None:
    """The CPUs of ``slot`` out of the job's ``available`` ones (its affinity), ``per_slot`` each;
    ``None`` when the job has fewer CPUs than its slots need (no pinning then)."""
    cpus = sorted(available)
    chosen = cpus[slot * per_slot : (slot + 1) * per_slot]
    return chosen if len(chosen) == per_slot else None


def slot_gpus(visible: str | None, slot: int, per_slot: int) -> str | None:
    """``CUDA_VISIBLE_DEVICES`` of ``slot``: its own ``per_slot`` of the job's GPUs, or ``None``
    when the job shows fewer GPUs than its slots need (members then see all of them)."""
    if not visible or per_slot < 1:
        return None
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    chosen = devices[slot * per_slot : (slot + 1) * per_slot]
    return ",".join(chosen) if len(chosen) == per_slot else None
