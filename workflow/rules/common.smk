# Shared state and input functions: the sweep plan is computed once, at parse time.

import os

from snakemake.exceptions import WorkflowError

from snakesweep.space import ConfigError
from snakesweep.sweep import build_sweep

try:
    SWEEP = build_sweep(config)
except ConfigError as error:
    raise WorkflowError(f"invalid sweep config: {error}") from None

ROOT = str(SWEEP.root)


wildcard_constraints:
    trial_id="[0-9a-f]{12}",
    budget="[0-9]+",


def trial_params(wildcards):
    """The full parameter set of a trial (fixed values and epochs included)."""
    return SWEEP.trials[wildcards.trial_id]


def trial_dir(wildcards):
    return str(SWEEP.trial_dir(wildcards.trial_id))


def final_results(wildcards):
    """Result records of every trial at the full budget."""
    return [f"{ROOT}/trials/{tid}/result-{SWEEP.epochs}.json" for tid in SWEEP.trials]


def training_resources():
    """Per-job resources from config; GPUs only when asked for, so CPU clusters see no GPU request."""
    res = config["resources"]
    resources = {
        "runtime": res["runtime"],
        "mem_mb": res["mem_mb"],
        "cpus_per_task": res["cpus"],
    }
    if res["gpus"] > 0:
        resources["gpu"] = res["gpus"]
    return resources


def print_summary():
    """Print the top of the leaderboard at the end of a run."""
    from snakesweep.leaderboard import summary

    if os.path.exists(f"{ROOT}/leaderboard.csv"):
        print(summary(final_results(None), ROOT, SWEEP.metric, SWEEP.mode), flush=True)
