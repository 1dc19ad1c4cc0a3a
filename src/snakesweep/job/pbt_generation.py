"""The checkpoint rule between two PBT generations: decide, copy checkpoints, record lineage.

It runs while no member trains (every member's next segment waits for its output), so each
member's newest checkpoint is its checkpoint of the generation that just ended: a parent's
cannot be replaced or deleted (``checkpoint.keep``) before every clone of it is made. The
steps are ordered so that a controller killed at any point leaves nothing half done that a
rerun would not redo identically: the decision is a pure function of the records; the copies
and lineage files are rewritten whole; the decision file, the rule's output, comes last.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.search.pbt import first_lineage, generation_decision, lineage_after
from snakesweep.search.sweep import Sweep
from snakesweep.session.checkpoint import list_checkpoints, load_latest, save_checkpoint
from snakesweep.store import contract
from snakesweep.store.atomic import fsync_dir, write_json
from snakesweep.store.trial_folder import read_lineage, read_metrics, write_lineage


def clone_checkpoint(parent_dir: Path, member_dir: Path, epoch: int, keep: int) -> Path:
    """Make ``member_dir``'s only checkpoint a copy of ``parent_dir``'s checkpoint at ``epoch``.

    Everything the session restores (model, optimizer, scheduler, scaler, every RNG, data
    order and position) is the parent's; only the metric history is the member's own, so that
    its ``metrics.jsonl`` keeps one line per epoch it trained, with global epoch numbers. The
    member's own checkpoints go first: a newer one of its own must never be resumed instead.
    """
    found = load_latest(parent_dir / contract.CHECKPOINT_DIR)
    if found is None:
        raise RuntimeError(f"{parent_dir}: no checkpoint to copy for a PBT clone")
    state, path = found
    if state["epoch"] != epoch or state["position"] != 0:
        raise RuntimeError(
            f"{path}: the parent's newest checkpoint is at epoch {state['epoch']} batch "
            f"{state['position']}, not at the end of epoch {epoch}; refusing to clone from it"
        )
    state["history"] = [row for row in read_metrics(member_dir) if row.get("epoch", 0) <= epoch]
    directory = member_dir / contract.CHECKPOINT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for own in list_checkpoints(directory):
        own.unlink()
    fsync_dir(directory)
    return save_checkpoint(directory, int(state["global_step"]), state, keep=keep)


def run_generation(
    sweep: Sweep,
    records: Sequence[Mapping[str, Any]],
    generation: int,
    decision_path: str | os.PathLike,
    keep: int,
) -> dict[str, Any]:
    """Decide after ``generation``, make the clones and lineages, then write the decision."""
    assert sweep.pbt is not None
    decision = generation_decision(
        records, generation, sweep.pbt, sweep.parameters, sweep.metric, sweep.mode
    )
    epoch = (generation + 1) * sweep.pbt.interval
    for entry in decision["members"]:
        member = entry["member"]
        if entry["parent"] != member:
            clone_checkpoint(sweep.trial_dir(entry["parent"]), sweep.trial_dir(member), epoch, keep)
    for entry in decision["members"]:
        member = entry["member"]
        folder = sweep.trial_dir(member)
        previous = read_lineage(folder) or first_lineage(member, sweep.trials[member])
        write_lineage(folder, lineage_after(previous, decision, member))
    write_json(decision_path, decision)
    return decision
