"""Start the ranks of a multi-process trial, and turn their endings into one exit code.

Why not ``torchrun``: measured in docs/ddp.md, torchrun turns a worker's exit 75
(continue) into its own exit 1 (a failure), exits 1 on SIGTERM, and dies of SIGUSR1
leaving its workers running unsignalled. Here every rank is a child of the launcher:
stop signals reach each rank, every rank's exit code is collected, and when one rank
ends the others get ``grace_s`` seconds to end too (a coordinated stop ends all ranks
within milliseconds) before they are killed: a rank stuck in a collective because
its peer died never holds the trial until the job's time limit.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from snakesweep.cluster import slurm_job
from snakesweep.cluster.layout import thread_env
from snakesweep.store import contract

#: Stop signals the launcher passes on to the training process(es).
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
#: Seconds the other ranks get to end once one rank has ended, before they are killed.
DEFAULT_GRACE_S = 10.0
#: How often the spawner looks at its ranks: also how close two endings may be and
#: still be told apart in order.
POLL_S = 0.005


@dataclass(frozen=True)
class RankEnd:
    """How one rank ended: exit code (or -signal), and whether the spawner killed it."""

    rank: int
    code: int
    killed: bool = False


def combine(ends: Sequence[RankEnd]) -> RankEnd:
    """The rank whose ending is the trial's, given the ranks' endings in the order they ended.

    The first rank to end by itself decides: 75 after a coordinated stop, 0 done, 76
    pruned, its error when it crashed, -9 when it was killed from outside (the launcher's
    rules for signals then apply). The others' endings are consequences: a rank whose peer
    vanished raises from its collective or is killed by the spawner after the grace period.
    """
    own = [e for e in ends if not e.killed]
    return own[0] if own else ends[0]


def free_port() -> int:
    """A TCP port nothing listens on now, for the ranks' rendezvous (MASTER_PORT)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(
    env: Mapping[str, str], rank: int, world: int, port: int, threads: int | None = None
) -> dict[str, str]:
    """The environment of one local rank: torch.distributed's ``env://`` variables, and the
    rank's own thread count (``threads``; the job's count is every rank's together)."""
    child = dict(env) if threads is None else thread_env(env, threads)
    child.update(
        {
            contract.ENV_RANK: str(rank),
            contract.ENV_LOCAL_RANK: str(rank),
            contract.ENV_WORLD_SIZE: str(world),
            "LOCAL_WORLD_SIZE": str(world),
            "GROUP_RANK": "0",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    return child


def grace_seconds(env: Mapping[str, str]) -> float:
    value = env.get(contract.ENV_RANK_GRACE_SECONDS)
    return float(value) if value else DEFAULT_GRACE_S


def run_ranks(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: IO[str],
    signals: list[int],
    world: int,
    threads: int | None = None,
) -> tuple[RankEnd, list[RankEnd]]:
    """Run ``world`` ranks of ``argv`` on this machine, each with ``threads`` threads; the
    deciding ending and all of them.

    Stop signals received meanwhile are passed on to every rank and appended to ``signals``.
    """
    port = free_port()
    procs = [
        subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=rank_env(env, rank, world, port, threads),
            stdin=subprocess.DEVNULL,
        )
        for rank in range(world)
    ]
    return _supervise(procs, env, log, signals)


def run_srun(
    argv: Sequence[str],
    env: Mapping[str, str],
    log: IO[str],
    signals: list[int],
    world: int,
    per_node: int,
    cpus: int,
) -> tuple[RankEnd, list[RankEnd]]:
    """Several nodes in a SLURM allocation: one ``srun`` task per rank, rank = SLURM_PROCID,
    each with ``cpus`` cores and as many threads.

    ``--kill-on-bad-exit`` ends the other tasks when one fails; srun reports one exit code
    (the highest of its tasks), which stands for every rank.
    """
    child = thread_env(env, cpus)
    child.update(
        {
            "MASTER_ADDR": slurm_job.first_node(env) or socket.gethostname(),
            "MASTER_PORT": str(free_port()),
            contract.ENV_RANKS_FROM_SLURM: "1",
        }
    )
    command = [
        "srun",
        f"--ntasks={world}",
        f"--ntasks-per-node={per_node}",  # over the allocation's nodes
        f"--cpus-per-task={cpus}",
        "--kill-on-bad-exit=1",
        *argv,
    ]
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=child, stdin=subprocess.DEVNULL
    )
    return _supervise([proc], env, log, signals)


def _supervise(
    procs: list[subprocess.Popen], env: Mapping[str, str], log: IO[str], signals: list[int]
) -> tuple[RankEnd, list[RankEnd]]:
    def forward(signum: int, frame: Any) -> None:
        signals.append(signum)
        for proc in procs:
            if proc.returncode is None:
                try:
                    proc.send_signal(signum)
                except ProcessLookupError:
                    pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    ends: list[RankEnd] = []
    kill_at: float | None = None
    grace = grace_seconds(env)
    try:
        while len(ends) < len(procs):
            for rank, proc in enumerate(procs):
                if proc.returncode is None and proc.poll() is not None:
                    ends.append(RankEnd(rank, proc.returncode))
            if ends and kill_at is None:
                kill_at = time.monotonic() + grace
            if kill_at is not None and time.monotonic() >= kill_at:
                for rank, proc in enumerate(procs):
                    if proc.returncode is None:
                        proc.kill()
                        proc.wait()
                        ends.append(RankEnd(rank, proc.returncode, killed=True))
                        _note(
                            log,
                            f"rank {rank} killed: still running {grace:g}s after "
                            f"rank {ends[0].rank} ended (code {ends[0].code})",
                        )
            if len(ends) < len(procs):
                time.sleep(POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    decided = combine(ends)
    if len(procs) > 1 and len({e.code for e in ends}) > 1:
        _note(log, "ranks ended with " + ", ".join(f"rank {e.rank}: {e.code}" for e in ends))
    return decided, ends


def _note(log: IO[str], message: str) -> None:
    log.write(f"=== {message}\n")
    log.flush()
