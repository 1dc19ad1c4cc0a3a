#!/usr/bin/env python
"""How much wall time a trial longer than its SLURM time limit spends between its segments.

One trial of ``scripts/train.py`` (batch size 8, ~3 s per epoch on an idle core; ``--epochs``
sets the training time, 60 by default: ~3 min) runs through ``--profile profiles/slurm`` with
``resources.runtime: 1`` (a 1-minute limit) on the running cluster. It prints each segment
(SLURM job id, length, how it ended), the gaps between one segment's end and the next one's
start, the controller's wall time, the sum of the segments and their ratio. Target: at most
1.2x. ``--no-requeue`` continues through new jobs (Snakemake's retries) as before
snakesweep requeued its own jobs (``SNAKESWEEP_SLURM_REQUEUE=0``).

    .venv/bin/python bench/slurm_continuations.py [--epochs 60] [--margin auto|SECONDS] [--no-requeue]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from snakesweep.session.stop_policy import parse_margin

REPO = Path(__file__).resolve().parents[1]


def sweep(results: Path, epochs: int, margin: float | str) -> dict:
    return {
        "sweep": "cont",
        "results_dir": str(results),
        "script": str(REPO / "scripts" / "train.py"),
        "metric": "val_accuracy",
        "mode": "max",
        "epochs": epochs,
        "strategy": "grid",
        "parameters": {
            "lr": {"kind": "fixed", "value": 0.001},
            "width": {"kind": "fixed", "value": 1024},
            "depth": {"kind": "fixed", "value": 3},
            "batch_size": {"kind": "fixed", "value": 8},
        },
        "resources": {"runtime": 1, "mem_mb": 1000, "cpus": 1, "gpus": 0},
        "checkpoint": {
            "every_steps": 0,
            "every_seconds": 10,
            "keep": 2,
            "deadline_margin_s": margin,
            "max_continuations": 20,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument(
        "--margin", type=parse_margin, default="auto", help="deadline_margin_s: auto or seconds"
    )
    parser.add_argument("--no-requeue", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="snakesweep-cont-"))
    (work / "sweep.yaml").write_text(
        yaml.safe_dump(sweep(work / "results", args.epochs, args.margin))
    )
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "sweep.yaml"),
        f"--profile={REPO / 'profiles' / 'slurm'}",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--slurm-no-account",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if args.no_requeue:
        env["SNAKESWEEP_SLURM_REQUEUE"] = "0"
    start, started_at = time.perf_counter(), time.time()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    ended_at = started_at + wall
    (work / "controller.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}); see {work / 'controller.log'}")
    (trial,) = (work / "results" / "cont" / "trials").iterdir()
    events = [json.loads(x) for x in (trial / "segments.jsonl").read_text().splitlines() if x]
    starts = [e for e in events if e["event"] == "start"]
    ends = {e["segment"]: e for e in events if e["event"] == "end"}
    exits = {e["segment"]: e for e in events if e["event"] == "exit"}
    total, gaps = 0.0, []
    print(f"{'segment':>7} {'job':>6} {'length s':>9} {'gap before s':>13} {'exit s':>7}  outcome")
    for i, s in enumerate(starts):
        end = ends[s["segment"]]
        length = end["time"] - s["time"]
        total += length
        gap = s["time"] - ends[starts[i - 1]["segment"]]["time"] if i else None
        if gap is not None:
            gaps.append(gap)
        shown = f"{gap:.1f}" if gap is not None else "-"
        exit_s = exits.get(s["segment"], {}).get("exit_s")
        exit_shown = f"{exit_s:.2f}" if exit_s is not None else "-"
        print(
            f"{s['segment']:>7} {s['slurm_job_id']:>6} {length:>9.1f} {shown:>13} {exit_shown:>7}"
            f"  {end['outcome']}"
        )
    out = proc.stdout + proc.stderr
    print(
        f"mode: {'new job per continuation' if args.no_requeue else 'requeue'}; "
        f"epochs {args.epochs}, margin {args.margin}; segments {len(starts)} in "
        f"{len({s['slurm_job_id'] for s in starts})} SLURM job id(s)"
    )
    print(
        f"wall {wall:.1f} s, sum of segments {total:.1f} s, ratio {wall / total:.2f}x; "
        f"gaps {min(gaps, default=0):.1f}-{max(gaps, default=0):.1f} s; "
        f"'Error in rule' blocks in the controller output: {out.count('Error in rule')}"
    )
    span = ends[starts[-1]["segment"]]["time"] - starts[0]["time"]
    print(
        f"where the rest goes: controller start to the first segment "
        f"{starts[0]['time'] - started_at:.1f} s; gaps {sum(gaps):.1f} s; last segment's end to "
        f"the controller's exit {ended_at - ends[starts[-1]['segment']]['time']:.1f} s; "
        f"first start to last end / sum of segments {span / total:.2f}x"
    )
    log = next((work / "results" / "cont" / "logs" / "train").glob("*.log")).read_text()
    for line in log.splitlines():
        if "cannot fit another step" in line:
            print(f"  stop: {line.strip()}")
    print(f"work folder: {work}")


if __name__ == "__main__":
    main()
