#!/usr/bin/env bash
# Quick start, part 2: set up .venv and run the whole test suite.
#
# Tests that need a real Slurm run when a cluster answers `sinfo`. With
# SNAKESWEEP_START_SLURM=1 this script first starts a single-node cluster
# (scripts/slurm-cluster.sh: root and apt-get needed); with
# SNAKESWEEP_REQUIRE_SLURM=1 (CI) a missing cluster fails the run instead of
# skipping those tests. Extra arguments go to pytest.
#
# The tests run on SNAKESWEEP_TEST_WORKERS pytest-xdist workers (default 4: most tests wait on
# subprocesses, Snakemake and the cluster more than they compute; 0 runs them in
# this process). Slurm tests run in two groups, each on one worker, one test after another
# (tests/conftest.py: pytest_xdist_make_scheduler).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
if [[ ${SNAKESWEEP_START_SLURM:-0} == 1 ]]; then
    bash scripts/slurm-cluster.sh up
fi
workers=${SNAKESWEEP_TEST_WORKERS:-4}
parallel=()
if [[ $workers != 0 ]]; then
    parallel=(-n "$workers")
fi
exec .venv/bin/python -m pytest "${parallel[@]}" "$@"
