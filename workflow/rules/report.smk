# Report: figures of the sweep for `snakemake --report report.html`, and the check
# that the trackers switched on in `tracking` can be used.

from snakesweep.trackers import TrackerUnavailable, check_trackers

try:
    check_trackers(config.get("tracking") or {})
except TrackerUnavailable as error:
    raise WorkflowError(str(error)) from None


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
    log:
        f"{ROOT}/logs/plots.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        sweep=SWEEP.name,
        metric=SWEEP.metric,
        mode=SWEEP.mode,
        budget=SWEEP.epochs,
        parameters=[p.name for p in SWEEP.parameters if p.kind != "fixed"],
        log_parameters=[p.name for p in SWEEP.parameters if p.log],
        curves_title=f"{SWEEP.name}: {SWEEP.metric} per epoch ({len(SWEEP.trials)} trials)",
        params_title=f"{SWEEP.name}: {SWEEP.metric} at each trial's last epoch",
    script:
        "../scripts/plots.py"
