"""Which rank of a multi-process trial this is, and the few collectives the session needs.

:class:`~snakesweep.session.TrialSession` stays one code path for one process and for
many: it asks :class:`Ranks` to agree on flags (one ``all_reduce(MAX)``: a stop asked
for on any rank stops every rank at the same step), to gather each rank's own state
(RNGs, running sums) to rank 0 for the checkpoint, and to broadcast rank 0's
decisions (which checkpoint to resume from, ASHA's verdict). With one process every
call is the identity and nothing of ``torch.distributed`` is touched.

The pure parts (:class:`RankInfo` from the environment, :func:`own_state`) are
tested without processes; the collectives with real gloo ranks (tests/test_ddp.py).
"""

from __future__ import annotations

import atexit
import datetime
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snakesweep.cluster import slurm_job
from snakesweep.store import contract

#: How long a collective may wait for a peer before torch.distributed gives up. The
#: launcher kills ranks that outlive a dead peer much sooner (snakesweep.job.spawn); this
#: bounds a hang for ranks started some other way.
COLLECTIVE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class RankInfo:
    """This process's place among the trial's processes (rank 0 of 1 for a plain script)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RankInfo:
        """From torch.distributed's ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (our spawner,
        torchrun), or from ``SLURM_PROCID``... for the tasks of a multi-node ``srun``."""
        env = os.environ if env is None else env
        if env.get(contract.ENV_RANKS_FROM_SLURM) == "1":
            task = slurm_job.task_rank(env)
            if task is None:
                raise RuntimeError("a multi-node trial's rank must run as an srun task")
            return cls(*task)
        world = int(env.get(contract.ENV_WORLD_SIZE) or 1)
        rank = int(env.get(contract.ENV_RANK) or 0)
        local = int(env.get(contract.ENV_LOCAL_RANK) or rank)
        if not 0 <= rank < world:
            raise RuntimeError(f"rank {rank} is outside a world of {world} processes")
        return cls(rank, local, world)


def own_state(checkpoint: Mapping[str, Any], info: RankInfo) -> Mapping[str, Any]:
    """This rank's own part of a checkpoint (``rng``, ``sums``): its entry of
    ``checkpoint["ranks"]`` when several ranks wrote it, else the checkpoint itself.

    A checkpoint resumes only with the world size that saved it: each rank's generators
    are its own, and a different split of the data would train something else.
    """
    states = checkpoint.get("ranks")
    saved = len(states) if states else 1
    if saved != info.world_size:
        raise RuntimeError(
            f"the checkpoint was saved by {saved} process(es) but this trial runs "
            f"{info.world_size}: resume it with the process layout that started it"
        )
    return states[info.rank] if states else checkpoint


def leave_group_at_exit() -> None:
    """Destroy the process group while the interpreter is still whole, on a clean exit.

    Left to the interpreter's own teardown, gloo's worker threads may still hold work whose
    tensors are freed after Python is gone: the rank then aborts ("terminate called without
    an active exception", exit -6) after it saved and asked to continue, and the launcher
    records -6 where every rank exited 75 (pytorch/pytorch#190489). After an uncaught
    exception the group is left alone: a peer may be stuck in a collective with this rank,
    and destroying would wait on that work until the launcher kills both, hiding the error.
    """
    import torch.distributed as dist

    crashed = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if dist.is_available() and dist.is_initialized() and crashed is None:
        dist.destroy_process_group()


class Ranks:
    """Collectives over the trial's processes; identities when there is only one."""

    def __init__(self, info: RankInfo | None = None, backend: str | None = None) -> None:
        self.info = info or RankInfo()
        self.backend = backend
        self._device: Any = None

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def is_main(self) -> bool:
        return self.info.is_main

    @property
    def distributed(self) -> bool:
        return self.info.world_size > 1

    def start(self) -> None:
        """Join the process group (``env://``), unless the script already did: nccl where
        CUDA is available, gloo otherwise."""
        if not self.distributed:
            return
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = self.backend or ("nccl" if torch.cuda.is_available() else "gloo")
            if backend == "nccl":
                torch.cuda.set_device(self.info.local_rank)
            dist.init_process_group(
                backend,
                rank=self.info.rank,
                world_size=self.info.world_size,
                timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S),
            )
        self.backend = dist.get_backend()
        atexit.unregister(leave_group_at_exit)  # once, however many sessions started
        atexit.register(leave_group_at_exit)
        self._device = (
            torch.device("cuda", torch.cuda.current_device())
            if self.backend == "nccl"
            else torch.device("cpu")
        )

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true if it is true on any rank: one ``all_reduce(MAX)``."""
        if not self.distributed:
            return tuple(bool(f) for f in flags)
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int32, device=self._device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tuple(bool(v) for v in tensor.tolist())

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); ``None`` on the other ranks."""
        if not self.distributed:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.barrier()
