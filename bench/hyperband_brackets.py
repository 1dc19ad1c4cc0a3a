#!/usr/bin/env python
"""Hyperband on the local SLURM cluster: brackets side by side against one after another.

The same Hyperband sweep (demo task ``scripts/train.py``, 17 configurations in 3 brackets:
eta 3, budgets 1/3/9 epochs) runs through ``--profile profiles/slurm`` once with this tree's
Snakefile (brackets in parallel) and once with the Snakefile of commit 33a8c65 (bracket b+1
started only after bracket b's last promotion), checked out into a temporary git worktree that
is removed afterwards. Each run uses its own tree's ``src`` and ``scripts/train.py``.

It prints each run's wall time, checks that both made the same decisions (rung decision files
equal, the same trial ids promoted, leaderboard statuses and every result record's metric
history bit for bit), and where the time between a rung's last trial end and the next rung's
first start goes: the controller noticing the end and writing the decision (a local rule),
then submission and Slurm's start of the promoted trials' jobs.

    .venv/bin/python bench/hyperband_brackets.py [--init-seconds S] [--only parallel|sequential]

``--init-seconds`` is passed as ``--slurm-init-seconds-before-status-checks`` (default: the
profile's value). Run it under ``flock /work/notes/slurm-bench.lock`` on a shared cluster.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SEQUENTIAL_COMMIT = "33a8c65"  # the last commit before "Run Hyperband's brackets side by side"


def sweep(tree: Path, results: Path) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(
        sweep="hb",
        epochs=9,
        results_dir=str(results),
        script=str(tree / "scripts" / "train.py"),
        pruning={"method": "hyperband", "eta": 3, "min_t": 1},
    )
    config["resources"] = {"runtime": 15, "mem_mb": 1000, "cpus": 1, "gpus": 0}
    config["checkpoint"]["deadline_margin_s"] = 30  # 33a8c65 knows no "auto"
    return config


def run(tree: Path, work: Path, init_seconds: int | None) -> float:
    """Run the sweep with ``tree``'s Snakefile and package; return the controller's wall time."""
    work.mkdir(parents=True)
    (work / "sweep.yaml").write_text(yaml.safe_dump(sweep(tree, work / "results")))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(tree / "Snakefile"),
        "--directory",
        str(work),
        "--configfile",
        str(work / "sweep.yaml"),
        f"--profile={REPO / 'profiles' / 'slurm'}",
        "--workflow-profile",  # 33a8c65 has no profiles/default: leave it out of both runs
        "none",
        "--slurm-status-command",
        "squeue",
        "--slurm-no-account",
    ]
    if init_seconds is not None:
        cmd += ["--slurm-init-seconds-before-status-checks", str(init_seconds)]
    env = {
        **os.environ,
        "PYTHONPATH": str(tree / "src"),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    (work / "controller.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"snakemake failed ({proc.returncode}); see {work / 'controller.log'}")
    return wall


def events(root: Path) -> dict[str, list[dict]]:
    out = {}
    for trial in sorted((root / "trials").iterdir()):
        lines = (trial / "segments.jsonl").read_text().splitlines()
        out[trial.name] = [json.loads(x) for x in lines if x.strip()]
    return out


def segment_times(evs: list[dict], budget: int) -> tuple[float, float]:
    """(first start, last end) of the trial's segments at ``budget``."""
    segs = {e["segment"] for e in evs if e["event"] == "start" and e.get("budget") == budget}
    starts = [e["time"] for e in evs if e["event"] == "start" and e["segment"] in segs]
    ends = [e["time"] for e in evs if e["event"] == "end" and e["segment"] in segs]
    return min(starts), max(ends)


def decisions(root: Path) -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((root / "rungs").glob("*-rung*.json"))
    }


def gaps(root: Path) -> list[dict]:
    """Per rung decision: last end of the rung -> decision written -> next rung's first start."""
    evs = events(root)
    rows = []
    for name, d in decisions(root).items():
        last_end = max(segment_times(evs[t], d["budget"])[1] for t in d["scores"])
        written = (root / "rungs" / name).stat().st_mtime
        nexts = [
            e["time"]
            for t in d["promoted"]
            for e in evs[t]
            if e["event"] == "start" and e.get("budget", 0) > d["budget"]
        ]
        rows.append(
            {
                "rung": name.removesuffix(".json"),
                "decide": written - last_end,
                "start": min(nexts) - written if nexts else None,
            }
        )
    return rows


def leaderboard(root: Path) -> dict[str, tuple[str, str]]:
    with open(root / "leaderboard.csv", newline="") as f:
        return {r["trial_id"]: (r["status"], r["epochs_done"]) for r in csv.DictReader(f)}


def histories(root: Path) -> dict[str, list]:
    out = {}
    for record in sorted((root / "trials").glob("*/result-*.json")):
        data = json.loads(record.read_text())
        out[f"{record.parent.name}/{record.name}"] = [data["final"], data["history"]]
    return out


def report(label: str, wall: float, root: Path) -> None:
    evs = events(root)
    first = min(e["time"] for v in evs.values() for e in v if e["event"] == "start")
    last = max(e["time"] for v in evs.values() for e in v if e["event"] == "end")
    busy = sum(
        end["time"] - start["time"]
        for v in evs.values()
        for start in v
        if start["event"] == "start"
        for end in v
        if end["event"] == "end" and end["segment"] == start["segment"]
    )
    board = (root / "leaderboard.csv").stat().st_mtime - last
    rows = gaps(root)
    decide = [r["decide"] for r in rows]
    start = [r["start"] for r in rows if r["start"] is not None]
    print(
        f"{label}: wall {wall:.1f} s; {sum(len(v) for v in evs.values()) // 2} segment events "
        f"pairs, sum of segments {busy:.1f} s, first start to last end {last - first:.1f} s; "
        f"last end to leaderboard {board:.1f} s"
    )
    print(
        f"  rung's last end -> decision written: median {statistics.median(decide):.1f} s, "
        f"max {max(decide):.1f} s; decision -> next rung's first start: median "
        f"{statistics.median(start):.1f} s, max {max(start):.1f} s"
    )
    for r in rows:
        shown = f"{r['start']:.1f}" if r["start"] is not None else "-"
        print(f"    {r['rung']:<18} decide {r['decide']:6.1f} s   start {shown:>6} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--init-seconds", type=int, default=None)
    parser.add_argument("--only", choices=["parallel", "sequential"], default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="snakesweep-hb-"))
    old = work / "sequential-tree"
    trees = {"parallel": REPO, "sequential": old}
    if args.only:
        trees = {args.only: trees[args.only]}
    walls = {}
    try:
        if "sequential" in trees:
            subprocess.run(
                [
                    "git",
                    "-C",
                    str(REPO),
                    "worktree",
                    "add",
                    "--detach",
                    str(old),
                    SEQUENTIAL_COMMIT,
                ],
                check=True,
                capture_output=True,
            )
        for label, tree in trees.items():
            walls[label] = run(tree, work / label, args.init_seconds)
    finally:
        if old.exists():
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)])
    init = args.init_seconds if args.init_seconds is not None else "profile's"
    print(f"status checks: init {init} s; work folder {work}")
    roots = {label: work / label / "results" / "hb" for label in walls}
    for label, wall in walls.items():
        report(label, wall, roots[label])
    if len(walls) == 2:
        a, b = roots["parallel"], roots["sequential"]
        same_rungs = decisions(a) == decisions(b)
        same_board = leaderboard(a) == leaderboard(b)
        same_hist = histories(a) == histories(b)
        print(
            f"same rung decisions (ids promoted, scores): {same_rungs}; same leaderboard "
            f"statuses/epochs: {same_board}; same result records (final, history) bit for bit: "
            f"{same_hist} ({len(histories(a))} records)"
        )
        print(f"parallel / sequential wall: {walls['parallel'] / walls['sequential']:.2f}")


if __name__ == "__main__":
    main()
