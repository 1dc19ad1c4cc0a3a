"""Real signals at real processes: a trial stopped by SIGTERM or SIGKILL, anywhere, ends bit
for bit where an uninterrupted one does; and the session's own signal handling in-process.

The processes and the comparison are ``tests/trial_processes.py``; ``reference`` and
``forks`` are session fixtures of ``conftest.py``.
"""

from __future__ import annotations

import os
import random
import signal
import time
import warnings

import pytest
import torch
from trial_processes import (
    TOTAL_STEPS,
    CountingSession,
    ExecRunner,
    assert_matches_reference,
    base_env,
    finish,
    interrupt_with_sigterm,
    steps_on_disk,
    wait_for_step,
)

from snakesweep.session.checkpoint import load_latest
from snakesweep.session.trial_session import STOP_SIGNALS
from snakesweep.store import contract


def test_one_sigterm_fresh_interpreters(reference, tmp_path):
    trial = tmp_path / "trial"
    target = random.Random(1).randrange(20, TOTAL_STEPS // 2)
    stops = interrupt_with_sigterm(ExecRunner(), trial, tmp_path, [target], random.Random(1))
    finish(ExecRunner(), trial, tmp_path / "final.log", resumed_at=stops[-1])
    assert_matches_reference(trial, reference)


def test_three_sigterms_then_sigkill_between_checkpoints(reference, forks, tmp_path):
    rng = random.Random(3)
    trial = tmp_path / "trial"
    # Seeded random steps, far enough apart that each lies after the previous stop.
    targets = sorted(rng.sample(range(10, 190, 30), 3))
    targets = [t + rng.randrange(0, 20) for t in targets]
    stops = interrupt_with_sigterm(forks, trial, tmp_path, targets, rng)

    # SIGKILL: no warning, no save; the next run must resume from the last checkpoint.
    proc = forks.start(trial, tmp_path / "killed.log", base_env())
    target = stops[-1] + rng.randrange(10, 40)
    wait_for_step(proc, trial, target)
    time.sleep(rng.uniform(0.005, 0.03))
    proc.kill(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    last_saved = steps_on_disk(trial)[0]
    assert last_saved >= target
    finish(forks, trial, tmp_path / "final.log", resumed_at=last_saved)
    assert_matches_reference(trial, reference)


def test_sigkill_while_saving_never_breaks_resume(reference, forks, tmp_path):
    """every_steps=1: the run spends about half its time saving; kill it at random moments.

    A third of the kills land as soon as a checkpoint's temporary file is seen (inside the
    write), every sixth at a random moment of start-up and resume, the others a random
    0-30 ms after the process saved its first step (inside a step or a save).
    """
    rng = random.Random(30)
    trial = tmp_path / "trial"
    env = base_env(**{contract.ENV_CHECKPOINT_EVERY_STEPS: 1})
    # How long a forked run takes to reach its first step, to aim the start-up kills.
    probe = forks.start(tmp_path / "probe", tmp_path / "probe.log", env)
    started = time.monotonic()
    wait_for_step(probe, tmp_path / "probe", 1)
    first_step_s = time.monotonic() - started
    probe.kill(signal.SIGKILL)
    probe.wait()

    killed, torn, progress = 0, 0, [0]
    for i in range(36):
        proc = forks.start(trial, tmp_path / f"kill-{i}.log", env)
        if i % 6 == 5:
            time.sleep(rng.uniform(0.0, first_step_s))
        elif i % 3 == 0:
            wait_for_step(proc, trial, progress[-1] + 1)
            limit = time.monotonic() + 5
            while time.monotonic() < limit and not any(
                name.endswith(".tmp") for name in os.listdir(trial / contract.CHECKPOINT_DIR)
            ):
                pass
        else:
            wait_for_step(proc, trial, progress[-1] + 1)
            time.sleep(rng.uniform(0.0, 0.03))
        proc.kill(signal.SIGKILL)
        code = proc.wait()
        assert code in (-signal.SIGKILL, 0), proc.text()
        killed += code == -signal.SIGKILL
        # Killed mid-write: a temporary file is left behind (never a half-written checkpoint).
        torn += bool(list((trial / contract.CHECKPOINT_DIR).glob(".ckpt-*.tmp")))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a damaged checkpoint would warn: fail instead
            found = load_latest(trial / contract.CHECKPOINT_DIR)
        step = found[0]["global_step"] if found else 0
        assert step >= progress[-1], "a kill lost a checkpoint that had been complete"
        progress.append(step)
    print(f"kills: {killed} of 36 during the run, {torn} inside a checkpoint write; {progress}")
    assert killed >= 30
    assert torn >= 3, f"only {torn} kills landed inside a checkpoint write"
    assert progress[-1] > 0, progress
    finish(forks, trial, tmp_path / "final.log", resumed_at=progress[-1])
    assert_matches_reference(trial, reference)


@pytest.fixture
def restore_signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_signal_after_the_last_step_does_not_ask_for_another_segment(
    tmp_path, restore_signal_handlers
):
    session = CountingSession(tmp_path, handle_signals=True, max_overhead=None)
    session.register(model=torch.nn.Linear(3, 1))
    for _ in session.epochs(2):
        for _idx in session.batches(8, 4):
            pass
        if session.epoch == 1:
            os.kill(os.getpid(), signal.SIGUSR1)  # a real signal, during the final validation
        session.end_epoch({"x": 1.0})  # must not exit 75: the training is complete
    assert session._stop_signal == signal.SIGUSR1
    assert session.saves == [(1, 2), (2, 4)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])
def test_a_signal_mid_epoch_saves_once_and_exits_75(tmp_path, restore_signal_handlers, signum):
    session = CountingSession(tmp_path, handle_signals=True, every_steps=2)
    session.register(model=torch.nn.Linear(3, 1))
    with pytest.raises(SystemExit) as exc:
        for _ in session.epochs(1):
            for _idx in session.batches(12, 2):
                if session.global_step == 3:  # step 4 runs with the signal pending
                    os.kill(os.getpid(), signum)
            session.end_epoch({})
    assert exc.value.code == contract.EXIT_CONTINUE
    assert session.saves == [(0, 2), (0, 4)]  # step 4: periodic and stop share one save
