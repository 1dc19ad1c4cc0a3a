"""Pruning in real workflow runs: SHA rungs in the DAG, Hyperband brackets, ASHA self-pruning."""

import json
from pathlib import Path

import pytest
from conftest import demo_config, echo_config, read_json, read_leaderboard, run_workflow

from snakesweep.search.pruning import asha_decision, promote
from snakesweep.search.sweep import build_sweep

pytestmark = pytest.mark.e2e


def leaderboard(root: Path) -> dict[str, dict]:
    return {row["trial_id"]: row for row in read_leaderboard(root)}


def test_sha_promotes_the_best_third_and_resumes_without_retraining(tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    config = demo_config(
        sweep="sha",
        n_trials=6,
        epochs=3,
        results_dir=str(tmp_path / "results"),
        pruning={"method": "sha", "eta": 3, "min_t": 1},
    )
    run_workflow(tmp_path / "sha", config, env=env)
    root = tmp_path / "results" / "sha"
    decision = read_json(root / "rungs" / "bracket0-rung0.json")
    scores = {}
    for tid in build_sweep(config).trial_ids:
        record = read_json(root / "trials" / tid / "result-1.json")
        scores[tid] = record["final"]
    assert decision["scores"] == scores
    assert decision["promoted"] == promote(scores, eta=3, mode="max")
    assert len(decision["promoted"]) == 2

    rows = leaderboard(root)
    for tid, row in rows.items():
        if tid in decision["promoted"]:
            assert (row["status"], row["epochs_done"], row["rung"]) == ("completed", "3", "1")
            metrics = (root / "trials" / tid / "metrics.jsonl").read_text().splitlines()
            assert [json.loads(m)["epoch"] for m in metrics] == [1, 2, 3]  # no epoch twice
            assert "resumed from" in (root / "logs" / "train" / f"{tid}-3ep.log").read_text()
        else:
            assert (row["status"], row["epochs_done"], row["rung"]) == ("pruned", "1", "0")
            assert not (root / "trials" / tid / "result-3.json").exists()
    best = max(
        decision["promoted"],
        key=lambda t: read_json(root / "trials" / t / "result-3.json")["final"],
    )
    assert f"trial_id: {best}" in (root / "best.yaml").read_text()

    # Training in rungs gives bit for bit what one uninterrupted run gives.
    full = {**config, "sweep": "full", "pruning": {"method": "none"}}
    run_workflow(tmp_path / "full", {**full, "n_trials": 6}, "--until", "train_trial", env=env)
    for tid in decision["promoted"]:
        pruned_run = read_json(root / "trials" / tid / "result-3.json")
        straight = read_json(tmp_path / "results" / "full" / "trials" / tid / "result-3.json")
        assert pruned_run["history"] == straight["history"]


def test_hyperband_plans_brackets_from_one_seeded_sample():
    config = demo_config(epochs=9, pruning={"method": "hyperband", "eta": 3, "min_t": 1})
    sweep = build_sweep(config)
    assert [(b.budgets, len(b.trial_ids)) for b in sweep.brackets] == [
        ((1, 3, 9), 9),
        ((3, 9), 5),
        ((9,), 3),
    ]
    assert build_sweep(config).brackets == sweep.brackets  # same config and seed, same plan


def test_asha_trials_prune_themselves_by_their_peers_at_each_rung(tmp_path):
    # Each trial started scores below the ones before it, so every later arrival at a
    # rung is the worst so far and must be pruned once min_peers have reported.
    config = echo_config(
        tmp_path,
        ["countdown"],
        epochs=4,
        pruning={"method": "asha", "eta": 2, "min_t": 1, "min_peers": 2},
    )
    config["parameters"]["offset"] = {"kind": "grid", "values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}
    run_workflow(tmp_path, config, "--cores", "1")
    root = tmp_path / "results" / "echo"
    rows = leaderboard(root)
    rung_dir = root / "rungs" / "asha"
    pruned_at = {}
    for budget in (1, 2):
        reports = [read_json(p) for p in (rung_dir / f"rung-{budget}").glob("*.json")]
        # Replay the reports in the order they were written: each decision must be what
        # asha_decision gives against the peers that had reported before it.
        order = sorted(
            (rung_dir / f"rung-{budget}").glob("*.json"), key=lambda p: p.stat().st_mtime_ns
        )
        earlier = []
        for path in order:
            report = read_json(path)
            assert report["peers"] == len(earlier)
            assert report["continue"] == asha_decision(report["score"], earlier, 2, "max", 2)
            earlier.append(report["score"])
            if not report["continue"]:
                pruned_at[report["trial_id"]] = budget
        assert len(reports) == len(order)
    assert len(pruned_at) == 5 and set(pruned_at.values()) == {1}
    for tid, row in rows.items():
        if tid in pruned_at:
            assert row["status"] == "pruned" and int(row["epochs_done"]) == pruned_at[tid]
        else:
            assert row["status"] == "completed" and row["epochs_done"] == "4"
    # The best trial is chosen only among trials that reached the full budget.
    best_text = (root / "best.yaml").read_text()
    completed = [t for t, r in rows.items() if r["status"] == "completed"]
    best = max(completed, key=lambda t: float(rows[t]["final"]))
    assert f"trial_id: {best}" in best_text


def hyperband_echo_config(tmp_path):
    """Three Hyperband brackets (eta 2, budgets up to 4) of the fast stand-in script."""
    values = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g" * 7, "h" * 8]
    return echo_config(
        tmp_path,
        values,
        strategy="random",
        n_trials=1,
        epochs=4,
        pruning={"method": "hyperband", "eta": 2, "min_t": 1},
    )


def test_hyperband_runs_every_bracket_to_the_full_budget(tmp_path):
    config = hyperband_echo_config(tmp_path)
    run_workflow(tmp_path, config)
    sweep = build_sweep(config)
    root = tmp_path / "results" / "echo"
    rows = leaderboard(root)
    assert set(rows) == set(sweep.trials)
    for bracket in sweep.brackets:
        survivors = list(bracket.trial_ids)
        for rung, budget in enumerate(bracket.budgets[:-1]):
            decision = read_json(root / "rungs" / f"bracket{bracket.index}-rung{rung}.json")
            scores = {
                t: read_json(root / "trials" / t / f"result-{budget}.json")["final"]
                for t in survivors
            }
            assert decision["promoted"] == promote(scores, eta=2, mode="max")
            survivors = decision["promoted"]
        for tid in survivors:
            assert rows[tid]["status"] == "completed" and rows[tid]["epochs_done"] == "4"


def test_hyperband_plans_every_bracket_at_once(tmp_path):
    """Brackets are independent: a dry run schedules each bracket's first rung, not bracket 0's only."""
    config = hyperband_echo_config(tmp_path)
    sweep = build_sweep(config)
    assert len(sweep.brackets) == 3
    proc = run_workflow(tmp_path, config, "-n")
    planned = set()
    for line in proc.stdout.splitlines():
        if "wildcards: trial_id=" in line:
            fields = dict(kv.split("=") for kv in line.split(":", 1)[1].replace(" ", "").split(","))
            planned.add((fields["trial_id"], int(fields["budget"])))
    first_rungs = {(t, b.budgets[0]) for b in sweep.brackets for t in b.trial_ids}
    assert planned == first_rungs
    for bracket in sweep.brackets:
        assert f"bracket{bracket.index}-records.json" in proc.stdout
