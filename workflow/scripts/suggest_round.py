"""Snakemake script of the first_round rule and the suggest_round checkpoint: round k's
trials, written once."""

import sys

from snakesweep.report.results import read_records
from snakesweep.store.round_file import read_round, write_round

sm = snakemake  # noqa: F821 (injected by Snakemake)
with open(sm.log[0], "w") as log:
    sys.stdout = sys.stderr = log
    k = sm.params.round
    written = read_round(sm.output[0])
    if written is not None:
        # A round file is the record: a rerun of the rule (forced, or after a kill) keeps it.
        print(f"round {k}: kept as written ({len(written['trials'])} trials)")
    else:
        content = sm.params.maker.make(k, sm.params.size, read_records(sm.input.get("records", [])))
        write_round(sm.output[0], content)
        print(
            f"round {k}: {len(content['trials'])} trials from {content['records']['count']} "
            f"records {content['records']['states']} (seed {content['seed']}, "
            f"{content['duplicates']} repeated suggestions asked again)"
        )
        for entry in content["trials"]:
            print(f"  {entry['index']}: {entry['trial_id']} {entry['params']}")
