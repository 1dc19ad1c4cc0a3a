"""strategy tpe end to end: real snakemake runs of small model-based sweeps in rounds."""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, demo_config, read_leaderboard, run_workflow, workflow_command

from snakesweep.search.pruning import asha_decision

pytestmark = pytest.mark.e2e

ECHO = str(REPO / "tests" / "fixtures" / "echo_train.py")
#: Leaderboard columns that differ between runs by nature (time, where the log is).
RUN_COLUMNS = ("wall_time_s", "log")


def tpe_config(tmp_path: Path, **overrides) -> dict:
    """A tpe sweep of the echo fixture: score = len(behaviour) * epoch + offset (max)."""
    config = {
        "sweep": "tpe",
        "results_dir": str(tmp_path / "results"),
        "script": ECHO,
        "metric": "score",
        "mode": "max",
        "epochs": 2,
        "strategy": "tpe",
        "n_trials": 6,
        "round_size": 3,
        "seed": 1,
        "tpe": {"n_startup_trials": 3},
        "parameters": {
            "behaviour": {"kind": "choice", "values": ["a", "bb", "ccc"]},
            "offset": {"kind": "uniform", "low": 0.0, "high": 10.0},
        },
    }
    config.update(overrides)
    return config


def round_bytes(root: Path) -> dict[str, bytes]:
    """The round files (not the round summaries), by name."""
    paths = sorted((root / "rounds").glob("round-*.json"))
    return {p.name: p.read_bytes() for p in paths if re.fullmatch(r"round-\d+\.json", p.name)}


def board(root: Path) -> list[dict]:
    return [
        {k: v for k, v in row.items() if k not in RUN_COLUMNS} for row in read_leaderboard(root)
    ]


def round_trials(root: Path, k: int) -> list[str]:
    data = json.loads((root / "rounds" / f"round-{k}.json").read_text())
    return [entry["trial_id"] for entry in data["trials"]]


def test_two_folders_give_identical_rounds_and_leaderboards_and_growing_adds_rounds(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    plan = run_workflow(a, tpe_config(a), "-n")
    out = plan.stdout + plan.stderr
    assert "strategy 'tpe' plans 6 trials in 2 round(s) of 3/3" in out
    assert "round(s) 1 follow" in out and "cannot be listed yet" in out
    first = run_workflow(a, tpe_config(a))
    run_workflow(b, tpe_config(b, pack=3))  # packing changes how trials run, not the rounds
    root_a, root_b = a / "results" / "tpe", b / "results" / "tpe"
    # The dry run listed exactly round 0's trials.
    listed = {t for t in round_trials(root_a, 0) if f"trials/{t}/" in out}
    assert listed == set(round_trials(root_a, 0)) and len(listed) == 3
    assert not any(f"trials/{t}/" in out for t in round_trials(root_a, 1))
    rounds = round_bytes(root_a)
    assert list(rounds) == ["round-0.json", "round-1.json"]
    assert rounds == round_bytes(root_b)
    assert board(root_a) == board(root_b)
    assert len(board(root_a)) == 6 and {r["status"] for r in board(root_a)} == {"completed"}
    assert "snakesweep: tpe: 6 trials (6 completed)" in first.stdout
    # Round 1 learned from round 0's three records.
    r1 = json.loads(rounds["round-1.json"])
    assert r1["records"]["states"] == {"COMPLETE": 3, "PRUNED": 0, "FAIL": 0}
    assert r1["versions"]["optuna"] == "5.0.0"

    # Growing n_trials adds a round; the rounds and results before stay as they were.
    records = {
        t: (root_a / "trials" / t / "result-2.json").stat().st_mtime_ns
        for k in (0, 1)
        for t in round_trials(root_a, k)
    }
    run_workflow(a, tpe_config(a, n_trials=8))
    grown = round_bytes(root_a)
    assert list(grown) == ["round-0.json", "round-1.json", "round-2.json"]
    assert {k: grown[k] for k in rounds} == rounds
    assert json.loads(grown["round-2.json"])["size"] == 2
    assert json.loads(grown["round-2.json"])["records"]["count"] == 6
    for t, mtime in records.items():
        assert (root_a / "trials" / t / "result-2.json").stat().st_mtime_ns == mtime
    assert len(read_leaderboard(root_a)) == 8
    # A rerun, forced even, reads the round files and never writes them anew.
    round_0 = str(root_a / "rounds" / "round-0.json")
    run_workflow(a, tpe_config(a, n_trials=8), "--cores", "2", round_0, "--forcerun", "first_round")
    assert round_bytes(root_a) == grown
    assert "round 0: kept as written" in (root_a / "logs" / "rounds" / "round-0.log").read_text()
    # Changing a search setting is refused, naming it, while rounds are written.
    refused = run_workflow(a, tpe_config(a, n_trials=8, seed=2), "-n", check=False)
    assert refused.returncode != 0
    assert "seed: differ from the settings round 0 was made with" in refused.stderr


def test_tpe_with_asha_prunes_against_earlier_rounds_and_tells_pruned_trials(tmp_path):
    config = tpe_config(
        tmp_path,
        epochs=3,
        n_trials=9,
        seed=0,
        tpe={"n_startup_trials": 9},  # random suggestions: the test is about pruning
        pruning={"method": "asha", "eta": 3, "min_t": 1, "min_peers": 3},
    )
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "tpe"
    rows = {r["trial_id"]: r for r in read_leaderboard(root)}
    first = round_trials(root, 0)
    # Round 0 has no earlier peers: nobody is pruned there.
    assert {rows[t]["status"] for t in first} == {"completed"}
    # Round 1's trials are compared at rung 1 with round 0's scores at epoch 1, only.
    peers = [
        json.loads(line)["score"]
        for t in first
        for line in (root / "trials" / t / "metrics.jsonl").read_text().splitlines()[:1]
    ]
    expected = {}
    for t in round_trials(root, 1):
        own = json.loads((root / "trials" / t / "metrics.jsonl").read_text().splitlines()[0])
        expected[t] = "completed" if asha_decision(own["score"], peers, 3, "max", 3) else "pruned"
    assert {t: rows[t]["status"] for t in expected} == expected
    assert "pruned" in expected.values()
    # Round 2 was told them as PRUNED.
    r2 = json.loads((root / "rounds" / "round-2.json").read_text())
    pruned = sum(s == "pruned" for s in expected.values())
    assert r2["records"]["states"] == {"COMPLETE": 6 - pruned, "PRUNED": pruned, "FAIL": 0}


def test_a_round_in_which_every_trial_fails(tmp_path):
    config = tpe_config(
        tmp_path,
        n_trials=4,
        round_size=2,
        parameters={
            "behaviour": {"kind": "fixed", "value": "crash"},
            "offset": {"kind": "uniform", "low": 0.0, "high": 10.0},
        },
    )
    proc = run_workflow(tmp_path, config, check=False)
    assert proc.returncode == 1
    assert "NO USABLE RESULT" in proc.stdout
    root = tmp_path / "results" / "tpe"
    r1 = json.loads((root / "rounds" / "round-1.json").read_text())
    assert r1["records"]["states"] == {"COMPLETE": 0, "PRUNED": 0, "FAIL": 2}
    assert len(r1["trials"]) == 2
    rows = read_leaderboard(root)
    assert [r["status"] for r in rows] == ["failed"] * 4
    assert all("deliberate crash" in r["error"] for r in rows)


def test_a_controller_killed_during_round_1_restarts_to_the_same_rounds(tmp_path):
    """SIGKILL to snakemake and its trials while round 1 trains; --unlock and rerun."""

    def config_in(folder):
        return demo_config(
            sweep="tpe",
            results_dir=str(folder / "results"),
            epochs=3,
            strategy="tpe",
            n_trials=6,
            round_size=3,
            tpe={"n_startup_trials": 3},
            checkpoint={"epoch_end_max_overhead": None},
        )

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    run_workflow(ref, config_in(ref))
    root = killed / "results" / "tpe"
    cmd = workflow_command(killed, config_in(killed), "--cores", "2", "--retries", "20")
    proc = subprocess.Popen(
        cmd,
        cwd=killed,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    started = False
    while time.time() < deadline and proc.poll() is None and not started:
        time.sleep(0.05)
        if (root / "rounds" / "round-1.json").exists():
            started = any(
                (root / "trials" / t / "segments.jsonl").exists() for t in round_trials(root, 1)
            )
    assert started, "round 1 never started training"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_workflow(killed, config_in(killed), "--unlock")
    run_workflow(killed, config_in(killed), "--rerun-incomplete")
    ref_root = ref / "results" / "tpe"
    assert round_bytes(root) == round_bytes(ref_root)
    assert board(root) == [
        {**row, "restarts": row_k["restarts"]}
        for row, row_k in zip(board(ref_root), board(root), strict=True)
    ]
    for k in (0, 1):
        for t in round_trials(root, k):
            trial = root / "trials" / t
            epochs = [
                json.loads(x)["epoch"] for x in (trial / "metrics.jsonl").read_text().splitlines()
            ]
            assert epochs == [1, 2, 3], (t, epochs)  # no epoch trained twice
            if k == 0:  # finished before the kill: never run again
                starts = [
                    e
                    for e in map(json.loads, (trial / "segments.jsonl").read_text().splitlines())
                    if e.get("event") == "start"
                ]
                assert len(starts) == 1
