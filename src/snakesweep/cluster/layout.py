"""A trial's process layout (ranks per node, nodes, GPUs) and what it asks of Snakemake and SLURM.

Pure functions of the ``resources`` config section, so that the mapping to the SLURM
executor plugin's resources is tested without a cluster. One node: the job is one SLURM
task holding every rank's CPUs and GPUs, and the launcher starts the ranks itself
(:mod:`snakesweep.job.spawn`), the same code path as a local run. Several nodes: one SLURM
task per rank (``tasks``, ``nodes``, ``mpi: srun`` so that the plugin does not wrap the
job in ``srun -n1``), and the launcher starts the ranks with ``srun``. See docs/ddp.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Thread counts Snakemake sets to a job's ``threads`` (snakemake/shell.py, also for
#: scripts). A job that runs several processes (a pack's trials, a trial's ranks) must give
#: each process its own share back: float results depend on the thread count, and ranks that
#: each start the job's whole count oversubscribe the cores.
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def thread_env(env: Mapping[str, str], threads: int) -> dict[str, str]:
    """``env`` with every thread-count variable set to ``threads`` (at least 1)."""
    child = dict(env)
    for name in THREAD_VARS:
        child[name] = str(max(1, threads))
    return child


def threads_per_process(job_threads: int, processes_per_node: int) -> int:
    """One rank's threads from a job's ``threads`` (every rank's cores on a node)."""
    return max(1, job_threads // max(1, processes_per_node))


@dataclass(frozen=True)
class ProcessLayout:
    """``cpus`` and ``gpus_per_process`` are per rank; ``gpus`` is the one-process job's count."""

    processes_per_node: int = 1
    nodes: int = 1
    cpus: int = 1
    gpus: int = 0
    gpus_per_process: int = 0

    @classmethod
    def from_resources(cls, resources: Mapping[str, Any]) -> ProcessLayout:
        return cls(
            processes_per_node=int(resources.get("processes_per_node", 1)),
            nodes=int(resources.get("nodes", 1)),
            cpus=int(resources.get("cpus", 1)),
            gpus=int(resources.get("gpus", 0)),
            gpus_per_process=int(resources.get("gpus_per_process", 0)),
        )

    @property
    def world_size(self) -> int:
        return self.processes_per_node * self.nodes

    @property
    def gpus_per_node(self) -> int:
        return (
            self.gpus_per_process * self.processes_per_node if self.gpus_per_process else self.gpus
        )

    @property
    def threads(self) -> int:
        """Snakemake ``threads`` of a training job: the cores of every rank on its (first) node."""
        return self.cpus * self.processes_per_node

    def problems(self) -> list[str]:
        """What the schema cannot say about a layout; one line per problem."""
        found = []
        if self.gpus and self.gpus_per_process:
            found.append(
                "resources: set gpus (one-process trials) or gpus_per_process (per rank), "
                f"not both (got gpus={self.gpus}, gpus_per_process={self.gpus_per_process})"
            )
        return found

    def slurm_resources(self, runtime: int, mem_mb: int) -> dict[str, Any]:
        """The training rule's resources for the SLURM executor plugin (and local scheduling).

        ``mem_mb`` is per node (SLURM's ``--mem``); GPUs are the job's total (``--gpus``).
        """
        resources: dict[str, Any] = {"runtime": runtime, "mem_mb": mem_mb}
        gpus_total = self.gpus_per_node * self.nodes
        if self.nodes == 1:
            resources["cpus_per_task"] = self.threads
        else:
            resources.update(
                {
                    "nodes": self.nodes,
                    "tasks": self.world_size,
                    "cpus_per_task": self.cpus,
                    # the plugin then runs the job's command without its own `srun -n1`
                    "mpi": "srun",
                }
            )
            if gpus_total:
                resources["tasks_per_gpu"] = 0  # the plugin's default would share one GPU
        if gpus_total:
            resources["gpu"] = gpus_total
        return resources


def layout_problems(config: Mapping[str, Any]) -> list[str]:
    """The layout's own problems, and a pack of multi-process trials (packs hold one-process
    trials: each member is one launcher process with one trial's share of the job)."""
    layout = ProcessLayout.from_resources(config.get("resources") or {})
    found = layout.problems()
    pack = int(config.get("pack") or 1)
    if pack > 1 and layout.world_size > 1:
        found.append(
            f"pack: {pack} packs one-process trials, but resources.processes_per_node="
            f"{layout.processes_per_node} and resources.nodes={layout.nodes} make each trial "
            f"{layout.world_size} processes: set pack: 1, or one process per trial"
        )
    return found
