#!/usr/bin/env python
"""What a multi-process trial costs the session, per step and per save, against one process.

    .venv/bin/python bench/ddp_overhead.py [--quick]

Runs the session's own code in 1 process and in 2 gloo ranks on this machine (CPU, one
thread each), started like the launcher starts them (snakesweep.job.spawn.rank_env):

(a) Per step: ``TrialSession.batches`` with no training in the loop, so that what is
    timed is the session's step boundary alone: in 2 ranks one ``all_reduce(MAX)`` of the
    stop flag (the coordinated stop), in 1 process a plain check.
(b) The collective alone: ``Ranks.any`` (one all_reduce of one int32).
(d) A training step of an MLP (64-256-256-10, batch 32, Adam; DDP with 2 ranks, each
    half the batch) in a plain loop and inside ``session.batches``: the difference is
    what the session adds to a real step (the stop flag's ``all_reduce`` among it).
(c) Per save: ``TrialSession.save`` of the demo model (width 32) and a bigger one (width
    1024, depth 4, Adam state: 39 MB): one process writes; in 2 ranks every rank's RNG
    state and running sums are gathered to rank 0, rank 0 writes, then a barrier.

Figures are medians over repetitions, printed per case; docs/ddp.md has a run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def worker(out: Path, steps: int, saves: int) -> None:
    """One rank (or the one process): time step boundaries, collectives and saves."""
    import torch

    from snakesweep.session import TrialSession
    from snakesweep.session.ranks import RankInfo, Ranks

    torch.set_num_threads(1)
    ranks = Ranks(RankInfo.from_env())
    ranks.start()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # (a) the session's step boundary, nothing else in the loop
        session = TrialSession(tmp, handle_signals=False, verbose=False, ranks=ranks)
        ranks.barrier()
        started = time.perf_counter()
        for _ in session.batches(steps, 1):
            pass
        results["step_us"] = (time.perf_counter() - started) / steps * 1e6
        # (b) one all_reduce of the stop flag
        ranks.barrier()
        started = time.perf_counter()
        for _ in range(steps):
            ranks.any(False)
        results["any_us"] = (time.perf_counter() - started) / steps * 1e6
        # (d) a real training step (DDP with 2 ranks), in a plain loop and in session.batches
        results.update(training_steps(ranks, Path(tmp) / "train", min(steps, 600)))
        # (c) saves of two model sizes
        for name, width, depth in (("demo", 32, 2), ("big", 1024, 4)):
            layers: list[torch.nn.Module] = []
            size = 64
            for _ in range(depth):
                layers += [torch.nn.Linear(size, width), torch.nn.ReLU()]
                size = width
            model = torch.nn.Sequential(*layers, torch.nn.Linear(size, 10))
            optimizer = torch.optim.Adam(model.parameters())
            model(torch.zeros(2, 64)).sum().backward()
            optimizer.step()  # Adam's state exists
            session = TrialSession(
                Path(tmp) / name, handle_signals=False, verbose=False, ranks=ranks, keep=2
            )
            session.register(model=model, optimizer=optimizer)
            times = []
            for _ in range(saves):
                ranks.barrier()
                started = time.perf_counter()
                session.save()
                times.append(time.perf_counter() - started)
            results[f"save_{name}_ms"] = statistics.median(times) * 1e3
    if ranks.is_main:
        out.write_text(json.dumps(results))


def training_steps(ranks, trial_dir: Path, steps: int) -> dict[str, float]:
    """Per-step time of a small MLP's training step, without and with the session."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from snakesweep.session import TrialSession

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    net = DistributedDataParallel(model) if ranks.distributed else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = 32
    x, y = torch.randn(steps * batch, 64), torch.randint(0, 10, (steps * batch,))

    def train(idx: torch.Tensor) -> None:
        idx = idx[ranks.rank :: ranks.world_size]
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    order = torch.randperm(steps * batch)
    plain, session_s = [], []
    for round_ in range(3):
        ranks.barrier()
        started = time.perf_counter()
        for i in range(steps):
            train(order[i * batch : (i + 1) * batch])
        plain.append((time.perf_counter() - started) / steps)
        session = TrialSession(
            trial_dir / str(round_), handle_signals=False, verbose=False, ranks=ranks
        )
        ranks.barrier()
        started = time.perf_counter()
        for idx in session.batches(steps * batch, batch):
            train(idx)
        session_s.append((time.perf_counter() - started) / steps)
    return {"train_plain_us": min(plain) * 1e6, "train_session_us": min(session_s) * 1e6}


def run(world: int, steps: int, saves: int) -> dict[str, float]:
    from snakesweep.job.spawn import free_port, rank_env

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [sys.executable, __file__, "--worker", str(out), str(steps), str(saves)]
        if world == 1:
            env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
            procs = [subprocess.Popen(argv, env=env)]
        else:
            port = free_port()
            procs = [
                subprocess.Popen(argv, env=rank_env(os.environ, rank, world, port))
                for rank in range(world)
            ]
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f"a worker failed: {codes}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    steps, saves, reps = (500, 5, 1) if args.quick else (3000, 15, 3)
    rows: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for _ in range(reps):
        for world in (1, 2):
            rows[world].append(run(world, steps, saves))
    keys = (
        "step_us",
        "any_us",
        "train_plain_us",
        "train_session_us",
        "save_demo_ms",
        "save_big_ms",
    )
    print(f"{steps} steps, {saves} saves per case, median of {reps} run(s), OMP_NUM_THREADS=1")
    print(f"{'':>28}{'1 process':>12}{'2 ranks':>12}{'difference':>12}")
    labels = {
        "step_us": "step boundary (us)",
        "any_us": "all_reduce(MAX) (us)",
        "train_plain_us": "train step, plain (us)",
        "train_session_us": "train step, session (us)",
        "save_demo_ms": "save, demo model (ms)",
        "save_big_ms": "save, 39 MB model (ms)",
    }
    for key in keys:
        one = statistics.median(r[key] for r in rows[1])
        two = statistics.median(r[key] for r in rows[2])
        print(f"{labels[key]:>28}{one:>12.2f}{two:>12.2f}{two - one:>+12.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
