# Report: figures of the sweep for `snakemake --report report.html`, and the check
# that the trackers switched on in `tracking` can be used.

from snakesweep.snakemake_glue import check_tracking

check_tracking(config)


report: "../report/workflow.rst"


rule plots:
    input:
        records=final_results,
        brackets=bracket_summaries,
    output:
        curves=report(
            f"{ROOT}/plots/learning_curves.svg",
            caption="../report/learning_curves.rst",
            category="Plots",
            labels={"figure": "learning curves"},
        ),
        params=report(
            f"{ROOT}/plots/metric_vs_params.svg",
            caption="../report/metric_vs_params.rst",
            category="Plots",
            labels={"figure": "metric against parameters"},
        ),
        importance=report(
            f"{ROOT}/plots/param_importance.svg",
            caption="../report/param_importance.rst",
            category="Plots",
            labels={"figure": "hyper-parameter importance"},
        ),
        trials=report(
            f"{ROOT}/plots/metric_by_trial.svg",
            caption="../report/metric_by_trial.rst",
            category="Plots",
            labels={"figure": "metric against trial number"},
        ),
    log:
        f"{ROOT}/logs/plots.log",
    # A summary of files: deterministic, so a failure is a bug to report, not to retry
    # (the profile's retries are for training segments).
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        # The sweep folder the tables are read from (snakesweep.load): above plots/.
        root=lambda wildcards, output: os.path.dirname(os.path.dirname(output.curves)),
        trial_ids=planned_trial_ids,
        sweep=SWEEP.name,
        metric=SWEEP.metric,
        mode=SWEEP.mode,
        budget=SWEEP.epochs,
        parameters=[p.name for p in SWEEP.parameters if p.kind != "fixed"],
        log_parameters=[p.name for p in SWEEP.parameters if p.log],
        curves_title=lambda wildcards, input: f"{SWEEP.name}: {SWEEP.metric} per epoch ({len(planned_trial_ids())} trials)",
        params_title=f"{SWEEP.name}: {SWEEP.metric} at each trial's last epoch",
        # Each parameter's Optuna distribution, for the importance (Optuna's fANOVA).
        space=search_space(),
        importance_title=f"{SWEEP.name}: hyper-parameter importance for {SWEEP.metric}",
        trials_title=f"{SWEEP.name}: {SWEEP.metric} against trial number",
    script:
        "../scripts/plots.py"
