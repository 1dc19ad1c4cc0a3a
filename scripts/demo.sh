#!/usr/bin/env bash
# Quick start, part 1: set up .venv and run the demo sweep end to end on this machine.
# Extra arguments go to snakemake, e.g. `bash scripts/demo.sh --config n_trials=16`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-env.sh
exec .venv/bin/snakemake "$@" # local settings come from the workflow profile, profiles/default
