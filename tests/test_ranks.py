"""The pure parts of snakesweep.session.ranks: who a rank is, and which part of a checkpoint is its own."""

import pytest

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
