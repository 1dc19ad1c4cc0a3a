"""Process layouts (issue 11): config validation, SLURM resources, and how rank endings combine."""

import os
import sys

import pytest
from conftest import REPO

from snakesweep.cluster.layout import THREAD_VARS, ProcessLayout, threads_per_process
from snakesweep.config_check import check_config
from snakesweep.job.spawn import RankEnd, combine, rank_env, run_ranks
from snakesweep.search.space import ConfigError
from snakesweep.store import contract

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def test_one_process_asks_for_what_it_asked_before():
    layout = ProcessLayout(cpus=2, gpus=1)
    assert layout.world_size == 1 and layout.threads == 2
    assert layout.slurm_resources(15, 2000) == {
        "runtime": 15,
        "mem_mb": 2000,
        "cpus_per_task": 2,
        "gpu": 1,
    }


def test_one_node_is_one_task_holding_every_ranks_cores_and_gpus():
    layout = ProcessLayout(processes_per_node=4, cpus=2, gpus_per_process=1)
    assert layout.world_size == 4 and layout.threads == 8
    assert layout.slurm_resources(60, 8000) == {
        "runtime": 60,
        "mem_mb": 8000,
        "cpus_per_task": 8,
        "gpu": 4,
    }
    assert "gpu" not in ProcessLayout(processes_per_node=2).slurm_resources(1, 1)


def test_several_nodes_are_one_slurm_task_per_rank():
    layout = ProcessLayout(processes_per_node=2, nodes=3, cpus=4, gpus_per_process=1)
    assert layout.world_size == 6
    assert layout.slurm_resources(30, 1000) == {
        "runtime": 30,
        "mem_mb": 1000,
        "nodes": 3,
        "tasks": 6,
        "cpus_per_task": 4,
        "mpi": "srun",
        "tasks_per_gpu": 0,
        "gpu": 6,
    }


def minimal(**resources):
    return {
        "metric": "loss",
        "mode": "min",
        "script": str(REPO / "scripts" / "train.py"),
        "parameters": {"lr": {"kind": "loguniform", "low": 1e-4, "high": 1e-1}},
        "resources": resources,
    }


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"processes_per_node": 0}, "resources.processes_per_node: must be >= 1, got 0"),
        ({"nodes": "two"}, "resources.nodes: 'two' is not of type integer"),
        ({"gpus_per_process": -1}, "resources.gpus_per_process: must be >= 0, got -1"),
        ({"gpus": 1, "gpus_per_process": 1}, "set gpus (one-process trials) or gpus_per_process"),
    ],
)
def test_a_wrong_layout_is_a_config_error(resources, message):
    with pytest.raises(ConfigError) as error:
        check_config(minimal(**resources), SCHEMA)
    assert message in str(error.value)


def test_a_pack_of_multi_process_trials_is_a_config_error():
    config = {**minimal(processes_per_node=2), "pack": 4}
    with pytest.raises(ConfigError) as error:
        check_config(config, SCHEMA)
    assert "pack: 4 packs one-process trials" in str(error.value)
    assert "processes_per_node=2" in str(error.value) and "set pack: 1" in str(error.value)
    check_config({**minimal(processes_per_node=1), "pack": 4}, SCHEMA)


def test_a_right_layout_passes():
    check_config(minimal(processes_per_node=2, nodes=2, gpus_per_process=1), SCHEMA)


def test_each_rank_gets_torch_distributed_env_variables():
    env = rank_env({"PATH": "/bin"}, 1, 2, 29500)
    assert env["RANK"] == "1" and env["LOCAL_RANK"] == "1" and env["WORLD_SIZE"] == "2"
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["MASTER_PORT"] == "29500"
    assert env["PATH"] == "/bin"


def test_each_rank_gets_its_own_share_of_the_job_threads():
    # Snakemake sets OMP_NUM_THREADS & co. to the job's threads: every rank's cores together.
    job_env = {name: "4" for name in THREAD_VARS}
    assert threads_per_process(4, 2) == 2 and threads_per_process(3, 2) == 1
    assert threads_per_process(1, 4) == 1
    env = rank_env(job_env, 0, 2, 29500, threads=2)
    assert {env[name] for name in THREAD_VARS} == {"2"}
    assert rank_env(job_env, 0, 2, 29500)["OMP_NUM_THREADS"] == "4"  # left as it was


def test_spawned_ranks_run_with_their_own_thread_count(tmp_path):
    """Real processes: two ranks of a job with 4 threads each start with 2, not 4 (which
    would put 8 threads on the job's 4 cores)."""
    script = tmp_path / "show.py"
    script.write_text(
        "import os, pathlib\n"
        "pathlib.Path(os.environ['OUT'], os.environ['RANK']).write_text("
        "os.environ['OMP_NUM_THREADS'] + ' ' + os.environ['MKL_NUM_THREADS'])\n"
    )
    env = {**os.environ, "OUT": str(tmp_path), **{name: "4" for name in THREAD_VARS}}
    with open(tmp_path / "log", "w") as log:
        decided, ends = run_ranks([sys.executable, str(script)], env, log, [], 2, threads=2)
    assert decided.code == 0 and len(ends) == 2
    assert [(tmp_path / str(rank)).read_text() for rank in (0, 1)] == ["2 2", "2 2"]


C, P = contract.EXIT_CONTINUE, contract.EXIT_PRUNED


@pytest.mark.parametrize(
    ("ends", "decided"),
    [
        ([RankEnd(0, C), RankEnd(1, C)], RankEnd(0, C)),  # a coordinated stop
        ([RankEnd(1, 0), RankEnd(0, 0)], RankEnd(1, 0)),
        ([RankEnd(0, P), RankEnd(1, P)], RankEnd(0, P)),
        # rank 1 crashed; rank 0 hung in a collective and was killed after the grace period
        ([RankEnd(1, 1), RankEnd(0, -9, killed=True)], RankEnd(1, 1)),
        # rank 0 saw its peer vanish and raised a little later: the crash that came first counts
        ([RankEnd(1, 3), RankEnd(0, 1)], RankEnd(1, 3)),
        # rank 1 raised after the coordinated stop's save: the first ending counts
        ([RankEnd(0, C), RankEnd(1, 1)], RankEnd(0, C)),
        # one rank SIGKILLed from outside (OOM killer), its peer failed in a collective:
        # the launcher's rules for a killed process apply
        ([RankEnd(1, -9), RankEnd(0, 1)], RankEnd(1, -9)),
        ([RankEnd(1, -9), RankEnd(0, -9, killed=True)], RankEnd(1, -9)),
    ],
)
def test_the_ranks_endings_combine_into_one(ends, decided):
    assert combine(ends) == decided
