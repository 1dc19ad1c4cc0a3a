# snakesweep: a hyper-parameter sweep of PyTorch training as a Snakemake workflow.
# The sweep is defined in config/config.yaml (keys documented in config/README.md).


from snakemake.utils import min_version, validate

from snakesweep.snakemake_glue import (
    check_continuation_retries,
    check_sweep_config,
    take_retry_switch,
)

min_version("9.0")


# The demo sweep, unless --configfile names another one: a sweep file stands on
# its own and is never merged into the demo (--config overrides still apply).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# `--config retry=failed` retrains the failed trials (docs/retry.md); it is not a sweep key.
RETRY = take_retry_switch(config)


# Plain-language errors first (key, value, what is allowed), then Snakemake's
# validation, which also fills in the schema's defaults.
check_sweep_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"


# pbt: members train generation by generation (docs/pbt.md); pack > 1: one job trains
# several trials, or several members' generation (docs/packing.md); else one job per trial.
if config.get("pbt") is not None:

    include: "workflow/rules/pbt_common.smk"
    include: "workflow/rules/pbt.smk"


if config.get("pbt") is not None and config["pack"] == 1:

    include: "workflow/rules/pbt_member.smk"

elif config["pack"] > 1:

    include: "workflow/rules/pack_plan.smk"
    include: "workflow/rules/pack.smk"

else:

    include: "workflow/rules/train.smk"


include: "workflow/rules/retry.smk"
include: "workflow/rules/prune.smk"
include: "workflow/rules/rounds.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


# Every result record is a target too: Snakemake rebuilds a missing file only when something
# asks for it, so a record that is gone (its trial folder deleted, a retry interrupted) is
# trained again by a plain run, and the aggregates follow (docs/retry.md).
rule all:
    default_target: True
    input:
        rules.leaderboard.output,
        rules.plots.output,
        final_results,
        population=f"{ROOT}/plots/population.svg" if SWEEP.pbt else [],


onstart:
    # Snakemake knows `retries` only now, before the first job (not in a dry run).
    check_continuation_retries(workflow, config)
    # The trial set of this run, so that `snakesweep status` can tell stale trial folders, its
    # search space, which `snakesweep export optuna` turns into distributions, and (tpe) how
    # many rounds are planned.
    write_plan(
        ROOT,
        SWEEP.metric,
        SWEEP.mode,
        SWEEP.trials,
        search_space(),
        rounds=planned_rounds(),
    )


onsuccess:
    print_summary()
