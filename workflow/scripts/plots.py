"""Snakemake script of the plots rule: learning curves and the metric against each parameter."""

import sys

from snakesweep.report.plots import (
    plot_learning_curves,
    plot_metric_by_trial,
    plot_metric_vs_params,
)
from snakesweep.report.tables import load

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    sys.stdout = sys.stderr = log
    p = sm.params
    tables = load(p.root, p.metric, p.mode, trials=p.trial_ids)
    curves = plot_learning_curves(
        tables, sm.output.curves, p.metric, p.mode, title=p.curves_title, budget=p.budget
    )
    print(f"learning curves: {curves}")
    panels = plot_metric_vs_params(
        tables,
        sm.output.params,
        p.metric,
        p.mode,
        parameters=p.parameters,
        log_parameters=p.log_parameters,
        title=p.params_title,
        budget=p.budget,
    )
    print(f"metric against parameters: {panels}")
    by_trial = plot_metric_by_trial(
        tables,
        sm.output.trials,
        p.metric,
        p.mode,
        order=p.trial_ids,
        title=p.trials_title,
        budget=p.budget,
    )
    print(f"metric against trial number: {by_trial}")
