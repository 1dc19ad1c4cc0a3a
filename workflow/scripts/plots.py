"""Snakemake script of the plots rule: learning curves and the metric against each parameter."""

import sys

from snakesweep.plots import plot_learning_curves, plot_metric_vs_params
from snakesweep.results import read_records

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    sys.stdout = sys.stderr = log
    records = read_records(sm.input.records)
    p = sm.params
    curves = plot_learning_curves(
        records, sm.output.curves, p.metric, p.mode, title=p.curves_title, budget=p.budget
    )
    print(f"learning curves: {curves}")
    panels = plot_metric_vs_params(
        records,
        sm.output.params,
        p.metric,
        p.mode,
        parameters=p.parameters,
        log_parameters=p.log_parameters,
        title=p.params_title,
        budget=p.budget,
    )
    print(f"metric against parameters: {panels}")
