"""Snakemake script of the bracket_summary rule: the result records one Hyperband bracket made.

Its only job is to be a target per bracket, so that brackets are trained side by side.
"""

from snakesweep.report.results import read_records
from snakesweep.store.atomic import write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
summary = {
    "bracket": int(sm.wildcards.bracket),
    "budgets": sm.params.budgets,
    "records": list(sm.input),
}
write_json(sm.output[0], summary)
with open(sm.log[0], "w") as log:
    statuses = {}
    for record in read_records(sm.input):
        statuses[record["status"]] = statuses.get(record["status"], 0) + 1
    print(f"bracket {summary['bracket']}: {len(summary['records'])} records {statuses}", file=log)
