"""Population based training in real workflow runs: generations, clones, interruptions, replay.

One small population (4 members of tests/fixtures/pbt_train.py, 2 generations of 1 epoch)
is trained once plainly (the ``population`` fixture). The other tests compare against it: a
run whose member is SIGTERMed mid-generation and whose controller is SIGKILLed after a
generation's decision, and the replays of best.yaml and of a cloned member's schedule.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, read_json, run_workflow, workflow_command

from snakesweep.report.leaderboard import pbt_replay_config
from snakesweep.report.tables import load
from snakesweep.search.sweep import build_sweep
from snakesweep.session.checkpoint import load_latest

pytestmark = pytest.mark.e2e

ENV = {"OMP_NUM_THREADS": "1"}
# Seed 0 samples lr 0.00435, 0.0564, 0.181 and 0.185: the last one crashes in its first epoch.
CRASH_ABOVE = 0.182
GENERATIONS = 2  # of one epoch each


def pbt_config(results: Path, sweep: str = "pbt") -> dict:
    return {
        "sweep": sweep,
        "results_dir": str(results),
        "script": str(REPO / "tests" / "fixtures" / "pbt_train.py"),
        "metric": "val_mse",
        "mode": "min",
        "epochs": GENERATIONS,
        "strategy": "random",
        "n_trials": 4,
        "seed": 0,
        "parameters": {
            "lr": {"kind": "loguniform", "low": 0.003, "high": 0.3},
            "crash_above": {"kind": "fixed", "value": CRASH_ABOVE},
        },
        "pbt": {"interval": 1, "mutate": ["lr"], "quantile": 0.25},
    }


def final_state(trial_dir: Path) -> dict:
    state, _ = load_latest(trial_dir / "checkpoints")
    return state


def assert_same_model(a: Path, b: Path) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa["epoch"] == sb["epoch"]
    for name, tensor in sa["objects"]["model"].items():
        assert torch.equal(tensor, sb["objects"]["model"][name]), name


def assert_same_population(reference: Path, root: Path, config: dict) -> None:
    """The same decisions, and for every member the same history, lineage and final weights,
    byte for byte, as the population in ``reference``."""
    for g in range(GENERATIONS - 1):
        name = f"generations/gen-{g}.json"
        assert (root / name).read_bytes() == (reference / name).read_bytes()
    for tid in build_sweep(config).trials:
        a, b = reference / "trials" / tid, root / "trials" / tid
        assert (a / "metrics.jsonl").read_bytes() == (b / "metrics.jsonl").read_bytes()
        assert (a / "lineage.json").read_bytes() == (b / "lineage.json").read_bytes()
        assert_same_model(a, b)


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    base = tmp_path_factory.mktemp("pbt")
    config = pbt_config(base / "results")
    run_workflow(base / "run", config, env=ENV)
    return base, config, base / "results" / "pbt"


def test_generations_replace_the_worst_and_a_failed_member(population):
    _, config, root = population
    sweep = build_sweep(config)
    crashed = next(t for t, p in sweep.trials.items() if p["lr"] > CRASH_ABOVE)
    gen0 = read_json(root / "generations" / "gen-0.json")
    assert gen0["generation"] == 0 and gen0["ranking"][-1] == crashed
    entry = {m["member"]: m for m in gen0["members"]}
    # One of 4 is replaced (quantile 0.25): the failed one, by a copy of the best.
    replaced = [m for m in gen0["members"] if m["parent"] != m["member"]]
    assert [m["member"] for m in replaced] == [crashed]
    parent = entry[crashed]["parent"]
    assert parent == gen0["ranking"][0]
    assert "failed" in entry[crashed]["why"]
    parent_lr = sweep.trials[parent]["lr"]
    new_lr = entry[crashed]["params"]["lr"]
    assert new_lr != parent_lr and 0.003 <= new_lr <= 0.3
    for tid, member in entry.items():
        if tid != crashed:
            assert member["params"] == sweep.trials[tid]
    # The failed member went on from its parent's model and finished; its own folder keeps
    # its own history: nothing for the epoch it crashed in, then the epochs after it.
    final = read_json(root / "trials" / crashed / f"result-{GENERATIONS}.json")
    assert final["status"] == "completed"
    assert [row["epoch"] for row in final["history"]] == list(range(2, GENERATIONS + 1))
    # Lineage: one row per member and generation in its folder, as snakesweep.load shows it.
    tables = load(root, "val_mse", "min")
    lineage = tables.lineage
    assert len(lineage) == 4 * GENERATIONS
    for g in range(GENERATIONS - 1):
        for member in read_json(root / "generations" / f"gen-{g}.json")["members"]:
            row = lineage[(lineage.trial_id == member["member"]) & (lineage.generation == g + 1)]
            assert row.iloc[0].parent == member["parent"]
            assert row.iloc[0].params_lr == member["params"]["lr"]
            assert bool(row.iloc[0].cloned) == (member["parent"] != member["member"])
    assert (root / "plots" / "population.svg").stat().st_size > 0


def test_a_sigtermed_member_and_a_sigkilled_controller_change_nothing(population, tmp_path):
    _, config, reference = population
    config = {**config, "results_dir": str(tmp_path / "results")}
    workdir = tmp_path / "run"
    hook = {"PBT_TEST_SIGTERM_ONCE": str(tmp_path / "sigterm-sent")}
    env = {**os.environ, **ENV, **hook}
    cmd = workflow_command(workdir, config, "--cores", "2", "--retries", "20")
    controller = subprocess.Popen(
        cmd,
        cwd=workdir,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    root = tmp_path / "results" / "pbt"
    decision = root / "generations" / "gen-0.json"
    deadline = time.monotonic() + 600
    while not decision.exists() and controller.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    # The whole controller, with whatever member jobs it runs, dies without a chance to react.
    os.killpg(controller.pid, signal.SIGKILL)
    controller.wait()
    assert decision.exists()
    run_workflow(workdir, config, "--unlock", env=ENV)
    run_workflow(workdir, config, "--rerun-incomplete", env={**ENV, **hook})
    # A member was stopped in the middle of epoch 2 by SIGTERM (before or after the kill).
    assert (tmp_path / "sigterm-sent").exists()

    assert_same_population(reference, root, config)


def test_best_yaml_and_a_clones_schedule_replay_bit_for_bit(population):
    base, config, root = population
    best_yaml = root / "best.yaml"
    best = yaml.safe_load(best_yaml.read_text())
    assert len(best["pbt"]["schedule"]) == GENERATIONS - 1
    best_id = best_yaml.read_text().split("# trial_id: ")[1].split()[0]
    # A member that was cloned replays too: its model began as its parent.
    gen0 = read_json(root / "generations" / "gen-0.json")
    clone = next(m["member"] for m in gen0["members"] if m["parent"] != m["member"])
    clone_config = pbt_replay_config({**best, "sweep": "pbt-clone"}, root, clone, config["pbt"])
    assert (
        clone_config["parameters"]["lr"]["value"]
        == build_sweep(config).trials[gen0["ranking"][0]]["lr"]
    )
    for replay, original in ((best, best_id), (clone_config, clone)):
        run_workflow(base / f"replay-{replay['sweep']}", replay, env=ENV)
        (replayed,) = build_sweep(replay).trials
        replay_dir = Path(replay["results_dir"]) / replay["sweep"] / "trials" / replayed
        result = f"result-{GENERATIONS}.json"
        mine = read_json(replay_dir / result)["history"]
        theirs = read_json(root / "trials" / original / result)["history"]
        # Bit for bit from the first epoch the original trained itself on.
        assert mine[-1] == theirs[-1]
        assert mine[-len(theirs) :] == theirs
        assert_same_model(replay_dir, root / "trials" / original)


def test_packed_generations_equal_the_unpacked_population(population, tmp_path):
    """pack: 2 trains each generation's members two to a job (docs/packing.md): the same
    decisions, histories, lineages and weights as one job per member and generation."""
    _, config, reference = population
    config = {**config, "results_dir": str(tmp_path / "results"), "pack": 2}
    run_workflow(tmp_path / "run", config, env=ENV)
    root = tmp_path / "results" / "pbt"
    packs = sorted(p.name for p in (root / "packs").glob("bracket*.json"))
    assert [p.split("-pack")[0] for p in packs] == [
        f"bracket0-rung{g}" for g in range(GENERATIONS) for _ in range(2)
    ], packs
    assert_same_population(reference, root, config)
    assert (root / "plots" / "population.svg").stat().st_size > 0
