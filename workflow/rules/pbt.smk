# Population based training (docs/pbt.md): every member trains `pbt.interval` epochs per
# generation; a checkpoint rule between generations ranks them, copies the best members'
# checkpoints over the worst and perturbs their parameters; the next generation's jobs are
# made from its decision in results/<sweep>/generations/. Replaces train.smk when `pbt` is set.

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
    from snakesweep.search.pbt import scheduled_params

    generation = member_generation(wildcards)
    start = SWEEP.trials[wildcards.trial_id]
    if generation == 0 or PBT.schedule is not None:
        return scheduled_params(start, PBT, generation)
    # Raises Snakemake's "incomplete checkpoint" until the decision exists, as the input does.
    decision = read_json(checkpoints.pbt_generation.get(generation=generation - 1).output[0])
    return next(m["params"] for m in decision["members"] if m["member"] == wildcards.trial_id)


def generation_records(wildcards):
    """Every member's record at the end of a generation."""
    budget = (int(wildcards.generation) + 1) * PBT.interval
    return [record_path(tid, budget) for tid in SWEEP.trials]


rule train_member:
    input:
        member_segment_inputs,
    output:
        result=f"{ROOT}/{contract.RESULT_PATH}",
    log:
        f"{ROOT}/{contract.TRAIN_LOG_PATH}",
    conda:
        "../../environment.yml"
    threads: LAYOUT.threads
    resources:
        **training_resources(),
    params:
        hparams=member_params,
        trial_dir=trial_dir,
        script=config["script"],
        metric=config["metric"],
        mode=config["mode"],
        checkpoint=config["checkpoint"],
        extra_env={},
    script:
        "../scripts/run_trial.py"


checkpoint pbt_generation:
    input:
        generation_records,
    output:
        f"{ROOT}/{contract.GENERATION_PATH}",
    log:
        f"{ROOT}/logs/generations/gen-{{generation}}.log",
    # Deterministic file work between generations: a failure is a bug to report, not to retry.
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        keep=config["checkpoint"]["keep"],
    script:
        "../scripts/pbt_generation.py"


rule pbt_population:
    input:
        f"{ROOT}/{contract.LEADERBOARD_FILE}",
    output:
        report(
            f"{ROOT}/plots/population.svg",
            caption="../report/population.rst",
            category="Plots",
            labels={"figure": "PBT population"},
        ),
    log:
        f"{ROOT}/logs/population.log",
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        root=lambda wildcards, output: os.path.dirname(os.path.dirname(output[0])),
        metric=SWEEP.metric,
        mode=SWEEP.mode,
        mutate=list(PBT.mutate),
        interval=PBT.interval,
        log_parameters=[p.name for p in SWEEP.parameters if p.log],
        title=f"{SWEEP.name}: population of {len(SWEEP.trials)} members, "
        f"{PBT.generations} generations of {PBT.interval} epochs",
    script:
        "../scripts/pbt_population.py"
