"""When a segment must stop: snakesweep.session.deadline (SLURM end time, SNAKESWEEP_DEADLINE), and
real training processes that meet their deadline and resume bit for bit."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime

import pytest
import torch
from trial_processes import (
    RESUMED,
    STOPPED,
    CountingSession,
    assert_matches_reference,
    base_env,
    steps_on_disk,
    tiny_training,
)

from snakesweep.cluster import slurm_job
from snakesweep.cluster.slurm_job import job_end_time, parse_slurm_time, squeue_field
from snakesweep.session.checkpoint import load_latest
from snakesweep.session.deadline import REFRESH_SECONDS, Deadline
from snakesweep.store import contract
from snakesweep.store.contract import ENV_DEADLINE
from snakesweep.store.trial_folder import read_timings


def test_parse_slurm_time():
    expected = datetime(2026, 11, 22, 10, 0, 0).timestamp()  # squeue prints local time
    assert parse_slurm_time("2026-11-22T10:00:00") == expected
    assert parse_slurm_time("  2026-11-22T10:00:00\n") == expected
    for no_end in ("", "N/A", "Unknown", "NONE", "None", "   "):
        assert parse_slurm_time(no_end) is None
    for garbage in ("tomorrow", "2026-11-22 10:00:00", "UNLIMITED", "2026-13-01T00:00:00"):
        assert parse_slurm_time(garbage) is None


def test_slurm_end_time_survives_a_failing_squeue():
    assert job_end_time("42", query=lambda job, field: "2026-11-22T10:00:00") == parse_slurm_time(
        "2026-11-22T10:00:00"
    )

    def broken(argv, **kwargs):
        raise subprocess.CalledProcessError(1, argv)

    def missing(argv, **kwargs):
        raise FileNotFoundError("squeue")

    def slow(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, 20)

    def refused(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, stdout="", stderr="slurm_load_jobs error")

    for run in (broken, missing, slow, refused):
        assert squeue_field("42", "%e", run=run) is None
        query = lambda job, field, run=run: squeue_field(job, field, run)  # noqa: E731
        assert job_end_time("42", query=query) is None


def test_squeue_tells_a_forgotten_job_from_no_answer():
    def forgotten(argv, **kwargs):
        return subprocess.CompletedProcess(
            argv, 1, stdout="", stderr="slurm_load_jobs error: Invalid job id specified"
        )

    assert squeue_field("42", "%T", run=forgotten) == ""


class FakeSlurm:
    """A query function that counts its calls and answers what it is told."""

    def __init__(self, answer: float | None) -> None:
        self.answer = answer
        self.calls: list[str] = []

    def __call__(self, job_id: str) -> float | None:
        self.calls.append(job_id)
        return self.answer


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_precedence_explicit_then_env_then_slurm():
    slurm = FakeSlurm(5_000.0)
    env = {ENV_DEADLINE: "3000.5", "SLURM_JOB_ID": "42"}
    explicit = Deadline(explicit=2_000.0, env=env, slurm_query=slurm)
    assert (explicit.at(), explicit.source) == (2_000.0, "explicit")
    from_env = Deadline(env=env, slurm_query=slurm)
    assert (from_env.at(), from_env.source) == (3_000.5, "env")
    from_slurm = Deadline(env={"SLURM_JOB_ID": "42"}, slurm_query=slurm)
    assert (from_slurm.at(), from_slurm.source) == (5_000.0, "slurm")
    assert slurm.calls == ["42"]  # the explicit and env deadlines never asked squeue
    nothing = Deadline(env={}, slurm_query=slurm)
    assert (nothing.at(), nothing.source) == (None, "none")
    empty = Deadline(env={ENV_DEADLINE: "", "SLURM_JOB_ID": ""}, slurm_query=slurm)
    assert (empty.at(), empty.source) == (None, "none")


def test_bad_env_deadline_is_a_clear_error():
    with pytest.raises(ValueError, match="SNAKESWEEP_DEADLINE='soon' is not a Unix time"):
        Deadline(env={ENV_DEADLINE: "soon"})


def test_default_env_is_os_environ(monkeypatch):
    monkeypatch.setenv(ENV_DEADLINE, "1234")
    assert Deadline().at() == 1234.0


def test_slurm_end_time_refreshed_at_most_once_per_interval():
    clock, slurm = Clock(), FakeSlurm(9_000.0)
    deadline = Deadline(env={"SLURM_JOB_ID": "7"}, clock=clock, slurm_query=slurm)
    assert deadline.at() == 9_000.0
    slurm.answer = 9_600.0  # `scontrol update TimeLimit=...` moved the end
    for dt in (1.0, 30.0, REFRESH_SECONDS - 0.001):
        clock.now = 1_000.0 + dt
        assert deadline.at() == 9_000.0  # cached
    assert len(slurm.calls) == 1
    clock.now = 1_000.0 + REFRESH_SECONDS
    assert deadline.at() == 9_600.0
    assert len(slurm.calls) == 2
    clock.now += REFRESH_SECONDS / 2
    deadline.at()
    assert len(slurm.calls) == 2
    clock.now += REFRESH_SECONDS / 2
    deadline.at()
    assert len(slurm.calls) == 3


def test_a_failed_refresh_keeps_the_known_end_time():
    clock, slurm = Clock(), FakeSlurm(9_000.0)
    deadline = Deadline(env={"SLURM_JOB_ID": "7"}, clock=clock, slurm_query=slurm)
    assert deadline.at() == 9_000.0
    slurm.answer = None  # squeue timed out or the controller did not answer
    clock.now += REFRESH_SECONDS
    assert deadline.at() == 9_000.0
    assert len(slurm.calls) == 2


def test_unknown_slurm_end_time_means_no_deadline():
    clock, slurm = Clock(), FakeSlurm(None)
    deadline = Deadline(env={"SLURM_JOB_ID": "7"}, clock=clock, slurm_query=slurm)
    assert deadline.at() is None
    clock.now += REFRESH_SECONDS
    slurm.answer = 8_000.0  # squeue answers again
    assert deadline.at() == 8_000.0


def test_real_squeue_command_line(monkeypatch):
    seen = {}

    def fake_run(argv, **kwargs):
        seen["argv"] = argv
        return subprocess.CompletedProcess(argv, 0, stdout="2026-11-22T10:00:00\n", stderr="")

    monkeypatch.setattr(slurm_job.subprocess, "run", fake_run)
    assert job_end_time("123") == parse_slurm_time("2026-11-22T10:00:00")
    assert seen["argv"] == ["squeue", "--noheader", "--jobs", "123", "--format", "%e"]


# -- real training processes against a deadline ------------------------------------------------
def test_deadline_shorter_than_training_over_several_segments(reference, forks, tmp_path):
    """Each segment gets SNAKESWEEP_DEADLINE = its start + a window too short for the training.

    A step takes 1-10 ms here, depending on the machine's load, and a forked run needs
    some 20-100 ms to reach its first step: the windows start small and grow by half
    while a segment makes fewer than 30 steps (shrink while more than 90), so that the
    training is split on a fast machine and does not crawl on a slow one.
    """
    trial = tmp_path / "trial"
    # The margin is what the session keeps for its last save and its exit; it must also cover
    # the scheduler's delays on a loaded machine: with 0.3 s, a segment ended 64 ms late
    # beside two busy loops and three test workers on 2 cores (load about 7).
    margin_s = 1.0
    window_s = margin_s + 0.05
    segments: list[tuple[int, str]] = []
    stops = [0]
    while not segments or segments[-1][0] != 0:
        assert len(segments) < 40, stops
        deadline = time.time() + window_s
        env = base_env(
            **{
                contract.ENV_DEADLINE: f"{deadline:.3f}",
                contract.ENV_DEADLINE_MARGIN: margin_s,
                # Only epoch ends and the stops save: the first segment starts without a
                # measured save time and must not give up after one step because of it.
                contract.ENV_CHECKPOINT_EVERY_STEPS: 0,
            }
        )
        proc = forks.start(trial, tmp_path / f"segment-{len(segments)}.log", env)
        code = proc.wait()
        text = proc.text()
        segments.append((code, text))
        if len(segments) > 1:  # no completed step lost: it resumed where the last one saved
            assert int(RESUMED.search(text).group(2)) == stops[-1], text
        if code == 0:
            break
        assert code == contract.EXIT_CONTINUE, text
        assert "cannot fit another step" in text
        late = proc.ended_at - deadline
        assert late < 0, f"segment {len(segments)} ended {late:.3f}s after its deadline"
        stops.append(int(STOPPED.findall(text)[-1]))
        assert steps_on_disk(trial)[0] == stops[-1]  # its last completed step is saved
        made = stops[-1] - stops[-2]
        if made < 30:
            window_s = margin_s + 1.5 * (window_s - margin_s)
        elif made > 90:
            window_s = margin_s + (window_s - margin_s) / 1.5
    assert len(segments) >= 3, f"the deadline should have split the training: {stops}"
    assert max(b - a for a, b in zip(stops, stops[1:], strict=False)) >= 10, stops
    assert_matches_reference(trial, reference)


class AlwaysAhead(Deadline):
    """A deadline that stays ``ahead_s`` away however long the training takes, so what the
    session decides never depends on the machine's speed."""

    def __init__(self, ahead_s: float) -> None:
        super().__init__(explicit=time.time() + ahead_s)
        self.ahead_s = ahead_s

    def at(self) -> float:
        return time.time() + self.ahead_s


def test_first_save_time_is_measured_not_guessed(tmp_path):
    """A deadline always closer than the default save guess (1 s) + margin, but far enough for
    a measured save: the session saves once to measure, then goes on instead of stopping."""
    session = CountingSession(tmp_path, deadline=AlwaysAhead(0.9), margin_s=0, max_overhead=None)
    tiny_training(session, epochs=2, n_items=40, batch=4)  # exits 75 if it stops: fails
    assert session.saves == [(0, 1), (1, 10), (2, 20)]


def test_deadline_already_passed_saves_after_one_step(tmp_path):
    from snakesweep.session.deadline import Deadline

    session = CountingSession(tmp_path, deadline=Deadline(explicit=time.time() - 1), margin_s=0)
    with pytest.raises(SystemExit) as exc:
        tiny_training(session)
    assert exc.value.code == contract.EXIT_CONTINUE
    assert session.saves == [(0, 1)]
    state, _ = load_latest(tmp_path / contract.CHECKPOINT_DIR)
    assert (state["epoch"], state["position"], state["global_step"]) == (0, 1, 1)
    # the stop's moment, from which the launcher measures the exit path; not a prior timing
    assert read_timings(tmp_path)["stopped_at"] >= session.deadline.at()
    model = torch.nn.Linear(3, 1)
    resumed = CountingSession(tmp_path)
    resumed.register(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert resumed.resume() and "stopped_at" not in resumed._prior_timings
