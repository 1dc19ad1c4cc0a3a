#!/usr/bin/env python
"""What checkpointing costs and what it saves, measured on the example training script.

    .venv/bin/python bench/checkpoint_overhead.py [--quick]

(a) Overhead: the same training (scripts/train.py, one thread) with saving disabled and
    enabled at the defaults (every_seconds=60, epoch ends, keep=2), for the demo model and
    a bigger one (width 1024, depth 4: 3.2 M parameters, 39 MB checkpoints with Adam's
    state). Reported twice: the wall-clock difference of the two runs (noisy on a shared
    machine) and the time spent inside saves as a share of the run (what the difference
    would be without noise). Target: <= 3 %.
(b) Completed steps lost when a segment stops for its deadline (target 0).
(c) Completed steps lost to SIGKILL at a random moment (at most one save interval).
(d) Time from process start to the first training step, fresh and resumed.

(b)-(d) run ``scripts/train.py`` as real processes. A small wrapper counts completed steps
in a shared 8-byte file (written after each step returns, before the session's step-end
code can save or stop) and prints the time of the first step, so that the bench can
compare a process's real progress with the step of the newest checkpoint.
Takes about 1-2 minutes on two cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "scripts" / "train.py"
SAVING_ENV = {  # the config defaults (config/config.yaml: checkpoint)
    "SNAKESWEEP_CHECKPOINT_EVERY_STEPS": "0",
    "SNAKESWEEP_CHECKPOINT_EVERY_SECONDS": "60",
    "SNAKESWEEP_CHECKPOINT_KEEP": "2",
}

# Runs scripts/train.py as __main__, with two probes around TrialSession.batches: the time
# of the first step, and the number of completed steps in an 8-byte file after each step.
WRAPPER = r"""
import mmap, runpy, struct, sys, time
from snakesweep.session import trial_session as S

counter = open(sys.argv[1], "r+b")
shared = mmap.mmap(counter.fileno(), 8)
original = S.TrialSession.batches
first = []

def batches(self, n_items, batch_size):
    for idx in original(self, n_items, batch_size):
        if not first:
            first.append(time.time())
            print(f"BENCH first-step {first[0]:.6f}", flush=True)
        yield idx
        shared[:8] = struct.pack("<q", self.global_step + 1)  # this step is complete

S.TrialSession.batches = batches
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def load_train_module():
    spec = importlib.util.spec_from_file_location("snakesweep_example_train", TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- (a) overhead ------------------------------------------------------------------------------
def overhead(
    train, args: list[str], epochs: int, repeats: int, steady_epochs: int
) -> dict[str, float]:
    """Saving off vs on for the same training (interleaved runs; best of ``repeats``), the
    time spent inside saves, and the same in steady state (a resumed segment, which knows
    from its checkpoint how long a save takes and saves at epoch ends accordingly)."""
    from snakesweep.session import trial_session as S

    inside: list[float] = []
    original = S.TrialSession.save

    def timed_save(self):
        started = time.perf_counter()
        try:
            return original(self)
        finally:
            if self.checkpoint_dir is not None:
                inside.append(time.perf_counter() - started)

    def timed_main(argv: list[str]) -> tuple[float, list[float]]:
        inside.clear()
        started = time.perf_counter()
        train.main(argv)
        return time.perf_counter() - started, list(inside)

    S.TrialSession.save = timed_save
    os.environ.update(SAVING_ENV)
    off, on = [], []
    try:
        train.main([*args, "--epochs=1"])  # warm-up: lazy imports, allocator
        for _ in range(repeats):
            off.append(timed_main([*args, f"--epochs={epochs}"]))
            with tempfile.TemporaryDirectory() as tmp:
                on.append(timed_main([*args, f"--epochs={epochs}", f"--trial-dir={tmp}"]))
        with tempfile.TemporaryDirectory() as tmp:
            argv = [*args, f"--epochs={steady_epochs + 1}", f"--trial-dir={tmp}"]
            os.environ["SNAKESWEEP_STOP_AT_EPOCH"] = "1"  # a first segment of one epoch
            train.main(argv)
            del os.environ["SNAKESWEEP_STOP_AT_EPOCH"]
            steady = timed_main(argv)  # the next `steady_epochs` epochs, resumed
    finally:
        S.TrialSession.save = original
    (t_off, _), (t_on, saves) = min(off), min(on)  # the least disturbed run of each kind
    return {
        "off_s": t_off,
        "on_s": t_on,
        "ab_pct": 100 * (t_on - t_off) / t_off,
        "saves": len(saves),
        "inside_pct": 100 * sum(saves) / t_on,
        "per_save_ms": 1000 * statistics.mean(saves) if saves else float("nan"),
        "steady_s": steady[0],
        # The recurring saves (epoch ends, periodic); the last save of a segment is its
        # fixed cost, reported apart.
        "steady_saves": len(steady[1]) - 1,
        "steady_pct": 100 * sum(steady[1][:-1]) / (steady[0] - steady[1][-1]),
        "final_ms": 1000 * steady[1][-1],
    }


# -- (b)-(d) real processes ----------------------------------------------------------------------
class Run:
    def __init__(self, trial: Path, args: list[str], env: dict[str, str], log: Path) -> None:
        self.counter = log.with_suffix(".steps")
        self.counter.write_bytes(b"\0" * 8)
        self.log = log
        self.started = time.time()
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WRAPPER,
                    str(self.counter),
                    str(TRAIN),
                    *args,
                    f"--trial-dir={trial}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def completed(self) -> int:
        return struct.unpack("<q", self.counter.read_bytes())[0]

    def first_step_s(self) -> float | None:
        for line in self.log.read_text().splitlines():
            if line.startswith("BENCH first-step "):
                return float(line.split()[-1]) - self.started
        return None

    def wait_first_step(self, timeout: float = 120) -> None:
        limit = time.monotonic() + timeout
        while self.first_step_s() is None:
            if self.proc.poll() is not None or time.monotonic() > limit:
                raise RuntimeError(f"no first step:\n{self.log.read_text()}")
            time.sleep(0.01)


def newest_step(trial: Path) -> int:
    from snakesweep.session.checkpoint import load_latest

    found = load_latest(trial / "checkpoints")
    return found[0]["global_step"] if found else 0


def processes(args: list[str], quick: bool) -> dict[str, list[float]]:
    rng = random.Random(0)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKESWEEP_", "SLURM_"))}
    out: dict[str, list[float]] = {
        "deadline_lost": [],
        "deadline_early_s": [],
        "kill_lost": [],
        "kill_lost_s": [],
        "interval_steps": [],
        "fresh_s": [],
        "resumed_s": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp) / "trial"
        logs = Path(tmp)
        plan = ["deadline", "kill", "deadline", "kill"][: 2 if quick else 4]
        for i, what in enumerate(plan):
            env = {**base, **SAVING_ENV, "PYTHONUNBUFFERED": "1"}
            if what == "kill":  # a short interval, so that a kill has something to lose
                env["SNAKESWEEP_CHECKPOINT_EVERY_SECONDS"] = "1"
            else:
                deadline = time.time() + (out["fresh_s"] or [8.0])[0] + 3.0
                env["SNAKESWEEP_DEADLINE"] = f"{deadline:.3f}"
                env["SNAKESWEEP_DEADLINE_MARGIN"] = "1.0"
            run = Run(trial, args, env, logs / f"run-{i}.log")
            run.wait_first_step()
            out["resumed_s" if i else "fresh_s"].append(run.first_step_s())
            if what == "kill":
                first = time.monotonic()
                time.sleep(rng.uniform(1.5, 3.0))
                run.proc.send_signal(signal.SIGKILL)
                run.proc.wait()
                done, saved = run.completed(), newest_step(trial)
                steps_s = (time.monotonic() - first) / max(1, done - run_start_step(run))
                out["kill_lost"].append(done - saved)
                out["kill_lost_s"].append((done - saved) * steps_s)
                out["interval_steps"].append(1.0 / steps_s)
            else:
                code = run.proc.wait()
                if code != 75:
                    raise RuntimeError(f"expected exit 75, got {code}:\n{run.log.read_text()}")
                out["deadline_lost"].append(run.completed() - newest_step(trial))
                out["deadline_early_s"].append(deadline - time.time())
    return out


def run_start_step(run: Run) -> int:
    for line in run.log.read_text().splitlines():
        if "resumed from" in line:
            return int(line.split("step ")[1].split()[0])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and epochs")
    opts = parser.parse_args()
    train = load_train_module()
    import torch

    torch.set_num_threads(1)
    demo = ["--width=64", "--depth=2", "--batch_size=64", "--dropout=0.1"]
    big = ["--width=1024", "--depth=4", "--batch_size=64", "--dropout=0.1"]
    started = time.time()
    rows = []
    for name, args, epochs, repeats, steady in (
        ("demo (width 64, depth 2)", demo, 8, 5, 30 if opts.quick else 100),
        (
            "big (width 1024, depth 4)",
            big,
            4 if opts.quick else 8,
            1 if opts.quick else 2,
            8 if opts.quick else 24,
        ),
    ):
        rows.append((name, epochs, steady, overhead(train, args, epochs, repeats, steady)))
    big_run = processes([*big, "--epochs=20"], opts.quick)

    print(
        f"\n(a) checkpoint overhead ({os.cpu_count()} CPUs, one training thread; "
        "every_seconds=60, epoch ends, keep=2)"
    )
    print(
        "  fresh run, saving off vs on: wall time, saves, time inside saves (the A/B difference"
        " is mostly noise here)\n  steady state: a resumed segment; recurring saves only, its"
        " last save apart"
    )
    print(
        f"{'model':<26} {'epochs':>6} {'off s':>6} {'on s':>6} {'A/B %':>6} {'saves':>5} "
        f"{'ms/save':>7} {'in saves %':>10} | {'epochs':>6} {'s':>6} {'saves':>5} "
        f"{'in saves %':>10} {'last ms':>7}"
    )
    for name, epochs, steady, r in rows:
        print(
            f"{name:<26} {epochs:>6} {r['off_s']:>6.2f} {r['on_s']:>6.2f} {r['ab_pct']:>6.1f} "
            f"{r['saves']:>5} {r['per_save_ms']:>7.1f} {r['inside_pct']:>10.2f} | "
            f"{steady:>6} {r['steady_s']:>6.2f} {r['steady_saves']:>5} {r['steady_pct']:>10.2f} "
            f"{r['final_ms']:>7.1f}"
        )
    b = big_run
    print("\nreal processes, big model (batch 64)")
    print(f"{'measure':<46} {'values':<30}")
    print(
        f"{'(b) completed steps lost at a deadline stop':<46} "
        f"{', '.join(str(x) for x in b['deadline_lost']):<30}"
    )
    print(
        f"{'    exit before the deadline (s, margin 1.0)':<46} "
        f"{', '.join(f'{x:.2f}' for x in b['deadline_early_s']):<30}"
    )
    print(
        f"{'(c) steps lost to SIGKILL (every_seconds=1)':<46} "
        f"{', '.join(str(x) for x in b['kill_lost']):<30}"
    )
    print(
        f"{'    = seconds of training lost':<46} "
        f"{', '.join(f'{x:.2f}' for x in b['kill_lost_s']):<30}"
    )
    print(
        f"{'    steps in one 1 s interval':<46} "
        f"{', '.join(f'{x:.0f}' for x in b['interval_steps']):<30}"
    )
    print(
        f"{'(d) process start -> first step, fresh (s)':<46} "
        f"{', '.join(f'{x:.2f}' for x in b['fresh_s']):<30}"
    )
    print(
        f"{'    process start -> first step, resumed (s)':<46} "
        f"{', '.join(f'{x:.2f}' for x in b['resumed_s']):<30}"
    )
    print(f"\ntotal bench time {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
