"""Snakemake script of the train_pack rule: train a pack's trials side by side (pack > 1)."""

import os
import sys
from pathlib import Path

from snakesweep.job.launch import TrialJob, checkpoint_fields, warm_fields
from snakesweep.job.pack_job import Member, finish_pack, run_pack
from snakesweep.store.atomic import write_json

sm = snakemake  # noqa: F821 (injected by Snakemake)
ckpt = sm.params.checkpoint
budget = int(sm.params.budget)
members = [
    Member(
        job=TrialJob(
            trial_id=m["trial_id"],
            trial_dir=Path(m["trial_dir"]),
            params=m["params"],
            script=sm.params.script,
            budget=budget,
            metric=sm.params.metric,
            mode=sm.params.mode,
            result_path=Path(m["packed_record"]),
            log_path=Path(m["log"]),
            threads=sm.params.cpus,
            **checkpoint_fields(ckpt),
            **warm_fields(sm.config, Path(sm.log[0])),
        ),
        record=Path(m["record"]),
    )
    for m in sm.params.members
]
os.environ.update(sm.params.extra_env)  # ASHA's rung settings, when on
state = Path(sm.params.state)
with open(sm.log[0], "a", encoding="utf-8") as log:

    def say(text: str) -> None:
        print(f"snakesweep pack: {text}", file=sys.stderr, flush=True)
        print(text, file=log, flush=True)

    code = run_pack(
        members,
        sm.config,
        slots=sm.params.slots,
        cpus=sm.params.cpus,
        gpus=sm.params.gpus,
        state_path=state,
        workflow_dir=sm.scriptdir,
        say=say,
    )
if code == 0:
    write_json(
        sm.output[0],
        {"members": [m.job.trial_id for m in members], "budget": budget},
    )
    finish_pack(state)
sys.exit(code)
