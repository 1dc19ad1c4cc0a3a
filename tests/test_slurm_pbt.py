"""Population based training on the real local Slurm, through profiles/slurm (issue 22).

The population of tests/test_pbt_workflow.py (4 members of tests/fixtures/pbt_train.py, 2
generations of 1 epoch, one member crashing in generation 0) runs with ``--profile slurm``
while the same config runs locally beside it. A member sends itself SIGTERM in the middle of
its second epoch, as a preempted job's trial receives it: it saves, its job requeues itself
and resumes. Generations, clones, histories, lineages and final weights must equal the local
run's, byte for byte. Marked ``slurm``: skipped without a cluster. ~1.5-2 min.
"""

from __future__ import annotations

import pytest
from conftest import read_json, read_leaderboard, run_workflow
from test_pbt_workflow import GENERATIONS, assert_same_population, pbt_config
from test_slurm import (
    ENV,
    SAME_EVERYWHERE,
    SLURM_ARGS,
    log_sections,
    run_in_background,
    segments,
)

from snakesweep.search.sweep import build_sweep

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]


def test_a_population_on_slurm_with_a_preempted_member_equals_the_local_run(tmp_path):
    config = pbt_config(tmp_path / "slurm" / "results")
    local_config = pbt_config(tmp_path / "local" / "results")
    local = run_in_background(lambda: run_workflow(tmp_path / "local", local_config, env=ENV))
    hook = {"PBT_TEST_SIGTERM_ONCE": str(tmp_path / "sigterm-sent")}
    run_workflow(tmp_path / "slurm", config, *SLURM_ARGS, env={**ENV, **hook})
    local()
    assert (tmp_path / "sigterm-sent").exists()

    root, reference = tmp_path / "slurm/results/pbt", tmp_path / "local/results/pbt"
    assert_same_population(reference, root, config)
    gen0 = read_json(root / "generations" / "gen-0.json")
    assert any(m["parent"] != m["member"] for m in gen0["members"]), "a clone was made"
    assert [{k: r[k] for k in SAME_EVERYWHERE} for r in read_leaderboard(root)] == [
        {k: r[k] for k in SAME_EVERYWHERE} for r in read_leaderboard(reference)
    ]
    interrupted = []
    for tid in build_sweep(config).trials:
        segs = segments(root, tid)
        assert all(s["slurm_job_id"] for s in segs), "every segment ran in a SLURM job"
        if any(s["end"] and s["end"]["outcome"] == "continue" for s in segs):
            interrupted.append((tid, segs))
    # The member that received SIGTERM saved and went on in the same, requeued job.
    ((tid, segs),) = interrupted
    stop = next(i for i, s in enumerate(segs) if s["end"]["outcome"] == "continue")
    assert segs[stop + 1]["slurm_job_id"] == segs[stop]["slurm_job_id"]
    record = read_json(root / "trials" / tid / f"result-{GENERATIONS}.json")
    assert record["status"] == "completed" and record["restarts"] == 1
    sections = log_sections(root / "logs" / "train" / f"{tid}-{GENERATIONS}ep.log")
    assert any("received SIGTERM" in s for s in sections)
    assert any("requeued" in s for s in sections)
