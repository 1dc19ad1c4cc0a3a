#!/usr/bin/env python
"""How long `snakemake -n` takes to plan a sweep of N trials, next to a toy Snakefile.

The toy has the same shape (N independent jobs, one aggregate) and nothing else,
so the ratio is what snakesweep's own parse-time work (sampling, ids, schema
checks, input functions) adds. Target: at most 2x the toy.

    .venv/bin/python bench/dryrun_scaling.py [N ...]     (default: 1000 10000)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TOY = """
N = int(config["size"])


rule all:
    input:
        "agg.txt",


rule agg:
    input:
        expand("out/{i}.txt", i=range(N)),
    output:
        "agg.txt",
    shell:
        "cat {input} > {output}"


rule job:
    output:
        "out/{i}.txt",
    shell:
        "echo {wildcards.i} > {output}"
"""


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed


def best_of(runs: int, cmd: list[str], cwd: Path) -> float:
    return min(timed(cmd, cwd) for _ in range(runs))


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000]
    smk = [sys.executable, "-m", "snakemake", "-n", "--quiet", "all"]
    print(f"{'trials':>8}  {'snakesweep -n (s)':>18}  {'toy -n (s)':>11}  {'ratio':>6}")
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
            config.update(n_trials=n, results_dir=str(tmp / "results"))
            config["script"] = str(REPO / "scripts" / "train.py")
            (tmp / "sweep.yaml").write_text(yaml.safe_dump(config))
            (tmp / "toy").mkdir()
            (tmp / "toy" / "Snakefile").write_text(TOY)
            runs = 3 if n <= 2000 else 2
            ours = best_of(
                runs,
                [
                    *smk,
                    "--snakefile",
                    str(REPO / "Snakefile"),
                    "--configfile",
                    str(tmp / "sweep.yaml"),
                ],
                tmp,
            )
            toy = best_of(runs, [*smk, "--config", f"size={n}"], tmp / "toy")
        print(f"{n:>8}  {ours:>18.2f}  {toy:>11.2f}  {ours / toy:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
