# Population based training (docs/pbt.md): every member trains `pbt.interval` epochs per
# generation; a checkpoint rule between generations ranks them, copies the best members'
# checkpoints over the worst and perturbs their parameters; the next generation's jobs are
# made from its decision in results/<sweep>/generations/. The members' jobs come from
# pbt_member.smk, or from pack.smk when `pack` > 1 (one job trains several members' generation).


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
