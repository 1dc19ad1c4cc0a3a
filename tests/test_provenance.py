"""provenance.json in each trial folder (the trackers written beside it: test_trackers.py)."""

import hashlib
import importlib.metadata
import json
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

from snakesweep import __version__
from snakesweep.job import provenance
from snakesweep.job.launch import TrialJob, run_segment
from snakesweep.job.provenance import (
    canonical,
    code_version,
    config_sha256,
    summarize_segments,
)
from snakesweep.job.training_job import run_training_job
from snakesweep.search.trial_id import canonical_json

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
