# Synchronous pruning (sha, hyperband): after each rung, keep the best 1/eta of a bracket.
# The decision is a Snakemake checkpoint, so the next rung's jobs come from it.


checkpoint promote_rung:
    input:
        promotion_inputs,
    output:
        f"{ROOT}/{contract.RUNG_DECISION_PATH}",
    log:
        f"{ROOT}/logs/rungs/bracket{{bracket}}-rung{{rung}}.log",
    # A summary of files: deterministic, so a failure is a bug to report, not to retry
    # (the profile's retries are for training segments).
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        eta=SWEEP.eta,
        mode=SWEEP.mode,
        metric=SWEEP.metric,
        budget=lambda wildcards: SWEEP.brackets[int(wildcards.bracket)].budgets[
            int(wildcards.rung)
        ],
    script:
        "../scripts/promote_rung.py"


rule bracket_summary:
    input:
        bracket_records,
    output:
        f"{ROOT}/{contract.BRACKET_SUMMARY_PATH}",
    log:
        f"{ROOT}/logs/rungs/bracket{{bracket}}-records.log",
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        budgets=lambda wildcards: list(SWEEP.brackets[int(wildcards.bracket)].budgets),
    script:
        "../scripts/bracket_summary.py"
