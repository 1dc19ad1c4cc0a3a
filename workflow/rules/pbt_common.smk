# Population based training's shared state and input functions (docs/pbt.md); the rules
# that use them are in pbt.smk. Included only when the config has a `pbt` block.

from snakesweep.search.pbt import scheduled_params

PBT = SWEEP.pbt


wildcard_constraints:
    generation="[0-9]+",


def member_generation(wildcards):
    """The generation a member's segment to `budget` epochs trains (0, 1, ...)."""
    return PBT.generation_of(int(wildcards.budget))


def member_segment_inputs(wildcards):
    """What a member's segment waits for: the decision after the previous generation (PBT),
    or its own previous segment (a replayed schedule)."""
    generation = member_generation(wildcards)
    if generation == 0:
        return []
    if PBT.schedule is not None:
        return [record_path(wildcards.trial_id, generation * PBT.interval)]
    return checkpoints.pbt_generation.get(generation=generation - 1).output


def member_params(wildcards):
    """The member's parameters in this generation: sampled ones at first, then the decision's."""
    generation = member_generation(wildcards)
    start = SWEEP.trials[wildcards.trial_id]
    if generation == 0 or PBT.schedule is not None:
        return scheduled_params(start, PBT, generation)
    # Raises Snakemake's "incomplete checkpoint" until the decision exists, as the input does.
    decision = read_json(
        checkpoints.pbt_generation.get(generation=generation - 1).output[0]
    )
    return next(
        m["params"] for m in decision["members"] if m["member"] == wildcards.trial_id
    )


def generation_records(wildcards):
    """Every member's record at the end of a generation."""
    budget = (int(wildcards.generation) + 1) * PBT.interval
    return [record_path(tid, budget) for tid in SWEEP.trials]
