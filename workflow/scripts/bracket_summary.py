"""Snakemake script of the bracket_summary rule: the result records one Hyperband bracket made.

Its only job is to be a target per bracket, so that brackets are trained side by side.
"""

import json

from snakesweep.atomic import write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
summary = {
    "bracket": int(sm.wildcards.bracket),
    "budgets": sm.params.budgets,
    "records": list(sm.input),
}
write_json(sm.output[0], summary)
with open(sm.log[0], "w") as log:
    statuses = {}
    for path in sm.input:
        with open(path) as f:
            status = json.load(f)["status"]
        statuses[status] = statuses.get(status, 0) + 1
    print(f"bracket {summary['bracket']}: {len(summary['records'])} records {statuses}", file=log)
