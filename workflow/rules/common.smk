# Shared state and input functions: the sweep plan is computed once, at parse time.

import os
import sys

from snakemake.exceptions import IncompleteCheckpointException
from snakemake.io import checkpoint_target

from snakesweep.store import contract
from snakesweep.job.warm_start import owner_token
from snakesweep.cluster.layout import ProcessLayout
from snakesweep.store.plan_file import write_plan
from snakesweep.store.retry_request import read_requests, wanted_request
from snakesweep.store.jsonl import read_json
from snakesweep.store.round_file import (
    ROUND_PATH,
    ROUND_SUMMARY_PATH,
    read_round,
    read_rounds,
)
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
    round="[0-9]+",


# trial id -> (round, params), for the rounds read from their checkpoints
ROUND_TRIALS = {}


def round_file(k):
    return f"{ROOT}/{ROUND_PATH.format(round=k)}"


def checkpoint_json(checkpoint, read=read_json, **wildcards):
    """What a checkpoint job wrote, read in an input function. Snakemake says "incomplete"
    until the job has run; a file that is gone again (Snakemake removes a checkpoint's output
    before it runs the job again, and its list of created outputs can lag behind) is
    incomplete too. A file that is there but unreadable stops the run with its name."""
    path = checkpoint.get(**wildcards).output[0]
    if not os.path.exists(path):
        raise IncompleteCheckpointException(checkpoint.rule, checkpoint_target(path))
    data = read(path)
    if data is None:
        raise ValueError(
            f"{path}: not the decision its rule '{checkpoint.rule.name}' writes (edited or "
            "damaged?); delete it and run again, and Snakemake remakes it from the records"
        )
    return data


def bracket_trial_ids(bracket):
    """The trials of a bracket. With a model-based strategy a bracket is a round: known at
    parse time (round 0, written rounds) or read from its checkpoint's round file."""
    if SWEEP.rounds is None or bracket in SWEEP.rounds.known:
        return list(SWEEP.brackets[bracket].trial_ids)
    data = checkpoint_json(checkpoints.suggest_round, read_round, round=bracket)
    for entry in data["trials"]:
        ROUND_TRIALS[entry["trial_id"]] = (bracket, entry["params"])
    return [entry["trial_id"] for entry in data["trials"]]


def planned_trial_ids(wildcards=None, input=None):
    """Every trial of the sweep, in plan order. With rounds: those of the round files of the
    planned rounds, read when asked (by the aggregating rules, whose inputs wait for every
    round, and at the end of a run)."""
    if SWEEP.rounds is None:
        return list(SWEEP.trials)
    on_disk = read_rounds(ROOT)
    ids = []
    for k in range(len(SWEEP.rounds.sizes)):
        data = SWEEP.rounds.known.get(k) or on_disk.get(k) or {"trials": []}
        ids += [entry["trial_id"] for entry in data["trials"]]
    return ids


def plan_params(trial_id):
    """The full parameter set of a trial (fixed values and epochs included)."""
    if trial_id in SWEEP.trials:
        return SWEEP.trials[trial_id]
    if trial_id not in ROUND_TRIALS:
        for k, data in read_rounds(ROOT).items():
            for entry in data["trials"]:
                ROUND_TRIALS.setdefault(entry["trial_id"], (k, entry["params"]))
    return ROUND_TRIALS[trial_id][1]


def trial_round(trial_id):
    for bracket in SWEEP.brackets:
        if trial_id in bracket.trial_ids:
            return bracket.index
    plan_params(trial_id)
    return ROUND_TRIALS[trial_id][0]


def trial_params(wildcards):
    """The full parameter set of a trial (fixed values and epochs included)."""
    return plan_params(wildcards.trial_id)


def round_inputs(wildcards):
    """Round k learns from every trial of rounds 0..k-1, in (round, index) order. ``ancient``:
    a record rewritten later (a failed trial run again) never makes a round be made anew.
    """
    k = int(wildcards.round)
    return {
        "rounds": [ancient(round_file(j)) for j in range(k)],
        "records": [
            ancient(record_path(tid, SWEEP.epochs))
            for j in range(k)
            for tid in bracket_trial_ids(j)
        ],
    }


def trial_dir(wildcards):
    return str(SWEEP.trial_dir(wildcards.trial_id))


def record_path(trial_id, budget):
    return f"{ROOT}/{contract.RESULT_PATH.format(trial_id=trial_id, budget=budget)}"


def round_summaries(wildcards):
    """One summary per planned round, named directly: what the aggregating rules wait for
    with rounds. Records reached through a checkpoint only would not do: Snakemake skips the
    input checks of a job that depends on an unresolved checkpoint, so a grown sweep whose
    leaderboard existed ran nothing (measured with Snakemake 9.27.1); a missing summary
    always makes its rule, and so the round's checkpoint, run."""
    return [
        f"{ROOT}/{ROUND_SUMMARY_PATH.format(round=k)}"
        for k in range(len(SWEEP.rounds.sizes))
    ]


def round_record_paths(wildcards):
    """The records of one round's trials, in index order."""
    k = int(wildcards.round)
    return [record_path(tid, SWEEP.epochs) for tid in bracket_trial_ids(k)]


def alive_trials(bracket, rung):
    """Trials of a bracket that train at this rung: all at rung 0, then the promoted ones."""
    if rung == 0:
        return bracket_trial_ids(bracket)
    decision = checkpoint_json(checkpoints.promote_rung, bracket=bracket, rung=rung - 1)
    return decision["promoted"]


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
    if SWEEP.pruning != "hyperband":
        return []
    return [
        f"{ROOT}/{contract.BRACKET_SUMMARY_PATH.format(bracket=b.index)}"
        for b in SWEEP.brackets
    ]


def final_results(wildcards):
    """Every result record the sweep produces: each trial at each rung it reached; with
    rounds, each round's summary (which waits for the round's records)."""
    if SWEEP.rounds is not None:
        return round_summaries(wildcards)
    paths = []
    for bracket in SWEEP.brackets:
        for rung in range(len(bracket.budgets)):
            paths += rung_records(bracket.index, rung)
    return list(dict.fromkeys(paths))  # Hyperband brackets may share a trial


def search_space():
    """The config's search space as written (strategy and parameters): what plan.json records
    and the importance figure reads, so that each parameter gets its Optuna distribution.
    """
    return {"strategy": config["strategy"], "parameters": config["parameters"]}


#: Retry requests on disk (snakesweep.store.retry_request), read once per run.
RETRY_REQUESTS = read_requests(ROOT)


def retry_requests(trial_id, budget):
    """The retry requests of a trial's record at ``budget``: every one on disk (so that later
    runs see the same inputs) and, with ``--config retry=failed``, one for a failed record.
    """
    paths = list(RETRY_REQUESTS.get((trial_id, int(budget)), []))
    if RETRY:
        wanted = wanted_request(ROOT, read_json(record_path(trial_id, budget)), RETRY)
        if wanted is not None and wanted not in paths:
            paths.append(wanted)
    return paths


def trial_retries(wildcards):
    return retry_requests(wildcards.trial_id, wildcards.budget)


def training_resources():
    """Per-job resources from config (snakesweep.cluster.layout): GPUs only when asked for, and a
    multi-node trial as one SLURM task per rank."""
    res = config["resources"]
    return LAYOUT.slurm_resources(res["runtime"], res["mem_mb"])


def asha_settings(k=None):
    """Environment for ASHA's self-pruning trials (empty unless pruning.method is asha).

    With rounds, a trial of round k reports into its round's folder and is compared only with
    the trials of rounds 0..k-1, which have all finished: which trials are pruned never
    depends on the order in which a round's trials reach a rung, so the next round's records,
    and its suggestions, are the same on every run.
    """
    if SWEEP.pruning != "asha":
        return {}
    env = {
        contract.ENV_ASHA_DIR: f"{ROOT}/{contract.ASHA_DIR}",
        contract.ENV_ASHA_RUNGS: ",".join(str(b) for b in SWEEP.rung_budgets),
        contract.ENV_ASHA_ETA: str(SWEEP.eta),
        contract.ENV_ASHA_MIN_PEERS: str(config["pruning"]["min_peers"]),
    }
    if k is not None:
        asha_round = f"{ROOT}/{contract.ASHA_ROUND_DIR}"
        env[contract.ENV_ASHA_DIR] = asha_round.format(round=k)
        env[contract.ENV_ASHA_PEER_DIRS] = os.pathsep.join(
            asha_round.format(round=j) for j in range(k)
        )
    return env


def trial_asha_settings(wildcards):
    if SWEEP.rounds is None:
        return asha_settings()
    return asha_settings(trial_round(wildcards.trial_id))


def pack_asha_settings(wildcards):
    """A pack's members share a bracket, which with rounds is their round."""
    if SWEEP.rounds is None:
        return asha_settings()
    return asha_settings(int(wildcards.bracket))


def print_summary():
    """Print the top of the leaderboard at the end of a run; exit 1 if nothing is usable.

    Snakemake itself exits 0 once every job ran, failed trials included (they are recorded,
    not job failures); a sweep in which no trial completed must not look like a success.
    """
    from snakesweep.report.leaderboard import summary, sweep_has_result

    if not os.path.exists(f"{ROOT}/{contract.LEADERBOARD_FILE}"):
        return
    plan = (ROOT, planned_trial_ids(), SWEEP.metric, SWEEP.mode, SWEEP.epochs)
    print(summary(*plan, SWEEP.rung_budgets), flush=True)
    if not sweep_has_result(*plan, SWEEP.rung_budgets):
        sys.exit(1)


def planned_rounds():
    """The number of planned rounds (None without rounds), for plan.json and the status."""
    return None if SWEEP.rounds is None else len(SWEEP.rounds.sizes)
