#!/usr/bin/env python
"""Full training vs successive halving vs ASHA on the demo task, same sampled configurations.

Prints, per method: trials, total epochs trained, wall time, and the best final
metric found. Targets (issue #5): pruned runs use at most 35% of full training's
epochs and find a best metric within 1 percentage point of the full search's.

    .venv/bin/python bench/pruning.py [n_trials] [epochs] [eta]   (default 27 9 3)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(method: str, n_trials: int, epochs: int, eta: int, tmp: Path) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(
        sweep=method,
        n_trials=n_trials,
        epochs=epochs,
        results_dir=str(tmp / "results"),
        script=str(REPO / "scripts" / "train.py"),
        pruning={"method": method, "eta": eta, "min_t": 1, "min_peers": 3},
    )
    workdir = tmp / method
    workdir.mkdir()
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(config))
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--snakefile",
            str(REPO / "Snakefile"),
            "--configfile",
            "sweep.yaml",
            "--cores",
            str(os.cpu_count() or 2),
            "--quiet",
            "all",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    wall = time.perf_counter() - start
    root = tmp / "results" / method
    epochs_trained = 0
    for trial in (root / "trials").iterdir():
        epochs_trained += len((trial / "metrics.jsonl").read_text().splitlines())
    finals = []
    for path in (root / "trials").glob("*/result-*.json"):
        record = json.loads(path.read_text())
        if (
            record["status"] == "completed"
            and record["budget"] == epochs
            and record["final"] is not None
        ):
            finals.append(record["final"])
    return {
        "trials": len(list((root / "trials").iterdir())),
        "epochs": epochs_trained,
        "wall": wall,
        "best": max(finals),
    }


def main() -> None:
    n_trials, epochs, eta = (int(a) for a in (sys.argv[1:] + ["27", "9", "3"][len(sys.argv) - 1 :]))
    print(f"demo task, {n_trials} sampled configurations, {epochs} epochs, eta={eta}")
    print(
        f"{'method':<8} {'trials':>6} {'epochs':>7} {'share':>6} {'wall (s)':>9} {'best val_accuracy':>18} {'gap (pp)':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = {m: run(m, n_trials, epochs, eta, Path(tmp)) for m in ("none", "sha", "asha")}
    full = results["none"]
    for method, r in results.items():
        print(
            f"{method:<8} {r['trials']:>6} {r['epochs']:>7} {r['epochs'] / full['epochs']:>6.0%} "
            f"{r['wall']:>9.1f} {r['best']:>18.4f} {100 * (full['best'] - r['best']):>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
