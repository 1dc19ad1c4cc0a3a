#!/usr/bin/env python
"""What snakesweep costs on SLURM next to a raw job array doing the same work.

Both sides run N trials on the running cluster: trivial ones by default
(``tests/fixtures/echo_train.py``, one epoch, well under a second each), or the demo's
(``--script demo --epochs 16``: scripts/train.py, N random configurations):

* raw: one ``sbatch --array=0-(N-1)`` whose task i runs the same script with the
  same arguments and environment as trial i;
* snakesweep: the sweep through ``--profile profiles/slurm`` (one SLURM job per trial,
  then the leaderboard and plots on the submit host);
* snakesweep packed (``--pack K [--pack-parallel P]``): the same sweep with ``pack: K``,
  so one SLURM job per K trials, P of them at a time (docs/packing.md).

It prints the wall times, their ratio, and where the difference goes: Snakemake
startup (DAG, submission), time inside the SLURM jobs (from squeue's start/end
times: the two Snakemake processes each job runs before the script), status
polling after the last job ended, and the local aggregation. Target: at most
1.5x. Extra arguments after ``--`` go to the snakesweep run (e.g. job grouping).

    .venv/bin/python bench/slurm_overhead.py [--trials 32] [--init-seconds 1] [-- SNAKEMAKE ARGS]
    .venv/bin/python bench/slurm_overhead.py --pack 16 --pack-parallel 2 [--skip-unpacked]
    .venv/bin/python bench/slurm_overhead.py --script demo --epochs 16 --trials 16 --pack 8 --pack-parallel 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
ECHO = REPO / "tests" / "fixtures" / "echo_train.py"
DEMO = REPO / "scripts" / "train.py"
sys.path.insert(0, str(REPO / "src"))

from snakesweep.job.launch import format_argument  # noqa: E402
from snakesweep.search.sweep import build_sweep  # noqa: E402


def values(n: int) -> list[str]:
    return [f"v{i:03d}" for i in range(n)]


def sweep_config(work: Path, script: str, n: int, epochs: int, pack: int, parallel: int) -> dict:
    """The benchmark's sweep: N echo values (grid) or N demo configurations (random)."""
    config: dict = {
        "sweep": "bench",
        "results_dir": str(work / "results"),
        "metric": "score",
        "mode": "max",
        "epochs": epochs,
        "resources": {"runtime": 15, "mem_mb": 1000, "cpus": 1, "gpus": 0},
        "pack": pack,
        "pack_parallel": parallel,
    }
    if script == "echo":
        config.update(
            script=str(ECHO),
            strategy="grid",
            parameters={"behaviour": {"kind": "grid", "values": values(n)}},
        )
    else:
        demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
        config.update(
            script=str(DEMO),
            metric=demo["metric"],
            strategy="random",
            n_trials=n,
            parameters=demo["parameters"],
        )
    return config


def squeue_times(name: str) -> list[tuple[float, float]]:
    """(start, end) Unix times of every finished job or array task named ``name``."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-n", name, "-o", "%S|%e|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = []
    for line in out.splitlines():
        start, end, state = line.split("|")
        if state != "COMPLETED":
            continue
        times.append(tuple(datetime.fromisoformat(t).timestamp() for t in (start, end)))
    return times


def wait_gone(job_id: str, poll_s: float = 0.2) -> None:
    """Wait until nothing of job ``job_id`` (all array tasks) is pending or running."""
    while subprocess.run(
        ["squeue", "-h", "-j", job_id, "-t", "pending,running,completing,configuring", "-o", "%i"],
        capture_output=True,
        text=True,
    ).stdout.strip():
        time.sleep(poll_s)


def run_raw(tmp: Path, config: dict) -> dict:
    """One array task per trial, running its script exactly as the launcher would."""
    name = f"raw-{os.getpid()}-{int(time.time())}"
    script = tmp / "array.sh"
    trials = tmp / "raw"
    sweep = build_sweep(config)
    cases = []
    for index, (tid, params) in enumerate(sweep.trials.items()):
        argv = [sys.executable, config["script"]] + [
            f"--{k}={format_argument(v)}" for k, v in sorted(params.items())
        ]
        cases.append(f"  {index}) value={tid}; cmd=({shlex.join(argv)}) ;;")
    case_lines = "\n".join(cases)
    script.write_text(
        f"""#!/bin/bash
case $SLURM_ARRAY_TASK_ID in
{case_lines}
esac
export SNAKESWEEP_TRIAL_DIR={trials}/$value SNAKESWEEP_TRIAL_ID=$value
export SNAKESWEEP_STOP_AT_EPOCH={config["epochs"]}
mkdir -p "$SNAKESWEEP_TRIAL_DIR"
exec "${{cmd[@]}}"
"""
    )
    n = len(sweep.trials)
    start = time.perf_counter()
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{n - 1}",
            "-J",
            name,
            "-c",
            "1",
            "--mem=1000",
            "-t",
            "15",
            "-o",
            str(tmp / "raw-%A_%a.out"),
            str(script),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    wait_gone(out.split(";")[0])
    wall = time.perf_counter() - start
    done = sum(1 for tid in sweep.trials if (trials / tid / "metrics.jsonl").exists())
    if done != n:
        sys.exit(f"raw array: only {done} of {n} tasks wrote metrics (see {tmp})")
    return {"wall": wall, "jobs": squeue_times(name)}


def run_snakesweep(
    tmp: Path, label: str, config: dict, init_seconds: int, extra: list[str]
) -> dict:
    work = tmp / label
    work.mkdir()
    config = {**config, "results_dir": str(work / "results")}
    n, epochs = len(build_sweep(config).trials), config["epochs"]
    (work / "sweep.yaml").write_text(yaml.safe_dump(config))
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
        str(init_seconds),
        "--slurm-no-account",
        *extra,
    ]
    start_unix = time.time()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (tmp / f"{label}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"snakesweep run failed ({proc.returncode}); log: {tmp / f'{label}.log'}")
    results = sorted((work / "results" / "bench" / "trials").glob(f"*/result-{epochs}.json"))
    if len(results) != n:
        sys.exit(f"snakesweep: {len(results)} of {n} results (see {tmp})")
    # All jobs of a run carry the run's uuid as their SLURM job name; find it from a job id.
    job_id = json.loads(results[0].read_text())["slurm_job_ids"][0]
    run_uuid = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%j"], capture_output=True, text=True
    ).stdout.strip()
    last_segment_end = max(
        json.loads(line)["time"]
        for p in results
        for line in (p.parent / "segments.jsonl").read_text().splitlines()
    )
    board = work / "results" / "bench" / "leaderboard.csv"
    return {
        "wall": wall,
        "jobs": squeue_times(run_uuid) if run_uuid else [],
        "start_unix": start_unix,
        "last_segment_end": last_segment_end,
        "leaderboard_at": board.stat().st_mtime,
        "end_unix": start_unix + wall,
    }


def describe(label: str, run: dict, t0: float) -> dict:
    jobs = run["jobs"]
    inside = [end - start for start, end in jobs]
    return {
        "label": label,
        "wall": run["wall"],
        "jobs": len(jobs),
        "mean_job_s": sum(inside) / len(inside) if inside else float("nan"),
        "busy_s": sum(inside),
        "first_start": min(s for s, _ in jobs) - t0 if jobs else float("nan"),
        "last_end": max(e for _, e in jobs) - t0 if jobs else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--script", choices=["echo", "demo"], default="echo")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--pack", type=int, default=1, help="also run the sweep with pack: K")
    parser.add_argument("--pack-parallel", type=int, default=0, help="pack_parallel: P")
    parser.add_argument(
        "--skip-unpacked", action="store_true", help="with --pack: run raw and packed only"
    )
    parser.add_argument("--init-seconds", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("extra", nargs="*", help="more snakemake arguments (after --)")
    args = parser.parse_args()
    env_check = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if env_check.returncode != 0 or not env_check.stdout.strip():
        sys.exit("no Slurm cluster answers sinfo: start one with scripts/slurm-cluster.sh up")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    cpus = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True).stdout
    tmp = Path(tempfile.mkdtemp(prefix="snakesweep-bench-", dir="/tmp"))
    n = args.trials
    plain = sweep_config(tmp, args.script, n, args.epochs, 1, 0)
    packed = {**plain, "pack": args.pack, "pack_parallel": args.pack_parallel}

    t_raw = time.time()
    raw = run_raw(tmp, plain)
    r = describe("raw sbatch --array", raw, t_raw)
    runs = []
    if args.pack == 1 or not args.skip_unpacked:
        t0 = time.time()
        runs.append(
            (
                describe(
                    "snakesweep",
                    ours := run_snakesweep(tmp, "sweep", plain, args.init_seconds, args.extra),
                    t0,
                ),
                ours,
            )
        )
    if args.pack > 1:
        t0 = time.time()
        label = f"packed {args.pack}/{args.pack_parallel or args.pack}"
        runs.append(
            (
                describe(
                    label,
                    ours := run_snakesweep(tmp, "packed", packed, args.init_seconds, args.extra),
                    t0,
                ),
                ours,
            )
        )

    what = "trivial" if args.script == "echo" else f"{args.epochs}-epoch demo"
    print(f"{n} {what} trials on {cpus.strip()} (alloc/idle/other/total CPUs); scratch {tmp}")
    print(
        f"{'':22}{'wall s':>8}{'jobs':>6}{'s/job':>8}{'busy s':>8}{'1st start':>10}{'last end':>9}"
    )
    for row in [r] + [s for s, _ in runs]:
        print(
            f"{row['label']:22}{row['wall']:8.1f}{row['jobs']:6d}{row['mean_job_s']:8.2f}"
            f"{row['busy_s']:8.1f}{row['first_start']:10.1f}{row['last_end']:9.1f}"
        )
    for s, ours in runs:
        ratio = s["wall"] / r["wall"]
        print(f"ratio {s['label']} / raw: {ratio:.2f}x (target <= 1.5x)")
        # Where snakesweep's extra time goes.
        print(f"breakdown of {s['label']} (seconds; job times from squeue, 1 s resolution):")
        print(f"  controller start -> first job started           {s['first_start']:6.1f}")
        print(
            f"  node time per SLURM job                         {s['mean_job_s']:6.2f}"
            f"  (raw task: {r['mean_job_s']:.2f}; total {s['busy_s']:.0f} vs {r['busy_s']:.0f})"
        )
        print(
            f"  first job start -> last job end                 {s['last_end'] - s['first_start']:6.1f}"
        )
        print(
            "  last trial's script ended -> leaderboard written "
            f"{ours['leaderboard_at'] - ours['last_segment_end']:6.1f}"
            "  (the job's end, status polling, the leaderboard rule)"
        )
        print(
            "  leaderboard written -> controller exited         "
            f"{ours['end_unix'] - ours['leaderboard_at']:6.1f}"
            "  (plots rule, then the status thread's last sleep)"
        )
    if not args.keep:
        subprocess.run(["rm", "-rf", str(tmp)])


if __name__ == "__main__":
    main()
