"""Snakemake script of the pbt_population rule: the population figure (docs/pbt.md)."""

import sys

from snakesweep.report.plots import plot_population
from snakesweep.report.tables import load

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    sys.stdout = sys.stderr = log
    p = sm.params
    tables = load(p.root, p.metric, p.mode)
    drawn = plot_population(
        tables,
        sm.output[0],
        p.metric,
        p.mode,
        mutate=p.mutate,
        interval=p.interval,
        log_parameters=p.log_parameters,
        title=p.title,
    )
    print(f"population: {len(drawn['members'])} members, clone events {drawn['clones']}")
