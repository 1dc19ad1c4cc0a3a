"""snakesweep.session.ranks: who a rank is, which part of a checkpoint is its own (pure), and
how a rank leaves its process group at exit (2 real gloo processes)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from snakesweep.job.spawn import free_port, rank_env
from snakesweep.session.ranks import RankInfo, Ranks, own_state


def test_a_plain_script_is_rank_0_of_1():
    info = RankInfo.from_env({})
    assert (info.rank, info.local_rank, info.world_size, info.is_main) == (0, 0, 1, True)


def test_torch_distributed_variables():
    info = RankInfo.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (info.rank, info.local_rank, info.world_size, info.is_main) == (3, 1, 4, False)


def test_srun_tasks_read_their_rank_from_slurm_when_the_launcher_says_so():
    env = {"SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}
    assert RankInfo.from_env(env) == RankInfo()  # a plain SLURM job: one process
    info = RankInfo.from_env({**env, "SNAKESWEEP_RANKS_FROM_SLURM": "1"})
    assert (info.rank, info.local_rank, info.world_size) == (5, 1, 8)


def test_a_rank_outside_its_world_is_an_error():
    with pytest.raises(RuntimeError, match="outside a world of 2"):
        RankInfo.from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_each_rank_takes_its_own_entry_of_a_checkpoint():
    checkpoint = {"rng": "r0", "ranks": [{"rng": "r0"}, {"rng": "r1"}]}
    assert own_state(checkpoint, RankInfo(1, 1, 2)) == {"rng": "r1"}
    assert own_state(checkpoint, RankInfo(0, 0, 2)) == {"rng": "r0"}
    one = {"rng": "only", "sums": {}}
    assert own_state(one, RankInfo()) is one


@pytest.mark.parametrize(
    ("checkpoint", "info"),
    [
        ({"rng": "r0", "ranks": [{}, {}]}, RankInfo()),  # 2 ranks wrote it, 1 resumes
        ({"rng": "only"}, RankInfo(0, 0, 2)),  # 1 process wrote it, 2 ranks resume
        ({"rng": "r0", "ranks": [{}, {}]}, RankInfo(0, 0, 4)),
    ],
)
def test_a_checkpoint_resumes_only_with_the_world_size_that_wrote_it(checkpoint, info):
    with pytest.raises(RuntimeError, match="resume it with the process layout"):
        own_state(checkpoint, info)


def test_one_process_collectives_are_identities():
    ranks = Ranks()
    ranks.start()
    assert ranks.any(True, False) == (True, False)
    assert ranks.gather({"a": 1}) == [{"a": 1}]
    assert ranks.broadcast("x") == "x"
    ranks.barrier()


#: A rank that joins the group through Ranks, then ends as argv[1] says; the probe, registered
#: before the session's handler, runs after it (atexit is last in, first out).
LEAVING_RANK = """
import atexit, os, sys
import torch.distributed as dist
atexit.register(lambda: print("group at exit:", dist.is_initialized(), flush=True))
from snakesweep.session.ranks import RankInfo, Ranks
ranks = Ranks(RankInfo.from_env(), backend="gloo")
ranks.start()
ranks.start()  # a second session in the same process registers no second handler
ranks.barrier()
if sys.argv[1] == "raise":
    raise RuntimeError("this rank failed")
sys.exit(int(sys.argv[1]))
"""


@pytest.mark.parametrize(
    ("ending", "code", "left"),
    [("75", 75, True), ("0", 0, True), ("raise", 1, False)],
)
def test_a_rank_leaves_its_group_before_the_interpreter_ends_unless_it_crashed(
    tmp_path: Path, ending: str, code: int, left: bool
) -> None:
    """Without an explicit destroy, gloo's threads may outlive the interpreter and abort a rank
    that saved and exited 75 (exit -6, seen once in CI). After an uncaught exception the group
    is left alone, since a peer may still be in a collective with this rank."""
    script = tmp_path / "rank.py"
    script.write_text(LEAVING_RANK)
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), ending],
            env=rank_env(os.environ, rank, 2, port, threads=1),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == code, out
        assert out.count("group at exit:") == 1, out
        assert f"group at exit: {not left}" in out, out
        assert "terminate called" not in out, out
