"""Snakemake script of the leaderboard rule: rank all trials and write the best one's config."""

import sys

from snakesweep.report.leaderboard import write_leaderboard

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    sys.stdout = sys.stderr = log
    write_leaderboard(
        root=sm.params.root,
        trial_ids=sm.params.trial_ids,
        csv_path=sm.output.csv,
        best_path=sm.output.best,
        sweep=sm.params.sweep,
        metric=sm.params.metric,
        mode=sm.params.mode,
        budget=sm.params.budget,
        rung_budgets=sm.params.rung_budgets,
        sweep_config=sm.params.sweep_config,
    )
