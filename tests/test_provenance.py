"""provenance.json in each trial folder, and the optional trackers written beside it."""

import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, run_workflow
from test_workflow import echo_config

from snakesweep import __version__, provenance, trackers
from snakesweep.launch import TrialJob, run_segment
from snakesweep.provenance import (
    canonical,
    code_version,
    config_sha256,
    summarize_segments,
)
from snakesweep.training_job import run_training_job
from snakesweep.trial_id import canonical_json

ECHO = REPO / "tests" / "fixtures" / "echo_train.py"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def read_json(path):
    return json.loads(Path(path).read_text())


def test_config_hash_is_sha256_of_canonical_json():
    config = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}
    text = '{"a":{"y":true,"z":null},"b":[1,2.5,"x"]}'
    assert canonical_json(canonical(config)) == text
    assert config_sha256(config) == hashlib.sha256(text.encode()).hexdigest()
    # key order does not matter; any value does
    assert config_sha256({"a": {"y": True, "z": None}, "b": [1, 2.5, "x"]}) == config_sha256(config)
    assert config_sha256({**config, "b": [1, 2.5, "y"]}) != config_sha256(config)
    assert canonical_json(canonical({"x": float("inf"), 3: (1,)})) == '{"3":[1],"x":"inf"}'


def test_segments_are_paired_and_counted():
    events = [
        {
            "event": "start",
            "segment": 1,
            "budget": 2,
            "time": 10.0,
            "host": "n1",
            "slurm_job_id": "7",
        },
        {"event": "end", "segment": 1, "time": 25.5, "exit_code": 75, "outcome": "continue"},
        {
            "event": "start",
            "segment": 2,
            "budget": 2,
            "time": 30.0,
            "host": "n2",
            "slurm_job_id": "8",
        },
        # segment 2 never ended: its job was killed without a word
        {
            "event": "start",
            "segment": 3,
            "budget": 2,
            "time": 40.0,
            "host": "n2",
            "slurm_job_id": "9",
        },
        {"event": "end", "segment": 3, "time": 41.0, "exit_code": 0, "outcome": "completed"},
        {
            "event": "start",
            "segment": 4,
            "budget": 6,
            "time": 50.0,
            "host": "n1",
            "slurm_job_id": "7",
        },
    ]
    summary = summarize_segments(events, running=True)
    assert [s["outcome"] for s in summary["segments"]] == [
        "continue",
        "lost",
        "completed",
        "running",
    ]
    assert [s["duration_s"] for s in summary["segments"]] == [15.5, None, 1.0, None]
    assert [s["exit_code"] for s in summary["segments"]] == [75, None, 0, None]
    counts = ("resumes", "relaunches", "restarts", "promotions")
    assert [summary[k] for k in counts] == [1, 1, 2, 1]
    assert summary["n_segments"] == 4
    assert summary["slurm_job_ids"] == ["7", "8", "9"]
    assert summary["hosts"] == ["n1", "n2"]
    # once the job is over, an unended last segment is lost too
    assert summarize_segments(events)["segments"][-1]["outcome"] == "lost"


@needs_git
def test_code_version_of_a_git_work_tree(tmp_path):
    assert code_version(tmp_path) is None  # not a repository
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    assert code_version(repo) is None  # no commit yet
    (repo / "Snakefile").write_text("rule all:\n")
    subprocess.run([*git, "add", "Snakefile"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert code_version(repo) == {"repo": str(repo.resolve()), "commit": head, "dirty": False}
    (repo / "notes.txt").write_text("untracked files do not make it dirty")
    assert code_version(repo / "Snakefile")["dirty"] is False
    (repo / "Snakefile").write_text("rule all:\n    input: []\n")
    assert code_version(repo)["dirty"] is True


def echo_job(tmp_path, behaviour="good", script=ECHO, budget=2):
    trial_dir = tmp_path / "trials" / "0123456789ab"
    return TrialJob(
        trial_id="0123456789ab",
        trial_dir=trial_dir,
        params={"behaviour": behaviour, "epochs": budget},
        script=str(script),
        budget=budget,
        metric="score",
        mode="max",
        result_path=trial_dir / f"result-{budget}.json",
        log_path=tmp_path / "logs" / f"0123456789ab-{budget}ep.log",
    )


def git_head():
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()


@needs_git
def test_provenance_is_written_at_start_and_refreshed_at_the_end(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4711")
    config = {"sweep": "p", "metric": "score", "mode": "max", "tracking": {}}
    job = echo_job(tmp_path)
    seen_at_start = {}

    def run(job):
        seen_at_start.update(read_json(job.trial_dir / "provenance.json"))
        return run_segment(job)

    heads = {git_head()}
    assert run_training_job(job, config, workflow_dir=REPO / "workflow" / "scripts", run=run) == 0
    heads.add(git_head())  # others may commit meanwhile
    assert seen_at_start["state"] == "running" and seen_at_start["status"] is None
    assert seen_at_start["segments"] == [] and seen_at_start["n_segments"] == 0
    assert seen_at_start["current_job"]["slurm_job_id"] == "4711"

    prov = read_json(job.trial_dir / "provenance.json")
    assert prov["state"] == "ended" and prov["status"] == "completed"
    assert prov["trial_id"] == "0123456789ab"
    assert prov["params"] == {"behaviour": "good", "epochs": 2}
    assert (prov["budget"], prov["metric"], prov["mode"], prov["epochs_done"]) == (
        2,
        "score",
        "max",
        2,
    )
    assert prov["sweep"] == {"name": "p", "config_sha256": config_sha256(config)}
    assert prov["code"]["repo"] == str(REPO) and prov["code"]["commit"] in heads
    assert isinstance(prov["code"]["dirty"], bool)
    assert prov["script"]["path"] == str(ECHO)
    assert prov["script"]["sha256"] == hashlib.sha256(ECHO.read_bytes()).hexdigest()
    assert prov["versions"] == {
        "python": platform.python_version(),
        "snakesweep": __version__,
        "torch": importlib.metadata.version("torch"),
        "numpy": importlib.metadata.version("numpy"),
        "snakemake": importlib.metadata.version("snakemake"),
    }
    assert prov["host"] == prov["segments"][0]["host"]
    assert prov["slurm_job_ids"] == ["4711"]
    (segment,) = prov["segments"]
    assert (segment["segment"], segment["outcome"], segment["exit_code"]) == (1, "completed", 0)
    assert segment["end"] >= segment["start"] and segment["duration_s"] >= 0
    assert (prov["resumes"], prov["restarts"]) == (0, 0)


CONTINUING_SCRIPT = """
import json, os, sys
from pathlib import Path
trial = Path(os.environ["SNAKESWEEP_TRIAL_DIR"])
done = len((trial / "metrics.jsonl").read_text().splitlines()) if (trial / "metrics.jsonl").exists() else 0
with open(trial / "metrics.jsonl", "a") as f:
    f.write(json.dumps({"epoch": done + 1, "score": 1.0 + done}) + "\\n")
sys.exit(75 if done == 0 else 0)  # first segment: "saved, continue me"
"""


def test_resumes_are_counted_across_segments(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    script = tmp_path / "continuing.py"
    script.write_text(CONTINUING_SCRIPT)
    job = echo_job(tmp_path, script=script)
    assert run_training_job(job, None) == 75
    first = read_json(job.trial_dir / "provenance.json")
    assert (first["state"], first["status"], first["n_segments"]) == ("ended", None, 1)
    assert first["segments"][0]["outcome"] == "continue"
    assert first["code"] is None and first["sweep"] == {"name": None, "config_sha256": None}
    assert run_training_job(job, None) == 0
    prov = read_json(job.trial_dir / "provenance.json")
    assert [s["outcome"] for s in prov["segments"]] == ["continue", "completed"]
    # A resume is a restart too: an extra segment at the same budget (as in the record).
    assert (prov["n_segments"], prov["resumes"], prov["restarts"], prov["status"]) == (
        2,
        1,
        1,
        "completed",
    )
    assert prov["slurm_job_ids"] == []


def test_a_provenance_error_never_stops_training(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(provenance, "build_provenance", broken)
    job = echo_job(tmp_path)
    assert run_training_job(job, {"sweep": "p"}) == 0
    assert read_json(job.result_path)["status"] == "completed"
    assert capsys.readouterr().err.count("could not write provenance: OSError: disk full") == 2


# -- trackers ----------------------------------------------------------------------------------


def test_trackers_are_off_by_default():
    assert trackers.check_trackers({}) == []
    assert trackers.check_trackers(None) == []
    assert trackers.check_trackers({"tensorboard": False, "wandb": False}) == []


@pytest.mark.parametrize(
    ("name", "module", "install"),
    [
        (
            "tensorboard",
            "tensorboard",
            "pip install 'snakesweep[tracking]' (or: pip install tensorboard)",
        ),
        ("wandb", "wandb", "pip install wandb"),
    ],
)
def test_a_tracker_that_is_not_installed_is_a_clear_error(monkeypatch, name, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(trackers.TrackerUnavailable) as error:
        trackers.check_trackers({name: True})
    message = str(error.value)
    assert f"tracking.{name}: true needs the Python package(s) ['{module}']" in message
    assert f"install with `{install}`, or set tracking.{name}: false" in message
    # written after a segment anyway (another environment): reported, not raised
    report = trackers.sync_trackers({name: True}, "/nonexistent", "t", {}, "s", [{"epoch": 1}])
    assert report[name].startswith("error: ")


HIDE_MODULES = "import sys\nfor _m in {modules!r}:\n    sys.modules[_m] = None\n"


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_dry_run_fails_when_a_tracker_is_missing(tmp_path, name):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_MODULES.format(modules=[name]))
    config = echo_config(tmp_path, ["good"], tracking={name: True})
    path = os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH")) if p)
    proc = run_workflow(tmp_path, config, "-n", check=False, env={"PYTHONPATH": path})
    assert proc.returncode != 0
    assert (
        f"tracking.{name}: true needs the Python package(s) ['{name}']" in proc.stdout + proc.stderr
    )
    assert not (tmp_path / "results").exists()
    # switched off, the same sweep plans fine
    ok = run_workflow(
        tmp_path, {**config, "tracking": {name: False}}, "-n", env={"PYTHONPATH": path}
    )
    assert ok.returncode == 0


def read_tensorboard(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(s.step, s.value) for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_events_mirror_the_history(tmp_path):
    pytest.importorskip("tensorboard")
    history = [
        {"epoch": 1, "score": 0.5, "loss": 2.0, "note": "x"},
        {"epoch": 2, "score": 0.75, "loss": 1.5},
    ]
    folder = trackers.write_tensorboard(tmp_path, history, {"lr": 0.1})
    assert folder == tmp_path / "tensorboard"
    assert read_tensorboard(folder) == {
        "score": [(1, 0.5), (2, 0.75)],
        "loss": [(1, 2.0), (2, 1.5)],
    }
    # rewritten from scratch: a resume that dropped an epoch leaves no stale point
    trackers.write_tensorboard(tmp_path, history[:1], {"lr": 0.1})
    assert read_tensorboard(folder) == {"score": [(1, 0.5)], "loss": [(1, 2.0)]}
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert not list(tmp_path.glob(".tensorboard.tmp-*"))


def wandb_runs(trial_dir):
    """The raw bytes of each offline W&B run file, oldest first (protobuf keeps strings as-is)."""
    files = sorted((trial_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    return [f.read_bytes() for f in files]


def test_wandb_logs_each_epoch_once_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="install the tracking extra: pip install -e .[tracking]")
    monkeypatch.setenv("WANDB_MODE", "online")  # write_wandb must force offline mode
    history = [{"epoch": 1, "score": 0.123456}, {"epoch": 2, "score": 0.654321}]
    params = {"marker_learning_rate": 0.1}
    assert trackers.write_wandb(tmp_path, "abc123", history, params, "sweepy") == 2
    (first,) = wandb_runs(tmp_path)
    assert b"score" in first and b"0.123456" in first and b"0.654321" in first
    assert b"marker_learning_rate" in first and b"abc123" in first
    assert os.environ["WANDB_MODE"] == "offline"
    # The next segment adds epoch 3 only, to the same run id; with nothing new, no run at all.
    time.sleep(1.1)  # W&B names offline run folders by the second
    history.append({"epoch": 3, "score": 0.777777})
    assert trackers.write_wandb(tmp_path, "abc123", history, params, "sweepy") == 1
    runs = wandb_runs(tmp_path)
    assert len(runs) == 2
    assert b"0.777777" in runs[1] and b"0.123456" not in runs[1] and b"0.654321" not in runs[1]
    assert trackers.write_wandb(tmp_path, "abc123", history, params, "sweepy") == 0
    assert len(wandb_runs(tmp_path)) == 2


@pytest.mark.e2e
def test_a_sweep_with_tensorboard_on(tmp_path):
    pytest.importorskip("tensorboard")
    config = echo_config(tmp_path, ["ab", "abc"], tracking={"tensorboard": True})
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "echo"
    for trial in sorted((root / "trials").iterdir()):
        behaviour = read_json(trial / "params.json")["params"]["behaviour"]
        n = len(behaviour)
        assert read_tensorboard(trial / "tensorboard") == {"score": [(1, float(n)), (2, 2.0 * n)]}
        log = (root / "logs" / "train" / f"{trial.name}-2ep.log").read_text()
        assert f"=== tracking tensorboard: wrote 2 epochs to {trial / 'tensorboard'}" in log
        assert read_json(trial / "provenance.json")["status"] == "completed"
