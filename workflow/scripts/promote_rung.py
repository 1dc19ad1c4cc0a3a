"""Snakemake script of the promote_rung checkpoint: who goes on to the next rung."""

import json

from snakesweep.atomic import write_json
from snakesweep.pruning import promote

sm = snakemake  # noqa: F821 (injected by Snakemake)
scores = {}
for path in sm.input:
    with open(path) as f:
        record = json.load(f)
    # Only a trial that completed the rung's budget with a finite metric can go on.
    scores[record["trial_id"]] = record["final"] if record["status"] == "completed" else None
promoted = promote(scores, eta=sm.params.eta, mode=sm.params.mode)
decision = {
    "bracket": int(sm.wildcards.bracket),
    "rung": int(sm.wildcards.rung),
    "budget": sm.params.budget,
    "metric": sm.params.metric,
    "mode": sm.params.mode,
    "eta": sm.params.eta,
    "scores": scores,
    "promoted": promoted,
    "pruned": sorted(set(scores) - set(promoted)),
}
write_json(sm.output[0], decision)
with open(sm.log[0], "w") as log:
    print(
        f"bracket {decision['bracket']} rung {decision['rung']} ({decision['budget']} epochs): "
        f"{len(promoted)} of {len(scores)} go on: {promoted}",
        file=log,
    )
