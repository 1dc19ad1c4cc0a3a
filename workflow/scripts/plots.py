"""Snakemake script of the plots rule: learning curves, the metric against each parameter and
against trial number, and the hyper-parameters' importance (Optuna's fANOVA on the completed
trials)."""

import sys

from snakesweep.report.importance import param_importances
from snakesweep.report.optuna_trials import DIRECTIONS, space_distributions, sweep_trials
from snakesweep.report.plots import (
    plot_importance,
    plot_learning_curves,
    plot_metric_by_trial,
    plot_metric_vs_params,
)
from snakesweep.report.status import scan_sweep
from snakesweep.report.tables import from_status

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    sys.stdout = sys.stderr = log
    p = sm.params
    # One read of the folder for all figures: the tables and the Optuna trials agree.
    status = scan_sweep(p.root, p.metric, p.mode, planned=dict.fromkeys(p.trial_ids, {}))
    tables = from_status(status)
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
    trials = sweep_trials(status, space_distributions(p.space))
    importance = param_importances(trials, DIRECTIONS[p.mode], p.metric)
    drawn = plot_importance(importance, sm.output.importance, title=p.importance_title)
    print(f"hyper-parameter importance: {drawn}")
