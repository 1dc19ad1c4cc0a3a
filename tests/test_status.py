"""`snakesweep status`: the state of every trial, read from the results folder at any time."""

import csv
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_workflow
from test_workflow import echo_config

from snakesweep import cli
from snakesweep.job.launch import TrialJob, build_record
from snakesweep.job.provenance import write_provenance
from snakesweep.report.status import StatusError, scan_sweep
from snakesweep.report.status_config import planned_trials
from snakesweep.report.status_text import format_status
from snakesweep.search.pruning import rung_decision
from snakesweep.search.sweep import build_sweep
from snakesweep.store.atomic import write_json
from snakesweep.store.contract import RUNG_DECISION_PATH
from snakesweep.store.jsonl import read_json
from snakesweep.store.trial_folder import (
    append_metrics,
    append_segment_event,
    read_segments,
    result_path,
    segment_end,
    segment_start,
    write_params,
    write_result,
)

T0 = 1_700_000_000.0


def make_trial(
    root: Path,
    tid: str,
    params: dict,
    segments=(),
    metrics=(),
    results=None,
    metrics_tail: str = "",
    metric: str = "acc",
) -> Path:
    """A trial folder written by the real writers (``trial_folder``, and the launcher's
    ``build_record``), so that it cannot drift from the format the readers expect.

    ``results`` maps a budget to the outcome (and error) the launcher gave that segment; the
    record is built from the metrics as the launcher does. ``metrics_tail`` is appended raw:
    a line a writer killed mid-write left cut short.
    """
    trial = root / "trials" / tid
    trial.mkdir(parents=True)
    write_params(trial, tid, params)
    for event in segments:
        append_segment_event(trial, event)
    for row in metrics:
        append_metrics(trial, row)
    if metrics_tail:
        with open(trial / "metrics.jsonl", "a") as f:
            f.write(metrics_tail)
    for budget, (outcome, error) in (results or {}).items():
        job = TrialJob(
            trial_id=tid,
            trial_dir=trial,
            params=params,
            script="train.py",
            budget=budget,
            metric=metric,
            mode="max",
            result_path=result_path(trial, budget),
            log_path=root / "logs" / f"{tid}-{budget}ep.log",
        )
        write_result(job.result_path, build_record(job, outcome, error, read_segments(trial)))
    return trial


def start(segment, budget=4, host="node-a", pid=4242, job="9001", t=T0):
    return segment_start(segment, budget, t, host, pid, job)


def end(segment, outcome, t=T0 + 60, exit_code=0):
    return segment_end(segment, t, exit_code, outcome)


def epochs(*values):
    return [{"epoch": i, "acc": v, "loss": 1 - v} for i, v in enumerate(values, start=1)]


@pytest.fixture
def sweep_in_progress(tmp_path):
    """Every state a trial can be in, each folder as its jobs leave it (full budget: 4)."""
    root = tmp_path / "results" / "busy"
    p = lambda x: {"x": x, "epochs": 4}  # noqa: E731
    # running: started, no end, 2 epochs reported, a line being written is cut short
    make_trial(
        root,
        "a00000000001",
        p(1),
        segments=[start(1)],
        metrics=epochs(0.5, 0.6),
        metrics_tail='{"epoch": 3, "ac',
    )
    # completed at the full budget
    make_trial(
        root,
        "a00000000002",
        p(2),
        segments=[start(1, job=None), end(1, "completed")],
        metrics=epochs(0.7, 0.75, 0.8, 0.82),
        results={4: ("completed", None)},
    )
    # waiting: saved its state and ended with outcome continue
    make_trial(
        root,
        "a00000000003",
        p(3),
        segments=[start(1), end(1, "continue", exit_code=75)],
        metrics=epochs(0.65),
    )
    # failed, diverged
    make_trial(
        root,
        "a00000000004",
        p(4),
        segments=[start(1), end(1, "failed", exit_code=1)],
        results={4: ("failed", "RuntimeError: boom")},
    )
    make_trial(
        root,
        "a00000000005",
        p(5),
        segments=[start(1), end(1, "completed")],
        metrics=[{"epoch": e, "acc": float("nan")} for e in range(1, 5)],
        results={4: ("completed", None)},  # the launcher's record says diverged
    )
    # pruned by ASHA (the trial stopped itself at its rung)
    make_trial(
        root,
        "a00000000006",
        p(6),
        segments=[start(1, budget=2), end(1, "pruned", exit_code=76)],
        metrics=epochs(0.3, 0.35),
        results={2: ("pruned", None)},
    )
    # pruned by a synchronous rung: completed budget 1 of 4, not promoted
    make_trial(
        root,
        "a00000000007",
        p(7),
        segments=[start(1, budget=1), end(1, "completed")],
        metrics=epochs(0.2),
        results={1: ("completed", None)},
    )
    # promoted at rung 0 and now running at budget 4 (its rung-1 record is older)
    make_trial(
        root,
        "a00000000008",
        p(8),
        segments=[start(1, budget=1), end(1, "completed"), start(2, budget=4, job="9002")],
        metrics=epochs(0.9, 0.91),
        results={1: ("completed", None)},
    )
    # promoted at rung 0, its next job not started yet
    make_trial(
        root,
        "a00000000009",
        p(9),
        segments=[start(1, budget=1), end(1, "completed")],
        metrics=epochs(0.4),
        results={1: ("completed", None)},
    )
    # params written, no segment yet
    make_trial(root, "a0000000000a", p(10))
    # rung 0 of a sync bracket (eta 2) kept the better half of the trials that completed it
    rung0 = [
        read_json(result_path(root / "trials" / t, 1))
        for t in ("a00000000007", "a00000000008", "a00000000009")
    ]
    decision = rung_decision(rung0, bracket=0, rung=0, budget=1, metric="acc", mode="max", eta=2)
    assert (decision["promoted"], decision["pruned"]) == (
        ["a00000000008", "a00000000009"],
        ["a00000000007"],
    )
    write_json(root / RUNG_DECISION_PATH.format(bracket=0, rung=0), decision)
    return root


def by_id(status):
    return {t.trial_id: t for t in status.trials}


def test_every_state_is_read_from_the_folder(sweep_in_progress):
    status = scan_sweep(sweep_in_progress, now=T0 + 90)
    assert (status.metric, status.mode) == ("acc", "max")  # from the result records
    states = {tid: t.state for tid, t in by_id(status).items()}
    assert states == {
        "a00000000001": "running",
        "a00000000002": "completed",
        "a00000000003": "waiting",
        "a00000000004": "failed",
        "a00000000005": "diverged",
        "a00000000006": "pruned",
        "a00000000007": "pruned",
        "a00000000008": "running",
        "a00000000009": "waiting",
        "a0000000000a": "pending",
    }
    assert status.counts == {
        "completed": 1,
        "running": 2,
        "waiting": 2,
        "pruned": 2,
        "diverged": 1,
        "failed": 1,
        "pending": 1,
    }
    t = by_id(status)
    running = t["a00000000001"]
    # the half-written third line is skipped: the last complete epoch counts
    assert (running.epochs_done, running.budget, running.value, running.best) == (2, 4, 0.6, 0.6)
    assert (running.host, running.slurm_job_id, running.started) == ("node-a", "9001", T0)
    assert running.alive is None  # another host: cannot tell
    promoted = t["a00000000008"]
    assert (promoted.epochs_done, promoted.budget, promoted.value, promoted.segments) == (
        2,
        4,
        0.91,
        2,
    )
    assert promoted.slurm_job_id == "9002"
    assert (t["a00000000002"].value, t["a00000000002"].epochs_done) == (0.82, 4)
    assert (t["a00000000006"].value, t["a00000000006"].budget) == (0.35, 2)
    assert (t["a00000000007"].value, t["a00000000007"].budget) == (0.2, 1)
    assert t["a00000000004"].error == "RuntimeError: boom"
    assert t["a00000000005"].value is None
    # leaderboard order: by state, then best value first
    assert [x.trial_id for x in status.trials] == [
        "a00000000002",
        "a00000000008",
        "a00000000001",
        "a00000000003",
        "a00000000009",
        "a00000000006",
        "a00000000007",
        "a00000000005",
        "a00000000004",
        "a0000000000a",
    ]
    best, source = status.best
    assert (best.trial_id, source) == ("a00000000002", "completed")


def test_status_text(sweep_in_progress):
    status = scan_sweep(sweep_in_progress, now=T0 + 90)
    text = format_status(status)
    lines = text.splitlines()
    assert lines[0].startswith(f"snakesweep status: {sweep_in_progress}  (acc, max)  ")
    assert lines[1] == (
        "10 trials: 1 completed, 2 running, 2 waiting, 2 pruned, 1 diverged, 1 failed, 1 pending"
    )
    assert "best so far: a00000000002  acc=0.82  (completed, 4/4 epochs)" in lines
    running = lines[lines.index("running:") + 1 :]
    assert running[0].split() == [
        "trial_id",
        "state",
        "epoch",
        "acc",
        "host",
        "slurm",
        "job",
        "segment",
        "for",
        "last",
        "epoch",
    ]
    rows = {r.split()[0]: r.split() for r in running[1:5]}
    assert rows["a00000000001"][:7] == [
        "a00000000001",
        "running",
        "2/4",
        "0.6",
        "node-a",
        "9001",
        "1m30s",
    ]
    assert rows["a00000000008"][:6] == ["a00000000008", "running", "2/4", "0.91", "node-a", "9002"]
    assert rows["a00000000003"][:4] == ["a00000000003", "waiting", "1/4", "0.65"]
    board = lines[lines.index("leaderboard:") + 1 :]
    assert board[0].split() == ["#", "trial_id", "state", "acc", "best", "epochs", "segments", "x"]
    assert board[1].split() == ["1", "a00000000002", "completed", "0.82", "0.82", "4/4", "1", "2"]
    assert board[9].split() == ["9", "a00000000004", "failed", "-", "-", "0/4", "1", "4"]
    assert "FAILED a00000000004: RuntimeError: boom" in lines
    # Pending trials are not on the leaderboard; they are listed last, with their parameters.
    pending = lines.index("pending (planned, not started):")
    assert all("a0000000000a" not in line for line in lines[:pending])
    assert lines[pending + 1 :][1].split() == ["a0000000000a", "-", "10"]


def test_best_so_far_falls_back_to_running_trials(tmp_path):
    root = tmp_path / "sweep"
    make_trial(root, "b00000000001", {"x": 1}, segments=[start(1)], metrics=epochs(0.5, 0.55))
    make_trial(root, "b00000000002", {"x": 2}, segments=[start(1)], metrics=epochs(0.7))
    # no result yet: the metric is named on the command line
    status = scan_sweep(root, metric="loss", mode="min", now=T0)
    best, source = status.best
    assert (best.trial_id, best.value, source) == ("b00000000002", pytest.approx(0.3), "running")
    assert "not finished: no trial has completed yet" in format_status(status)
    # without --metric and nothing on disk naming it, the status says so instead of guessing
    unknown = scan_sweep(root, now=T0)
    assert unknown.metric is None and unknown.best == (None, None)
    assert "metric or mode unknown" in format_status(unknown)


def test_metric_comes_from_provenance_while_nothing_has_finished(tmp_path):
    root = tmp_path / "sweep"
    trial = make_trial(root, "c00000000001", {"x": 1}, segments=[start(1)], metrics=epochs(0.5))
    job = TrialJob(
        trial_id="c00000000001",
        trial_dir=trial,
        params={"x": 1},
        script="train.py",
        budget=4,
        metric="loss",
        mode="min",
        result_path=result_path(trial, 4),
        log_path=root / "logs" / "c00000000001-4ep.log",
    )
    write_provenance(job, {"sweep": "sweep"}, "running")  # as the training job does at start
    status = scan_sweep(root, now=T0)
    assert (status.metric, status.mode) == ("loss", "min")
    assert status.trials[0].value == pytest.approx(0.5)


def test_a_running_trial_whose_process_is_gone_is_flagged(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = tmp_path / "sweep"
    host = socket.gethostname()
    make_trial(root, "d00000000001", {"x": 1}, segments=[start(1, host=host, pid=dead.pid)])
    make_trial(root, "d00000000002", {"x": 2}, segments=[start(1, host=host, pid=os.getpid())])
    status = scan_sweep(root, metric="acc", mode="max")
    t = by_id(status)
    assert t["d00000000001"].alive is False and t["d00000000002"].alive is True
    assert "running (no process)" in format_status(status)


def test_config_gives_pending_trials_and_the_metric(tmp_path):
    config = {
        "sweep": "planned",
        "results_dir": str(tmp_path / "results"),
        "metric": "acc",
        "mode": "min",
        "epochs": 4,
        "strategy": "grid",
        "parameters": {"x": {"kind": "grid", "values": [1, 2, 3, 4]}},
    }
    configfile = tmp_path / "sweep.yaml"
    configfile.write_text(yaml.safe_dump(config))
    plan = build_sweep(config)
    ids = list(plan.trials)
    root = plan.root
    make_trial(root, ids[0], plan.trials[ids[0]], segments=[start(1)], metrics=epochs(0.5))
    make_trial(
        root,
        ids[1],
        plan.trials[ids[1]],
        segments=[start(1), end(1, "completed")],
        metrics=epochs(0.1, 0.2, 0.3, 0.4),
        results={4: ("completed", None)},
    )
    make_trial(root, "e00000000000", {"x": 99, "epochs": 4}, segments=[start(1)])  # not planned

    out = io.StringIO()
    assert cli.main(["status", "--config", str(configfile), "--json"], out=out) == 0
    data = json.loads(out.getvalue())
    assert (data["metric"], data["mode"], data["planned"], data["not_in_plan"]) == (
        "acc",
        "min",
        4,
        1,
    )
    assert data["root"] == str(root)
    assert data["counts"] == {
        "completed": 1,
        "running": 1,
        "waiting": 0,
        "pruned": 0,
        "diverged": 0,
        "failed": 0,
        "pending": 2,
    }
    assert [t["trial_id"] for t in data["trials"]] == [ids[1], ids[0], ids[2], ids[3]]
    assert [t["state"] for t in data["trials"]][2:] == ["pending", "pending"]
    assert data["trials"][2]["params"] == plan.trials[ids[2]] and data["trials"][2]["budget"] == 4
    assert data["best"]["trial_id"] == ids[1] and data["best_from"] == "completed"
    # --mode overrides the config: the same values ranked the other way
    out = io.StringIO()
    cli.main(["status", str(root), "--config", str(configfile), "--mode", "max", "--json"], out=out)
    assert json.loads(out.getvalue())["mode"] == "max"
    text = io.StringIO()
    cli.main(["status", "--config", str(configfile)], out=text)
    assert (
        "4 trials: 1 completed, 1 running, 0 waiting, 0 pruned, 0 diverged, 0 failed, 2 pending"
        in text.getvalue()
    )
    assert "(1 STALE trial folder(s) on disk, from an older config of this sweep" in text.getvalue()


def test_errors_are_plain(tmp_path, capsys):
    assert cli.main(["status", str(tmp_path / "nowhere")]) == 2
    assert "no such sweep folder" in capsys.readouterr().err
    assert cli.main(["status"]) == 2
    assert "results/<sweep>" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("metric: acc\nmode: sideways\nparameters: {x: {kind: fixed, value: 1}}\n")
    with pytest.raises(StatusError, match="mode: 'sideways' is not allowed"):
        planned_trials(bad)


def test_watch_refreshes_until_ctrl_c(sweep_in_progress, monkeypatch):
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", sleep)
    out = io.StringIO()
    assert cli.main(["status", str(sweep_in_progress), "--watch", "2"], out=out) == 0
    text = out.getvalue()
    assert naps == [2.0, 2.0, 2.0]
    assert text.count(cli.CLEAR_SCREEN) == 3
    assert text.count("10 trials: 1 completed, 2 running") == 3
    naps.clear()
    args = cli.build_parser().parse_args(["status", "x", "--watch"])
    assert args.watch == 5.0  # --watch alone: every 5 s


@pytest.mark.e2e
def test_status_of_a_finished_sweep(tmp_path):
    config = echo_config(tmp_path, ["good", "crash", "nan"])
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "echo"
    configfile = tmp_path / "sweep.yaml"  # written by run_workflow
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "snakesweep"), "status", str(root), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(proc.stdout)
    with open(root / "leaderboard.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert data["counts"] == {
        "completed": 1,
        "running": 0,
        "waiting": 0,
        "pruned": 0,
        "diverged": 1,
        "failed": 1,
        "pending": 0,
    }
    assert (data["metric"], data["mode"]) == ("score", "max")
    assert data["best"]["trial_id"] == rows[0]["trial_id"]
    assert data["best"]["value"] == float(rows[0]["final"]) == 8.0  # len("good") * 2 epochs
    states = {t["params"]["behaviour"]: t["state"] for t in data["trials"]}
    assert states == {"good": "completed", "crash": "failed", "nan": "diverged"}
    # The same through the config: the plan matches the folder, nothing pending.
    text = subprocess.run(
        [sys.executable, "-m", "snakesweep.cli", "status", "--config", str(configfile)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert (
        "3 trials: 1 completed, 0 running, 0 waiting, 0 pruned, 1 diverged, 1 failed, 0 pending"
        in text
    )
    assert f"best so far: {rows[0]['trial_id']}  score=8  (completed, 2/2 epochs)" in text
