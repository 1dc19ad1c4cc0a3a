"""Packed trials (pack > 1): the packing plan, and real workflow runs against unpacked ones."""

import json
import re
import time
from pathlib import Path

import pytest
from conftest import demo_config, echo_config, read_json, read_leaderboard, run_workflow

from snakesweep.cluster.packing import (
    in_sweep_order,
    make_packs,
    members_digest,
    pack_slots,
    pack_waves,
    slot_cpus,
    slot_gpus,
)
from snakesweep.search.sweep import build_sweep

# Columns that must be equal between a packed and an unpacked run (not times, job ids, logs).
SAME = ("rank", "trial_id", "status", "final", "best", "best_epoch", "epochs_done", "rung")


def jobs_run(proc, rule: str) -> int:
    match = re.search(rf"^{rule}\s+(\d+)$", proc.stdout + proc.stderr, re.M)
    return int(match.group(1)) if match else 0


def board(root: Path) -> list[tuple]:
    return [tuple(row.get(k) for k in SAME) for row in read_leaderboard(root)]


def histories(root: Path, budget: int) -> dict[str, list]:
    out = {}
    for path in sorted((root / "trials").glob(f"*/result-{budget}.json")):
        record = read_json(path)
        out[record["trial_id"]] = (record["status"], record["history"])
    return out


def segments(root: Path, tid: str) -> list[dict]:
    text = (root / "trials" / tid / "segments.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


# -- the plan: pure functions ------------------------------------------------------------------
def test_packs_are_consecutive_runs_and_growing_keeps_full_packs():
    ids = [f"t{i}" for i in range(7)]
    packs = make_packs(0, 0, ids, 3)
    assert [p.members for p in packs] == [("t0", "t1", "t2"), ("t3", "t4", "t5"), ("t6",)]
    grown = make_packs(0, 0, [*ids, "t7"], 3)
    assert [p.name for p in grown[:2]] == [p.name for p in packs[:2]]
    assert grown[2].members == ("t6", "t7") and grown[2].name != packs[2].name
    assert packs[0].name == f"bracket0-rung0-pack0-{members_digest(['t0', 't1', 't2'])}"
    with pytest.raises(ValueError):
        make_packs(0, 0, ids, 0)


def test_promoted_trials_are_packed_in_sweep_order():
    assert in_sweep_order(["c", "a", "b"], ["a", "b", "c", "d"]) == ["a", "b", "c"]


def test_slots_waves_and_each_slots_share_of_the_job():
    assert (pack_slots(8, 0), pack_waves(8, 0)) == (8, 1)
    assert (pack_slots(8, 2), pack_waves(8, 2)) == (2, 4)
    assert (pack_slots(3, 5), pack_waves(3, 5)) == (3, 1)
    assert slot_cpus([5, 4, 7, 6], 1, 2) == [6, 7]
    assert slot_cpus([0, 1], 1, 2) is None  # fewer CPUs than slots need: no pinning
    assert slot_gpus("0,1,2,3", 1, 2) == "2,3"
    assert slot_gpus("0", 1, 1) is None and slot_gpus(None, 0, 1) is None


# -- real workflow runs ------------------------------------------------------------------------
@pytest.mark.e2e
def test_packed_demo_sweep_equals_unpacked_and_growing_retrains_nothing(tmp_path):
    env = {"OMP_NUM_THREADS": "1"}
    base = demo_config(n_trials=3, epochs=2, sweep="demo", results_dir="results")
    run_workflow(tmp_path / "plain", base, env=env)
    proc = run_workflow(tmp_path / "packed", {**base, "pack": 2}, env=env)
    assert jobs_run(proc, "train_pack") == 2 and jobs_run(proc, "train_trial") == 0
    plain, packed = tmp_path / "plain/results/demo", tmp_path / "packed/results/demo"
    assert board(packed) == board(plain)
    assert histories(packed, 2) == histories(plain, 2)  # every epoch's metrics, bit for bit
    for tid in histories(packed, 2):
        record = read_json(packed / "trials" / tid / "result-2.json")
        assert record["log"].endswith(f"logs/train/{tid}-2ep.log") and record["restarts"] == 0
        assert (tmp_path / "packed" / record["log"]).read_text().count("epoch 2:") == 1
        assert read_json(packed / "trials" / tid / "provenance.json")["trial_id"] == tid

    # Growing n_trials: the partial last pack grows; its finished member is not retrained.
    before = {t: segments(packed, t) for t in histories(packed, 2)}
    grown = run_workflow(tmp_path / "packed", {**base, "pack": 2, "n_trials": 4}, env=env)
    assert jobs_run(grown, "train_pack") == 1
    assert {t: segments(packed, t) for t in before} == before
    run_workflow(tmp_path / "plain", {**base, "n_trials": 4}, env=env)
    assert board(packed) == board(plain)
    assert histories(packed, 2) == histories(plain, 2)


@pytest.mark.e2e
def test_a_packed_trial_continues_after_its_time_limit_and_a_crashing_member_fails_alone(
    tmp_path,
):
    env = {"OMP_NUM_THREADS": "1"}
    config = demo_config(n_trials=1, epochs=2, sweep="demo", results_dir="results")
    # Two optimizer steps per epoch; a second trial whose script fails at once (argparse
    # rejects the optimizer).
    config["parameters"]["batch_size"] = {"kind": "fixed", "value": 1024}
    config["parameters"]["optimizer"] = {"kind": "grid", "values": ["adam", "bogus"]}
    run_workflow(tmp_path / "plain", config, env=env)
    plain = tmp_path / "plain/results/demo"

    # A time limit that has passed: every segment saves after one step and exits 75, so the
    # pack's job exits 75 and Snakemake's retries run the pack again until the trial is done.
    passed = {**env, "SNAKESWEEP_DEADLINE": f"{time.time() - 1:.3f}"}
    proc = run_workflow(tmp_path / "packed", {**config, "pack": 2}, env=passed)
    root = tmp_path / "packed/results/demo"
    assert board(root) == board(plain)
    assert histories(root, 2) == histories(plain, 2)
    ids = {
        read_json(p)["params"]["optimizer"]: read_json(p)["trial_id"]
        for p in root.glob("trials/*/params.json")
    }
    good, bad = ids["adam"], ids["bogus"]
    outcomes = [e["outcome"] for e in segments(root, good) if e["event"] == "end"]
    assert len(outcomes) >= 2 and set(outcomes[:-1]) == {"continue"}, outcomes
    assert outcomes[-1] == "completed"
    assert "Trying to restart job" in proc.stdout + proc.stderr  # the pack's own continuations
    record = read_json(root / "trials" / good / "result-2.json")
    assert record["status"] == "completed" and record["restarts"] == len(outcomes) - 1
    # The crashing member ran once: its neighbour's continuations did not run it again.
    failed = read_json(root / "trials" / bad / "result-2.json")
    assert failed["status"] == "failed" and "invalid choice" in failed["error"]
    assert [e["outcome"] for e in segments(root, bad) if e["event"] == "end"] == ["failed"]


@pytest.mark.parametrize("method", ["sha", "hyperband"])
@pytest.mark.e2e
def test_packed_rungs_make_the_same_promotions_and_leaderboard(tmp_path, method):
    values = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g" * 7]
    config = echo_config(
        tmp_path,
        values,
        strategy="random" if method == "hyperband" else "grid",
        n_trials=1,
        epochs=4,
        results_dir="results",
        pruning={"method": method, "eta": 2, "min_t": 1},
    )
    run_workflow(tmp_path / "plain", config)
    proc = run_workflow(tmp_path / "packed", {**config, "pack": 3})
    plain, packed = tmp_path / "plain/results/echo", tmp_path / "packed/results/echo"
    assert board(packed) == board(plain)
    decisions = sorted(p.name for p in (plain / "rungs").glob("bracket*-rung*.json"))
    assert decisions and decisions == sorted(
        p.name for p in (packed / "rungs").glob("bracket*-rung*.json")
    )
    for name in decisions:
        assert read_json(packed / "rungs" / name) == read_json(plain / "rungs" / name)
    sweep = build_sweep(config)
    for bracket in sweep.brackets:
        for budget in bracket.budgets:
            assert histories(packed, budget) == histories(plain, budget)
    # Every rung's survivors share jobs, 3 at a time: fewer jobs than records.
    assert 0 < jobs_run(proc, "train_pack") < jobs_run(proc, "packed_record")


def test_a_member_gets_one_trials_threads_not_the_packs():
    """Snakemake sets OMP_NUM_THREADS & co. to the job's threads (all members' CPUs); thread
    counts change float results, so a member must see what an unpacked job of its trial sees."""
    from snakesweep.cluster.layout import THREAD_VARS
    from snakesweep.job.pack_job import _member_env

    env = _member_env({name: "4" for name in THREAD_VARS}, slot=1, cpus=2, gpus=0)
    assert {env[name] for name in THREAD_VARS} == {"2"}
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert _member_env({"CUDA_VISIBLE_DEVICES": "0,1"}, 1, 1, 1)["CUDA_VISIBLE_DEVICES"] == "1"


@pytest.mark.e2e
def test_packed_asha_trials_prune_themselves_at_their_rungs(tmp_path):
    """ASHA has no rungs in the DAG: pack members report at each rung and stop themselves.

    ASHA's decisions depend on the order in which trials reach a rung (six trials reporting in
    order of improving score prune none), so the order is fixed: one core runs the packs and
    their members one after another, and each trial started scores below every earlier one
    (``countdown``), so every later arrival at a rung is the worst so far whatever the order.
    """
    config = echo_config(
        tmp_path,
        ["countdown"],
        epochs=4,
        pack=3,
        pack_parallel=1,
        pruning={"method": "asha", "eta": 2, "min_t": 1, "min_peers": 2},
    )
    config["parameters"]["offset"] = {"kind": "grid", "values": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}
    proc = run_workflow(tmp_path, config, "--cores", "1")
    assert jobs_run(proc, "train_pack") == 2
    root = tmp_path / "results" / "echo"
    rows = {row["trial_id"]: row for row in read_leaderboard(root)}
    assert len(rows) == 6 and "pruned" in {r["status"] for r in rows.values()}
    stopped = {}
    for path in (root / "rungs" / "asha").glob("rung-*/*.json"):
        report = read_json(path)
        if not report["continue"]:
            stopped[report["trial_id"]] = int(path.parent.name.removeprefix("rung-"))
    for tid, row in rows.items():
        if tid in stopped:
            assert (row["status"], int(row["epochs_done"])) == ("pruned", stopped[tid])
        else:
            assert (row["status"], row["epochs_done"]) == ("completed", "4")


@pytest.mark.e2e
def test_a_pack_job_asks_for_the_members_that_train_at_once(tmp_path):
    """pack 3, 2 at a time: a full pack asks 2 trials' CPUs and memory for 2 segments' time;
    the partial last pack (1 member) one trial's."""
    config = echo_config(
        tmp_path,
        ["a", "bb", "ccc", "dddd"],
        pack=3,
        pack_parallel=2,
        resources={"runtime": 7, "mem_mb": 500, "cpus": 1, "gpus": 0},
    )
    plan = run_workflow(tmp_path, config, "-n").stdout
    asked = re.findall(
        r"pack=(\d+), digest=\w+\n.*?cpus_per_task=(\d+), runtime=(\d+), mem_mb=(\d+)", plan, re.S
    )
    assert sorted(asked) == [("0", "2", "14", "1000"), ("1", "1", "7", "500")]
