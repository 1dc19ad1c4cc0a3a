#!/usr/bin/env bash
# Create (or update) .venv with snakesweep, PyTorch, Snakemake and the test tools.
# Idempotent: a second run installs nothing unless pyproject.toml changed.
#
#   SNAKESWEEP_PYTHON  interpreter to build the venv from (default: python3.11, else python3 >= 3.11)
#   SNAKESWEEP_TORCH   pip requirement for PyTorch (default: torch==2.13.0). For a CPU-only
#                      build elsewhere, preinstall torch from https://download.pytorch.org/whl/cpu.
set -euo pipefail
cd "$(dirname "$0")/.."

# `snakemake --profile slurm` run in this folder finds ./slurm (a link to profiles/slurm) before
# a profile of that name in the user's or the site's Snakemake config folder, which stays as it is
# and is still used elsewhere. Say so when such a profile exists (docs/slurm.md: choosing a profile).
note_own_slurm_profiles() {
    local dir
    for dir in "${XDG_CONFIG_HOME:-$HOME/.config}/snakemake/slurm" "${XDG_CONFIG_DIRS:-/etc/xdg}"; do
        dir=${dir%%:*}
        [[ $dir == */snakemake/slurm ]] || dir=$dir/snakemake/slurm
        if [[ -e $dir ]]; then
            echo "setup-env: note: in this folder \`--profile slurm\` means profiles/slurm, not your $dir" \
                "(left untouched); add yours on top with \`--profile slurm --profile $dir\`"
        fi
    done
}

python=${SNAKESWEEP_PYTHON:-}
if [[ -z $python ]]; then
    for candidate in python3.11 python3 python; do
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            python=$candidate
            break
        fi
    done
fi
if [[ -z $python ]]; then
    echo "setup-env: need Python >= 3.11 (set SNAKESWEEP_PYTHON to its path)" >&2
    exit 1
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "setup-env: creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
stamp=.venv/.snakesweep-installed
if [[ -f $stamp && $stamp -nt pyproject.toml ]]; then
    note_own_slurm_profiles
    exit 0
fi
echo "setup-env: installing PyTorch, Snakemake and snakesweep into .venv (a few minutes the first time)"
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
    "${pip[@]}" "${SNAKESWEEP_TORCH:-torch==2.13.0}"
fi
"${pip[@]}" -e ".[train,workflow,dev,tracking,dashboard]"
touch "$stamp"
echo "setup-env: ready ($(.venv/bin/python -c 'import torch, snakemake; print("torch", torch.__version__, "/ snakemake", snakemake.__version__)'))"
note_own_slurm_profiles
