"""Snakemake script of the promote_rung checkpoint: who goes on to the next rung."""

from snakesweep.report.results import read_records
from snakesweep.search.pruning import rung_decision
from snakesweep.store.atomic import write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
decision = rung_decision(
    read_records(sm.input),
    bracket=int(sm.wildcards.bracket),
    rung=int(sm.wildcards.rung),
    budget=sm.params.budget,
    metric=sm.params.metric,
    mode=sm.params.mode,
    eta=sm.params.eta,
)
write_json(sm.output[0], decision)
with open(sm.log[0], "w") as log:
    print(
        f"bracket {decision['bracket']} rung {decision['rung']} ({decision['budget']} epochs): "
        f"{len(decision['promoted'])} of {len(decision['scores'])} go on: {decision['promoted']}",
        file=log,
    )
