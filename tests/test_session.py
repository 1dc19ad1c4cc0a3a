"""The session in-process: when it saves, what it carries to the next segment, and that
resuming a finished trial changes nothing (``reference`` and ``forks``: ``conftest.py``)."""

from __future__ import annotations

import pytest
import torch
from trial_processes import (
    TOTAL_STEPS,
    CountingSession,
    assert_matches_reference,
    finish,
    tiny_training,
)

from snakesweep.session.checkpoint import load_latest
from snakesweep.store import contract


def test_no_double_save_at_an_epochs_last_step(tmp_path):
    session = CountingSession(tmp_path, every_steps=1, keep=100)
    tiny_training(session)
    # Steps 1, 2 (periodic), the end of epoch 1 at step 3, 4, 5, the end of epoch 2 at step 6:
    # no periodic save right before an epoch end saves the same step again.
    assert session.saves == [(0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 6)]


def test_resuming_a_finished_trial_changes_nothing(reference, forks, tmp_path):
    trial = tmp_path / "trial"
    finish(forks, trial, tmp_path / "first.log", resumed_at=None)
    before = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in trial.rglob("*") if p.is_file()
    }
    proc = finish(forks, trial, tmp_path / "again.log", resumed_at=TOTAL_STEPS)
    assert "nothing left to train" in proc.text()
    after = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in trial.rglob("*") if p.is_file()
    }
    assert after == before
    assert_matches_reference(trial, reference)


def test_epoch_end_saves_are_skipped_when_they_would_cost_too_much(tmp_path):
    # max_overhead=None: every epoch end saves.
    session = CountingSession(tmp_path / "always", max_overhead=None)
    tiny_training(session, epochs=3, n_items=12, batch=4)
    assert session.saves == [(1, 3), (2, 6), (3, 9)]
    # A tiny allowance: epoch ends do not save, except the last one; periodic saves (every
    # 4 steps) still happen.
    session = CountingSession(tmp_path / "skip", max_overhead=1e-9, every_steps=4)
    tiny_training(session, epochs=3, n_items=12, batch=4)
    assert session.saves == [(1, 4), (2, 8), (3, 9)]
    # What the skipped epoch ends leave on disk resumes like any other checkpoint.
    state, _ = load_latest(tmp_path / "skip" / contract.CHECKPOINT_DIR)
    assert (state["epoch"], state["global_step"], len(state["history"])) == (3, 9, 3)


def test_measured_timings_reach_the_next_segment(tmp_path):
    first = CountingSession(tmp_path, stop_at_epoch=1)
    tiny_training(first, epochs=2)
    assert first.saves == [(1, 3)]  # its only save: the checkpoint cannot hold its duration
    second = CountingSession(tmp_path)
    second.register(model=torch.nn.Linear(3, 1))
    assert second.resume()
    assert not second._save_time_unknown()
    assert second._save_estimate() == pytest.approx(first._max_save_s)
    assert second._prior_timings["step_s"] > 0 and second._prior_timings["epoch_end_s"] > 0
