#!/usr/bin/env python
"""Small trials, side by side: snakesweep's local sweep against Optuna in one process.

The workload is bench/pruning.py's: the 27 configurations the demo sweep samples (demo
task, 9 epochs, no pruning). Optuna trains them one after another in one Python process on
one thread (``enqueue_trial`` with each configuration; the objective calls the demo script's
``main``, so both train exactly the same way). snakesweep runs the same sweep with
``snakemake --cores 2`` (2 trials at a time, one thread each), fresh processes and warm
starts, unpacked and packed (``pack: 27, pack_parallel: 2``). Printed per run:

- wall: the whole process (Python start, imports, DAG, leaderboard and plots included);
- x Optuna: that wall over Optuna's;
- training: the sum of every trial's ``train.main`` time, measured inside each trial's
  process (snakesweep runs the demo script through ``bench/timed_train.py``), so that a
  loaded machine slows training and overhead alike without mixing them up;
- start: per trial, from the launcher's segment start (``segments.jsonl``, just before the
  script's process starts) to the script's imports done;
- overhead: per trial, the launcher's segment minus the trial's training: process start,
  imports, exit;
- job overhead: per trial, (wall x 2 slots - training) / trials: everything that is not
  training, Snakemake's jobs and the final reports included (Optuna: wall - training).

Targets (issue 24): the warm local sweep at most 2x Optuna's wall; the launch overhead at
most 0.5 s per trial.

    .venv/bin/python bench/small_trials.py [n_trials] [epochs] [runs...]
    runs: fresh warm pack-fresh pack-warm (default: all four)
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
SLOTS = 2
RUNS = {
    "fresh": {"warm_start": False},
    "warm": {"warm_start": True},
    "pack-fresh": {"warm_start": False, "pack": 27, "pack_parallel": SLOTS},
    "pack-warm": {"warm_start": True, "pack": 27, "pack_parallel": SLOTS},
}

OPTUNA = r"""
import json, sys, time
import optuna
sys.path.insert(0, sys.argv[1])
import train  # the demo script: torch, scikit-learn, snakesweep.session
configs, where, space = json.loads(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(direction="maximize")
for params in configs:
    study.enqueue_trial({k: v for k, v in params.items() if space.get(k, {}).get("kind", "fixed") != "fixed"})
seconds = []

def suggest(trial, name, spec, value):
    # the sweep's search space as Optuna's distributions; enqueue_trial fixes the values
    kind = spec["kind"]
    if kind in ("loguniform", "uniform"):
        return trial.suggest_float(name, spec["low"], spec["high"], log=kind == "loguniform")
    if kind == "int":
        return trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
    if kind == "choice":
        return trial.suggest_categorical(name, spec["values"])
    return value  # fixed, and epochs

def objective(trial):
    config = configs[trial.number]
    p = {k: suggest(trial, k, space.get(k, {"kind": "fixed"}), v) for k, v in config.items()}
    argv = [f"--{k}={v}" for k, v in p.items()] + [f"--trial-dir={where}/{trial.number}"]
    start = time.perf_counter()
    train.main(argv)
    seconds.append(time.perf_counter() - start)
    rows = open(f"{where}/{trial.number}/metrics.jsonl").read().splitlines()
    return json.loads(rows[-1])["val_accuracy"]

study.optimize(objective, n_trials=len(configs))
print(json.dumps({"seconds": seconds, "best": study.best_value}))
"""


def sweep_config(n_trials: int, epochs: int, tmp: Path, name: str) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(
        sweep=name,
        n_trials=n_trials,
        epochs=epochs,
        results_dir=str(tmp / "results"),
        script=str(REPO / "bench" / "timed_train.py"),
    )
    return config


def configurations(n_trials: int, epochs: int, tmp: Path) -> list[dict]:
    """The sweep's trials in sweep order (what Optuna is given)."""
    sys.path.insert(0, str(REPO / "src"))
    from snakesweep.search.sweep import build_sweep

    sweep = build_sweep(sweep_config(n_trials, epochs, tmp, "plan"))
    return [dict(params) for params in sweep.trials.values()]


def run_optuna(configs: list[dict], tmp: Path) -> dict:
    space = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["parameters"]
    where = tmp / "optuna"
    where.mkdir()
    start = time.perf_counter()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            OPTUNA,
            str(REPO / "scripts"),
            json.dumps(configs),
            str(where),
            json.dumps(space),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
    if out.returncode:
        raise SystemExit(f"the Optuna run failed:\n{out.stderr[-3000:]}")
    wall = time.perf_counter() - start
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall": wall, "seconds": result["seconds"], "best": result["best"]}


def run_sweep(name: str, n_trials: int, epochs: int, tmp: Path) -> dict:
    config = {**sweep_config(n_trials, epochs, tmp, name), **RUNS[name]}
    workdir = tmp / name
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
            str(SLOTS),
            "--quiet",
            "all",
        ],
        cwd=workdir,
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    wall = time.perf_counter() - start
    root = tmp / "results" / name
    training, start, overhead, best = 0.0, [], [], None
    for trial in (root / "trials").iterdir():
        events = [json.loads(x) for x in (trial / "segments.jsonl").read_text().splitlines()]
        began = next(e["time"] for e in events if e["event"] == "start")
        ended = next(e["time"] for e in events if e["event"] == "end")
        times = json.loads((trial / "bench-times.json").read_text())
        trained = times["ended"] - times["imported"]
        training += trained
        start.append(times["imported"] - began)
        overhead.append(ended - began - trained)
        record = json.loads(next(trial.glob("result-*.json")).read_text())
        best = record["final"] if best is None else max(best, record["final"] or 0.0)
    return {
        "wall": wall,
        "training": training,
        "start": sum(start) / len(start),
        "overhead": sum(overhead) / len(overhead),
        "best": best,
    }


def main() -> None:
    args = sys.argv[1:]
    n_trials = int(args.pop(0)) if args and args[0].isdigit() else 27
    epochs = int(args.pop(0)) if args and args[0].isdigit() else 9
    names = args or list(RUNS)
    print(
        f"demo task, {n_trials} configurations, {epochs} epochs, no pruning; {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        configs = configurations(n_trials, epochs, tmp)
        optuna = run_optuna(configs, tmp)
        total = sum(optuna["seconds"])
        print(
            f"{'run':<24} {'wall (s)':>9} {'x Optuna':>9} {'training (s)':>13} "
            f"{'start (s)':>10} {'overhead (s)':>13} {'job overhead (s)':>17} {'best':>7}"
        )
        print(
            f"{'Optuna, one process':<24} {optuna['wall']:>9.1f} {1.0:>9.2f} {total:>13.1f} "
            f"{'-':>10} {'-':>13} {(optuna['wall'] - total) / n_trials:>17.2f} "
            f"{optuna['best']:>7.4f}",
            flush=True,
        )
        for run in names:
            r = run_sweep(run, n_trials, epochs, tmp)
            job_s = (r["wall"] * SLOTS - r["training"]) / n_trials
            print(
                f"{'snakesweep ' + run:<24} {r['wall']:>9.1f} {r['wall'] / optuna['wall']:>9.2f} "
                f"{r['training']:>13.1f} {r['start']:>10.2f} {r['overhead']:>13.2f} "
                f"{job_s:>17.2f} {r['best']:>7.4f}",
                flush=True,
            )
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
