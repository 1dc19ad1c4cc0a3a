# snakesweep: a hyper-parameter sweep of PyTorch training as a Snakemake workflow.
# The sweep is defined in config/config.yaml (keys documented in config/README.md).


from snakemake.utils import min_version, validate

from snakesweep.snakemake_glue import check_continuation_retries, check_sweep_config

min_version("9.0")


# The demo sweep, unless --configfile names another one: a sweep file stands on
# its own and is never merged into the demo (--config overrides still apply).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Plain-language errors first (key, value, what is allowed), then Snakemake's
# validation, which also fills in the schema's defaults.
check_sweep_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


# pack > 1: one job trains several trials (docs/packing.md); else one job per trial.
if config["pack"] > 1:

    include: "workflow/rules/pack_plan.smk"
    include: "workflow/rules/pack.smk"

else:

    include: "workflow/rules/train.smk"


include: "workflow/rules/prune.smk"
include: "workflow/rules/rounds.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        rules.leaderboard.output,
        rules.plots.output,


onstart:
    # Snakemake knows `retries` only now, before the first job (not in a dry run).
    check_continuation_retries(workflow, config)
    # The trial set of this run, so that `snakesweep status` can tell stale trial folders.
    write_plan(
        ROOT, SWEEP.metric, SWEEP.mode, SWEEP.trials, rounds=planned_rounds()
    )


onsuccess:
    print_summary()
