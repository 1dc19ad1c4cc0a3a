# Aggregation: the leaderboard of all trials and the best trial's config.


rule leaderboard:
    input:
        records=final_results,
        brackets=bracket_summaries,
    output:
        csv=report(
            f"{ROOT}/{contract.LEADERBOARD_FILE}",
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
        best=report(
            f"{ROOT}/{contract.BEST_FILE}",
            caption="../report/best.rst",
            category="Best trial",
        ),
    log:
        f"{ROOT}/logs/leaderboard.log",
    # A summary of files: deterministic, so a failure is a bug to report, not to retry
    # (the profile's retries are for training segments).
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        # The sweep folder the tables are read from (snakesweep.load): the outputs' folder.
        root=lambda wildcards, output: os.path.dirname(output.csv),
        trial_ids=planned_trial_ids,
        sweep=SWEEP.name,
        metric=SWEEP.metric,
        mode=SWEEP.mode,
        budget=SWEEP.epochs,
        rung_budgets=list(SWEEP.rung_budgets),
        sweep_config=config,
    script:
        "../scripts/leaderboard.py"
