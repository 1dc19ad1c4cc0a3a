# Model-based search (strategy tpe): each round is a checkpoint that asks Optuna's sampler for
# the round's trials, from the records of every earlier round (docs/search.md). The round
# file is the record of what was suggested: update() keeps Snakemake from deleting it before a
# rerun of the rule, and the script keeps a file that exists, so it is written once.


checkpoint suggest_round:
    input:
        unpack(round_inputs),
    output:
        update(f"{ROOT}/{ROUND_PATH}"),
    log:
        f"{ROOT}/logs/rounds/round-{{round}}.log",
    # Deterministic from its inputs: a failure is a bug to report, not to retry.
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        size=lambda wildcards: SWEEP.rounds.sizes[int(wildcards.round)],
        maker=SWEEP.rounds.maker if SWEEP.rounds else None,
    script:
        "../scripts/suggest_round.py"
