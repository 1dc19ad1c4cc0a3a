# Shared state and input functions: the sweep plan is computed once, at parse time.

import os
import sys

from snakesweep.store import contract
from snakesweep.job.warm_start import owner_token
from snakesweep.cluster.layout import ProcessLayout
from snakesweep.store.plan_file import write_plan
from snakesweep.store.jsonl import read_json
from snakesweep.snakemake_glue import sweep_plan
from snakesweep.search.sweep import plan_note

SWEEP = sweep_plan(config)

if workflow.is_main_process and plan_note(SWEEP, config):
    print(plan_note(SWEEP, config), file=sys.stderr)

ROOT = str(SWEEP.root)
LAYOUT = ProcessLayout.from_resources(config["resources"])

# The warm start's servers serve this controller's local jobs and end with it (docs/speed.md).
# In the environment, not in params: a params change would make Snakemake rerun trials.
if workflow.is_main_process:
    os.environ[contract.ENV_WARM_OWNER] = owner_token()


wildcard_constraints:
    trial_id="[0-9a-f]{12}",
    budget="[0-9]+",
    bracket="[0-9]+",
    rung="[0-9]+",


def trial_params(wildcards):
    """The full parameter set of a trial (fixed values and epochs included)."""
    return SWEEP.trials[wildcards.trial_id]


def trial_dir(wildcards):
    return str(SWEEP.trial_dir(wildcards.trial_id))


def record_path(trial_id, budget):
    return f"{ROOT}/{contract.RESULT_PATH.format(trial_id=trial_id, budget=budget)}"


def alive_trials(bracket, rung):
    """Trials of a bracket that train at this rung: all at rung 0, then the promoted ones."""
    if rung == 0:
        return list(SWEEP.brackets[bracket].trial_ids)
    decision = checkpoints.promote_rung.get(bracket=bracket, rung=rung - 1).output[0]
    return read_json(decision)["promoted"]


def rung_records(bracket, rung):
    budget = SWEEP.brackets[bracket].budgets[rung]
    return [record_path(tid, budget) for tid in alive_trials(bracket, rung)]


def promotion_inputs(wildcards):
    return rung_records(int(wildcards.bracket), int(wildcards.rung))


def bracket_records(wildcards):
    """Every result record of one bracket: an undecided rung holds back only its own bracket."""
    bracket = int(wildcards.bracket)
    paths = []
    for rung in range(len(SWEEP.brackets[bracket].budgets)):
        paths += rung_records(bracket, rung)
    return paths


def bracket_summaries(wildcards):
    """One summary per Hyperband bracket, so that every bracket's rungs are planned at once.

    ``final_results`` stops at the first undecided rung; without these, bracket b+1 would
    wait for bracket b's last promotion although the brackets are independent.
    """
    if len(SWEEP.brackets) < 2:
        return []
    return [
        f"{ROOT}/{contract.BRACKET_SUMMARY_PATH.format(bracket=b.index)}"
        for b in SWEEP.brackets
    ]


def final_results(wildcards):
    """Every result record the sweep produces: each trial at each rung it reached."""
    paths = []
    for bracket in SWEEP.brackets:
        for rung in range(len(bracket.budgets)):
            paths += rung_records(bracket.index, rung)
    return list(dict.fromkeys(paths))  # Hyperband brackets may share a trial


def training_resources():
    """Per-job resources from config (snakesweep.cluster.layout): GPUs only when asked for, and a
    multi-node trial as one SLURM task per rank."""
    res = config["resources"]
    return LAYOUT.slurm_resources(res["runtime"], res["mem_mb"])


def asha_settings():
    """Environment for ASHA's self-pruning trials (empty unless pruning.method is asha)."""
    if SWEEP.pruning != "asha":
        return {}
    return {
        contract.ENV_ASHA_DIR: f"{ROOT}/{contract.ASHA_DIR}",
        contract.ENV_ASHA_RUNGS: ",".join(str(b) for b in SWEEP.rung_budgets),
        contract.ENV_ASHA_ETA: str(SWEEP.eta),
        contract.ENV_ASHA_MIN_PEERS: str(config["pruning"]["min_peers"]),
    }


def print_summary():
    """Print the top of the leaderboard at the end of a run; exit 1 if nothing is usable.

    Snakemake itself exits 0 once every job ran, failed trials included (they are recorded,
    not job failures); a sweep in which no trial completed must not look like a success.
    """
    from snakesweep.report.leaderboard import summary, sweep_has_result

    if not os.path.exists(f"{ROOT}/{contract.LEADERBOARD_FILE}"):
        return
    plan = (ROOT, list(SWEEP.trials), SWEEP.metric, SWEEP.mode, SWEEP.epochs)
    print(summary(*plan, SWEEP.rung_budgets), flush=True)
    if not sweep_has_result(*plan, SWEEP.rung_budgets):
        sys.exit(1)
