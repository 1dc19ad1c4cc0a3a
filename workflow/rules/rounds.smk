# Model-based search (strategy tpe): each round after the first is a checkpoint that asks
# Optuna's sampler for the round's trials, from the records of every earlier round
# (docs/search.md). The round file is the record of what was suggested: update() keeps
# Snakemake from deleting it before a rerun of the rule, and the script keeps a file that
# exists, so it is written once.

from snakesweep.report.results import read_records
from snakesweep.store.round_file import write_round_summary


# Round 0 learns from nothing: it is made at parse time (so that `snakemake -n` lists its
# trials) and this plain rule writes its file. A checkpoint here would finish while round
# 0's trials still train, and the DAG update that follows dropped the later rounds' jobs
# (measured with Snakemake 9.27.1: the run ended "done" after round 0).
rule first_round:
    output:
        update(f"{ROOT}/{ROUND_PATH.format(round=0)}"),
    log:
        f"{ROOT}/logs/rounds/round-0.log",
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        round=0,
        size=SWEEP.rounds.sizes[0] if SWEEP.rounds else None,
        maker=SWEEP.rounds.maker if SWEEP.rounds else None,
    script:
        "../scripts/suggest_round.py"


checkpoint suggest_round:
    input:
        unpack(round_inputs),
    output:
        update(f"{ROOT}/{ROUND_PATH}"),
    log:
        f"{ROOT}/logs/rounds/round-{{round}}.log",
    wildcard_constraints:
        round="[1-9][0-9]*",
    # Deterministic from its inputs: a failure is a bug to report, not to retry.
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        round=lambda wildcards: int(wildcards.round),
        size=lambda wildcards: SWEEP.rounds.sizes[int(wildcards.round)],
        maker=SWEEP.rounds.maker if SWEEP.rounds else None,
    script:
        "../scripts/suggest_round.py"


rule round_records:
    input:
        round_record_paths,
    output:
        f"{ROOT}/{ROUND_SUMMARY_PATH}",
    log:
        f"{ROOT}/logs/rounds/round-{{round}}-records.log",
    # A summary of files, in the controller's process (run:): nothing to retry.
    retries: 0
    localrule: True
    run:
        write_round_summary(output[0], int(wildcards.round), read_records(input))
