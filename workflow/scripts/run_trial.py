"""Snakemake script of the training rule: run the next segment of one trial."""

import os
import sys
from pathlib import Path

from snakesweep.cluster.layout import ProcessLayout
from snakesweep.job.launch import TrialJob, checkpoint_fields, warm_fields
from snakesweep.job.training_job import run_training_job

sm = snakemake  # noqa: F821 (injected by Snakemake)
ckpt = sm.params.checkpoint
layout = ProcessLayout.from_resources(sm.config["resources"])
job = TrialJob(
    trial_id=sm.wildcards.trial_id,
    trial_dir=Path(sm.params.trial_dir),
    params=sm.params.hparams,
    script=sm.params.script,
    budget=int(sm.wildcards.budget),
    metric=sm.params.metric,
    mode=sm.params.mode,
    result_path=Path(sm.output.result),
    log_path=Path(sm.log[0]),
    # per rank; Snakemake's threads hold every rank's cores (and may be capped by --cores)
    threads=max(1, sm.threads // layout.processes_per_node),
    processes_per_node=layout.processes_per_node,
    nodes=layout.nodes,
    **checkpoint_fields(ckpt),
    **warm_fields(sm.config, Path(sm.log[0])),
)
os.environ.update(sm.params.extra_env)  # ASHA's rung settings, when on
# provenance.json before and after the segment, then the trackers switched on in `tracking`
sys.exit(run_training_job(job, sm.config, workflow_dir=sm.scriptdir))
