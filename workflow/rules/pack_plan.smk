# Packed trials (pack > 1): which trials share a job, and what the job asks for
# (docs/packing.md). The pure planning is snakesweep.cluster.packing; this file ties it to the sweep
# plan and Snakemake's checkpoints. A pack trains its members through one stage: a rung of a
# bracket, or with PBT a generation (bracket 0, rung = generation; docs/pbt.md).

from snakesweep.cluster.packing import (
    PACK_NAME,
    in_sweep_order,
    make_packs,
    pack_slots,
    pack_waves,
)
from snakesweep.store.trial_folder import packed_result_path

PACK = config["pack"]
#: A pack's name as wildcards (snakesweep.cluster.packing.PACK_NAME): the rules' file patterns.
PACK_WILDCARDS = PACK_NAME.format(
    bracket="{bracket}", rung="{rung}", index="{pack}", digest="{digest}"
)
_PACKS = {}  # (bracket, rung) -> its packs, once the rung's trials are known


def stage_budget(bracket, rung):
    """The epochs a pack of this stage trains its members to."""
    if SWEEP.pbt is not None:
        return SWEEP.pbt.budgets[rung]
    return SWEEP.brackets[bracket].budgets[rung]


def stage_trials(bracket, rung):
    """The trials a stage trains, in sweep order: a rung's live trials, or (PBT) every member
    in every generation."""
    if SWEEP.pbt is not None:
        return list(SWEEP.trials)
    order = bracket_trial_ids(bracket)
    return in_sweep_order(alive_trials(bracket, rung), order)


def stage_params(trial_id, bracket, rung):
    """A member's parameters at this stage (PBT: the generation's decision says them)."""
    if SWEEP.pbt is not None:
        return params_in_generation(trial_id, rung)
    return plan_params(trial_id)


def rung_packs(bracket, rung):
    """The packs of one stage: its trials in sweep order, PACK at a time."""
    if (bracket, rung) not in _PACKS:
        _PACKS[bracket, rung] = make_packs(
            bracket, rung, stage_trials(bracket, rung), PACK
        )
    return _PACKS[bracket, rung]


def pack_path(pack):
    return f"{ROOT}/{contract.PACK_PATH.format(name=pack.name)}"


_PACK_OF = {}  # (trial_id, budget) -> marker path


def stages_training(trial_id, budget):
    """The stages (bracket, rung) that may train this trial to this budget, in order; lazily:
    with rounds, asking a later round for its trials raises until that round is known.
    """
    if SWEEP.pbt is not None:
        yield 0, SWEEP.pbt.generation_of(budget)
        return
    # Brackets in order (Hyperband brackets share trials).
    for bracket in SWEEP.brackets:
        if budget in bracket.budgets and trial_id in bracket_trial_ids(bracket.index):
            yield bracket.index, bracket.budgets.index(budget)


def pack_of_record(wildcards):
    """The marker of the pack that trains this trial at this budget: the first stage's."""
    key = (wildcards.trial_id, int(wildcards.budget))
    if key not in _PACK_OF:
        tid, budget = key
        for bracket, rung in stages_training(tid, budget):
            for pack in rung_packs(bracket, rung):
                for member in pack.members:
                    _PACK_OF.setdefault((member, budget), pack_path(pack))
            if key in _PACK_OF:
                break
        if key not in _PACK_OF:
            raise ValueError(
                f"trial {tid} is not trained at {budget} epochs in this sweep"
            )
    return _PACK_OF[key]


def the_pack(wildcards):
    bracket, rung, index = (
        int(wildcards.bracket),
        int(wildcards.rung),
        int(wildcards.pack),
    )
    packs = rung_packs(bracket, rung)
    if index >= len(packs) or packs[index].digest != wildcards.digest:
        raise ValueError(
            f"no pack {index} with members {wildcards.digest} at bracket {bracket} rung {rung}"
        )
    return packs[index]


def pack_decision(wildcards):
    """A later rung's pack depends on the promotion that made it; a later generation's on the
    decision after the one before."""
    rung = int(wildcards.rung)
    if SWEEP.pbt is not None:
        return generation_inputs(rung)
    if rung == 0:
        return []
    return checkpoints.promote_rung.get(bracket=wildcards.bracket, rung=rung - 1).output


def pack_budget(wildcards):
    return stage_budget(int(wildcards.bracket), int(wildcards.rung))


def pack_members(wildcards):
    bracket, rung = int(wildcards.bracket), int(wildcards.rung)
    budget = stage_budget(bracket, rung)
    return [
        {
            "trial_id": tid,
            "params": stage_params(tid, bracket, rung),
            "trial_dir": str(SWEEP.trial_dir(tid)),
            "record": record_path(tid, budget),
            "packed_record": str(packed_result_path(SWEEP.trial_dir(tid), budget)),
            "log": f"{ROOT}/{contract.TRAIN_LOG_PATH.format(trial_id=tid, budget=budget)}",
        }
        for tid in the_pack(wildcards).members
    ]


def pack_retries(wildcards):
    """Its members' retry requests: a retried member makes its pack run again (the members
    whose records are kept are not trained again)."""
    budget = pack_budget(wildcards)
    return [
        path
        for tid in the_pack(wildcards).members
        for path in retry_requests(tid, budget)
    ]


def pack_size_slots(wildcards):
    """How many of this pack's members train at once (a partial last pack may need fewer)."""
    return pack_slots(len(the_pack(wildcards).members), config["pack_parallel"])


def _per_pack(value):
    return lambda wildcards: value * pack_size_slots(wildcards)


def pack_threads(wildcards):
    return config["resources"]["cpus"] * pack_size_slots(wildcards)


def pack_resources():
    """One trial's resources times the members that train at once; the time limit of one
    trial's segment times the members each slot trains one after another."""
    per_trial = training_resources()
    resources = {
        key: _per_pack(value) for key, value in per_trial.items() if key != "runtime"
    }
    resources["runtime"] = lambda wildcards: per_trial["runtime"] * pack_waves(
        len(the_pack(wildcards).members), config["pack_parallel"]
    )
    return resources
