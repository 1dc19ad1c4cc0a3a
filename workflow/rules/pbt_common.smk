# Population based training's shared state and input functions (docs/pbt.md); the rules
# that use them are in pbt.smk, pbt_member.smk and (packed) pack.smk. Included only when the
# config has a `pbt` block.

from snakesweep.search.pbt import scheduled_params

PBT = SWEEP.pbt


wildcard_constraints:
    generation="[0-9]+",


def member_generation(wildcards):
    """The generation a member's segment to `budget` epochs trains (0, 1, ...)."""
    return PBT.generation_of(int(wildcards.budget))


def generation_inputs(generation):
    """What generation g's segments wait for: the decision after generation g-1 (PBT), or
    each member's own previous segment (a replayed schedule)."""
    if generation == 0:
        return []
    if PBT.schedule is not None:
        return [record_path(tid, generation * PBT.interval) for tid in SWEEP.trials]
    return checkpoints.pbt_generation.get(generation=generation - 1).output


def member_segment_inputs(wildcards):
    return generation_inputs(member_generation(wildcards))


def params_in_generation(trial_id, generation):
    """A member's parameters in a generation: sampled ones at first, then the decision's."""
    start = SWEEP.trials[trial_id]
    if generation == 0 or PBT.schedule is not None:
        return scheduled_params(start, PBT, generation)
    # Raises Snakemake's "incomplete checkpoint" until the decision exists, as the input does.
    decision = checkpoint_json(checkpoints.pbt_generation, generation=generation - 1)
    return next(m["params"] for m in decision["members"] if m["member"] == trial_id)


def member_params(wildcards):
    return params_in_generation(wildcards.trial_id, member_generation(wildcards))


def generation_records(wildcards):
    """Every member's record at the end of a generation."""
    budget = (int(wildcards.generation) + 1) * PBT.interval
    return [record_path(tid, budget) for tid in SWEEP.trials]
