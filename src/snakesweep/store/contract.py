"""The contract between the workflow and a training script, in one place.

A training script is started as ``python SCRIPT --<name>=<value> ...`` (one
argument per hyper-parameter, ``--epochs`` included) with these environment
variables set. It appends one JSON object per line to ``metrics.jsonl`` in the
trial folder (``epoch`` plus metric values) and exits with 0 when done,
:data:`EXIT_CONTINUE` when it saved its state and wants another segment
(deadline, preemption), :data:`EXIT_PRUNED` when it stopped itself because it
was pruned, anything else when it failed.
"""

#: Exit code of a segment that checkpointed and must be continued later
#: (EX_TEMPFAIL from sysexits.h: "try again later").
EXIT_CONTINUE = 75
#: Exit code of a trial that stopped itself because an asynchronous pruner
#: (ASHA) ruled it out.
EXIT_PRUNED = 76

#: Folder where the trial keeps params, metrics, checkpoints and segments.
ENV_TRIAL_DIR = "SNAKESWEEP_TRIAL_DIR"
#: The trial id (a hash of its canonical parameters).
ENV_TRIAL_ID = "SNAKESWEEP_TRIAL_ID"
#: Stop (successfully) after this many epochs, even if ``--epochs`` is larger:
#: a pruning rung's budget. Unset means train all ``--epochs``.
ENV_STOP_AT_EPOCH = "SNAKESWEEP_STOP_AT_EPOCH"
#: Unix time (seconds) by which the segment must have saved and exited.
ENV_DEADLINE = "SNAKESWEEP_DEADLINE"
#: Seconds kept free before the deadline for the final save and exit, or ``auto``.
ENV_DEADLINE_MARGIN = "SNAKESWEEP_DEADLINE_MARGIN"
#: Seconds the trial's last measured exits took (stop decision to the job's requeue), for
#: the ``auto`` margin; unset until one was measured.
ENV_EXIT_SECONDS = "SNAKESWEEP_EXIT_SECONDS"
#: The cluster's KillWait (seconds from SIGTERM to SIGKILL), for the ``auto`` margin.
ENV_KILL_WAIT = "SNAKESWEEP_KILL_WAIT"
#: Checkpoint every N optimizer steps (0: off).
ENV_CHECKPOINT_EVERY_STEPS = "SNAKESWEEP_CHECKPOINT_EVERY_STEPS"
#: Checkpoint every T seconds of training (0: off).
ENV_CHECKPOINT_EVERY_SECONDS = "SNAKESWEEP_CHECKPOINT_EVERY_SECONDS"
#: How many checkpoints to keep.
ENV_CHECKPOINT_KEEP = "SNAKESWEEP_CHECKPOINT_KEEP"
#: Epoch ends other than the last save only if the save costs at most this share of the
#: time since the last save ("none": save at every epoch end).
ENV_CHECKPOINT_MAX_OVERHEAD = "SNAKESWEEP_CHECKPOINT_MAX_OVERHEAD"
#: Name of the metric the sweep optimises, and its mode (min or max).
ENV_METRIC = "SNAKESWEEP_METRIC"
ENV_MODE = "SNAKESWEEP_MODE"
#: "0" in the environment: every trial starts as a fresh process (no warm start, docs/speed.md).
ENV_WARM_START = "SNAKESWEEP_WARM_START"
#: Who a warm-start server serves (snakesweep.job.warm_start.owner_token).
ENV_WARM_OWNER = "SNAKESWEEP_WARM_OWNER"

#: Local emulation of a job time limit (set by the user or a test, read by the launcher):
#: each segment gets this many seconds, as if its job had a time limit.
ENV_SEGMENT_SECONDS = "SNAKESWEEP_SEGMENT_SECONDS"

METRICS_FILE = "metrics.jsonl"
PARAMS_FILE = "params.json"
SEGMENTS_FILE = "segments.jsonl"
PROVENANCE_FILE = "provenance.json"
CHECKPOINT_DIR = "checkpoints"
#: Measured timings (step, epoch end, save, the last stop's time), in the checkpoint folder.
TIMINGS_FILE = "timings.json"
#: The result record of a trial at a budget, in its folder; and its path below the sweep
#: root (``results/<sweep>``), which the training rule's output spells with wildcards.
RESULT_FILE = "result-{budget}.json"
#: The folder of the trial folders below the sweep root (``results/<sweep>/trials/<trial_id>``).
TRIALS_DIR = "trials"
RESULT_PATH = TRIALS_DIR + "/{trial_id}/" + RESULT_FILE
#: The sweep's outputs below its root: the ranked trials and the best trial's config.
LEADERBOARD_FILE = "leaderboard.csv"
BEST_FILE = "best.yaml"
#: Synchronous pruning's files below the sweep root: each rung's decision (scores, promoted,
#: pruned) and each Hyperband bracket's summary; ASHA's per-trial reports live in a subfolder.
RUNGS_DIR = "rungs"
RUNG_DECISION_PATH = RUNGS_DIR + "/bracket{bracket}-rung{rung}.json"
RUNG_DECISION_GLOB = RUNGS_DIR + "/bracket*-rung*.json"
BRACKET_SUMMARY_PATH = RUNGS_DIR + "/bracket{bracket}-records.json"
ASHA_DIR = RUNGS_DIR + "/asha"
#: Population based training (docs/pbt.md): the decision after each generation below the
#: sweep root, and each member's lineage (its parent and parameters per generation) in its folder.
GENERATIONS_DIR = "generations"
GENERATION_PATH = GENERATIONS_DIR + "/gen-{generation}.json"
LINEAGE_FILE = "lineage.json"
#: The training log of a trial at a budget below the sweep root (all its segments).
TRAIN_LOG_PATH = "logs/train/{trial_id}-{budget}ep.log"
#: Retries (``--config retry=failed``, docs/retry.md): below the sweep root, one request per
#: retried record, named by the trial, the budget and the segments the failed record counted;
#: it holds the record it replaced, so that no failure is forgotten.
RETRY_DIR = "retries"
RETRY_REQUEST_PATH = RETRY_DIR + "/{trial_id}-{budget}ep-s{segments}.json"
#: Packed trials (``pack`` > 1): the record a pack's member writes in its trial folder; the
#: workflow copies it to ``RESULT_FILE`` once the pack's job ended (docs/packing.md).
PACKED_RESULT_FILE = "packed-result-{budget}.json"
#: Below the sweep root: one marker per pack (written when its job ended), the state of a
#: pack's unfinished run (members that finished in it), and the pack's own log.
PACK_PATH = "packs/{name}.json"
PACK_STATE_PATH = "packs/.state-{name}.json"
PACK_LOG_PATH = "logs/packs/{name}.log"

#: ASHA (asynchronous pruning): folder of per-rung reports shared by the sweep's trials,
#: the rung budgets (comma-separated epochs), eta and the minimum number of peers.
ENV_ASHA_DIR = "SNAKESWEEP_ASHA_DIR"
ENV_ASHA_RUNGS = "SNAKESWEEP_ASHA_RUNGS"
ENV_ASHA_ETA = "SNAKESWEEP_ASHA_ETA"
ENV_ASHA_MIN_PEERS = "SNAKESWEEP_ASHA_MIN_PEERS"
#: With rounds (strategy tpe): the folders of the earlier rounds' rung reports (os.pathsep
#: between them; empty in round 0). When set, a trial's peers are read from these only, and
#: it reports into ``ENV_ASHA_DIR``, its own round's folder.
ENV_ASHA_PEER_DIRS = "SNAKESWEEP_ASHA_PEER_DIRS"
#: Below the sweep root: one round's ASHA reports.
ASHA_ROUND_DIR = ASHA_DIR + "/round-{round}"

#: Multi-process trials (docs/ddp.md). Each rank gets torch.distributed's ``env://``
#: variables (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT) from the launcher.
#: Seconds the other ranks get to end once one has ended, before the launcher kills them.
ENV_RANK_GRACE_SECONDS = "SNAKESWEEP_RANK_GRACE_SECONDS"
#: Set by the launcher of a multi-node trial: read the rank from SLURM_PROCID (srun tasks).
ENV_RANKS_FROM_SLURM = "SNAKESWEEP_RANKS_FROM_SLURM"
#: torch.distributed's own variables, as the launcher sets them and the session reads them.
ENV_RANK = "RANK"
ENV_LOCAL_RANK = "LOCAL_RANK"
ENV_WORLD_SIZE = "WORLD_SIZE"
