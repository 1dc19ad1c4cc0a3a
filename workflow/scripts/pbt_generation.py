"""Snakemake script of the pbt_generation checkpoint: rank, clone, perturb (docs/pbt.md)."""

from snakesweep.job.pbt_generation import run_generation
from snakesweep.report.results import read_records
from snakesweep.snakemake_glue import sweep_plan

sm = snakemake  # noqa: F821 (injected by Snakemake)
decision = run_generation(
    sweep_plan(sm.config),
    read_records(sm.input),
    generation=int(sm.wildcards.generation),
    decision_path=sm.output[0],
    keep=sm.params.keep,
)
with open(sm.log[0], "w") as log:
    for entry in decision["members"]:
        print(f"generation {decision['generation']}: {entry['member']}: {entry['why']}", file=log)
