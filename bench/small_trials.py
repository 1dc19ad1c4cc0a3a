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
- launch overhead: per trial, the launcher's segment (``segments.jsonl``: from before the
  script's process starts to after it ended) minus the same configuration's training time in
  the Optuna process;
- job overhead: per trial, (wall x 2 slots - total training) / trials: everything that is not
  training, the Snakemake jobs and the final reports included.

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
t0 = time.perf_counter()
import optuna
sys.path.insert(0, sys.argv[1])
import train  # the demo script: torch, scikit-learn, snakesweep.session
configs, where = json.loads(sys.argv[2]), sys.argv[3]
optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(direction="maximize")
for params in configs:
    study.enqueue_trial(params)
seconds = []

def objective(trial):
    p = {k: trial.suggest_categorical(k, [v]) for k, v in configs[trial.number].items()}
    argv = [f"--{k}={v}" for k, v in p.items()] + [f"--trial-dir={where}/{trial.number}"]
    start = time.perf_counter()
    train.main(argv)
    seconds.append(time.perf_counter() - start)
    rows = open(f"{where}/{trial.number}/metrics.jsonl").read().splitlines()
    return json.loads(rows[-1])["val_accuracy"]

study.optimize(objective, n_trials=len(configs))
print(json.dumps({"seconds": seconds, "best": study.best_value, "imports_s": None}))
"""


def sweep_config(n_trials: int, epochs: int, tmp: Path, name: str) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config.update(
        sweep=name,
        n_trials=n_trials,
        epochs=epochs,
        results_dir=str(tmp / "results"),
        script=str(REPO / "scripts" / "train.py"),
    )
    return config


def configurations(n_trials: int, epochs: int, tmp: Path) -> list[dict]:
    """The sweep's trials in sweep order (what Optuna is given)."""
    sys.path.insert(0, str(REPO / "src"))
    from snakesweep.search.sweep import build_sweep

    sweep = build_sweep(sweep_config(n_trials, epochs, tmp, "plan"))
    return [dict(params) for params in sweep.trials.values()]


def run_optuna(configs: list[dict], tmp: Path) -> dict:
    where = tmp / "optuna"
    where.mkdir()
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", OPTUNA, str(REPO / "scripts"), json.dumps(configs), str(where)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )
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
    segments, best = {}, None
    for trial in (root / "trials").iterdir():
        events = [json.loads(x) for x in (trial / "segments.jsonl").read_text().splitlines()]
        start_t = next(e["time"] for e in events if e["event"] == "start")
        end_t = next(e["time"] for e in events if e["event"] == "end")
        params = json.loads((trial / "params.json").read_text())
        segments[json.dumps(params.get("params", params), sort_keys=True)] = end_t - start_t
        record = json.loads(next(trial.glob("result-*.json")).read_text())
        best = record["final"] if best is None else max(best, record["final"] or 0.0)
    return {"wall": wall, "segments": segments, "best": best}


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
        training = dict(
            zip((json.dumps(c, sort_keys=True) for c in configs), optuna["seconds"], strict=True)
        )
        total = sum(optuna["seconds"])
        print(
            f"training per trial in Optuna's process: mean {total / n_trials:.2f} s "
            f"(sum {total:.1f} s)"
        )
        header = f"{'run':<24} {'wall (s)':>9} {'x Optuna':>9} {'launch overhead (s)':>20} {'job overhead (s)':>17} {'best':>7}"
        print(header)
        print(
            f"{'Optuna, one process':<24} {optuna['wall']:>9.1f} {1.0:>9.2f} {'-':>20} "
            f"{(optuna['wall'] - total) / n_trials:>17.2f} {optuna['best']:>7.4f}",
            flush=True,
        )
        for run in names:
            r = run_sweep(run, n_trials, epochs, tmp)
            launch = [seg - training[key] for key, seg in r["segments"].items() if key in training]
            launch_s = sum(launch) / len(launch) if launch else float("nan")
            job_s = (r["wall"] * SLOTS - total) / n_trials
            print(
                f"{'snakesweep ' + run:<24} {r['wall']:>9.1f} {r['wall'] / optuna['wall']:>9.2f} "
                f"{launch_s:>20.2f} {job_s:>17.2f} {r['best']:>7.4f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
