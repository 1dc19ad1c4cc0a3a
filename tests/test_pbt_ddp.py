"""Population based training with multi-process (DDP) members under a time limit (issue 22).

A generation is more epochs of a multi-process trial (docs/ddp.md): the members of a
population of 2-rank trials continue over segments cut by a time limit, and the population
equals an uninterrupted one. Apart from tests/test_pbt_workflow.py, whose tests share one
population on one worker: this test trains its own populations.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import demo_config, read_json, run_workflow
from test_pbt_workflow import ENV, GENERATIONS, assert_same_population, final_state

from snakesweep.search.sweep import build_sweep
from snakesweep.store.trial_folder import read_segments

pytestmark = pytest.mark.e2e


def ddp_population_config(results: Path) -> dict:
    """2 members of scripts/train.py, each a 2-rank DDP trial, 2 generations of 1 epoch; batch
    size 2048 makes 1 step per epoch (1437 training images)."""
    config = demo_config(
        sweep="pbt-ddp",
        results_dir=str(results),
        epochs=2,
        n_trials=2,
        seed=1,
        pbt={"interval": 1, "mutate": ["lr"]},
    )
    config["parameters"] = {
        "lr": {"kind": "loguniform", "low": 0.001, "high": 0.1},
        "batch_size": {"kind": "fixed", "value": 2048},
        "width": {"kind": "fixed", "value": 32},
        "depth": {"kind": "fixed", "value": 1},
    }
    config["resources"] = {**config["resources"], "processes_per_node": 2}
    return config


def test_ddp_members_stopped_by_a_time_limit_after_every_step_equal_an_uninterrupted_run(
    tmp_path,
):
    """A generation is more epochs of a multi-process trial: with a time limit that has passed,
    every segment of every 2-rank member saves after one step and exits 75, and Snakemake's
    retries go on until each generation is done. Decisions, histories, lineages and weights
    equal an uninterrupted run's. ~1 min."""
    plain_config = ddp_population_config(tmp_path / "plain")
    run_workflow(tmp_path / "run-plain", plain_config, env=ENV)
    config = ddp_population_config(tmp_path / "limited")
    passed = {**ENV, "SNAKESWEEP_DEADLINE": f"{time.time() - 1:.3f}"}
    run_workflow(tmp_path / "run-limited", config, env=passed)
    reference, root = tmp_path / "plain" / "pbt-ddp", tmp_path / "limited" / "pbt-ddp"

    assert_same_population(reference, root, config)
    assert len(read_json(root / "generations" / "gen-0.json")["members"]) == 2
    for tid in build_sweep(config).trials:
        b = root / "trials" / tid
        record = read_json(b / f"result-{GENERATIONS}.json")
        assert record["status"] == "completed"
        ends = [s for s in read_segments(b) if s["event"] == "end"]
        # The epoch's one step in a segment, then one that ends the epoch, in each generation.
        assert [e["outcome"] for e in ends] == ["continue", "completed"] * 2
        assert len(final_state(b)["ranks"]) == 2, "both ranks' states are in the checkpoint"
