# Packed trials (pack > 1): one job trains several trials side by side (docs/packing.md).
# train_pack writes each member's own record in its trial folder; packed_record copies it to
# the record every other rule reads, so pruning, the leaderboard and the plots are unchanged.

from snakesweep.job.pack_job import copy_packed_record


rule train_pack:
    input:
        pack_decision,
        retries=pack_retries,
    output:
        f"{ROOT}/{contract.PACK_PATH.format(name=PACK_WILDCARDS)}",
    log:
        f"{ROOT}/{contract.PACK_LOG_PATH.format(name=PACK_WILDCARDS)}",
    wildcard_constraints:
        pack="[0-9]+",
        digest="[0-9a-f]{8}",
    conda:
        "../../environment.yml"
    threads: pack_threads
    resources:
        **pack_resources(),
    params:
        members=pack_members,
        budget=lambda wildcards: SWEEP.brackets[int(wildcards.bracket)].budgets[
            int(wildcards.rung)
        ],
        state=lambda wildcards: f"{ROOT}/{contract.PACK_STATE_PATH.format(name=the_pack(wildcards).name)}",
        slots=pack_size_slots,
        cpus=config["resources"]["cpus"],
        gpus=config["resources"]["gpus"],
        script=config["script"],
        metric=config["metric"],
        mode=config["mode"],
        checkpoint=config["checkpoint"],
        extra_env=pack_asha_settings,
    script:
        "../scripts/run_pack.py"


rule packed_record:
    input:
        pack_of_record,
    output:
        result=f"{ROOT}/{contract.RESULT_PATH}",
    # A copy of a file the pack's job wrote: nothing to retry. In the controller's process
    # (run:, not script:), so that a record costs no Python start.
    log:
        f"{ROOT}/logs/packs/records/{{trial_id}}-{{budget}}ep.log",
    retries: 0
    localrule: True
    params:
        packed=lambda wildcards: str(
            packed_result_path(SWEEP.trial_dir(wildcards.trial_id), wildcards.budget)
        ),
    run:
        copy_packed_record(params.packed, output.result, log[0], input[0])
