# Packed trials (pack > 1): one job trains several trials side by side (docs/packing.md).
# train_pack writes each member's own record in its trial folder; packed_record copies it to
# the record every other rule reads, so pruning, the leaderboard and the plots are unchanged.


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
        budget=pack_budget,
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
    # A copy of a file the pack's job wrote: nothing to retry. A shell command run from the
    # controller's thread pool costs milliseconds; a local `run:` job would start a whole
    # Snakemake process (~1.5 s each, docs/speed.md). cp to a temporary name, then mv: atomic.
    log:
        f"{ROOT}/logs/packs/records/{{trial_id}}-{{budget}}ep.log",
    retries: 0
    localrule: True
    conda:
        "../../environment.yml"
    params:
        packed=lambda wildcards: str(
            packed_result_path(SWEEP.trial_dir(wildcards.trial_id), wildcards.budget)
        ),
    # A shell copy: under the local executor a run: job starts a whole Snakemake process
    # (~1.5 s), a shell: job runs from the controller's thread pool (docs/speed.md). A member
    # record that is gone (its folder deleted to start it over) is said with what to do.
    shell:
        "if [ ! -f {params.packed:q} ]; then"
        ' echo "{params.packed}: missing after its pack job ended. If its trial folder was'
        " deleted to start the trial over, delete its pack's marker {input} as well: the pack"
        ' then trains that member afresh and keeps the others records (docs/retry.md)" >&2;'
        " exit 1; fi;"
        " cp {params.packed:q} {output.result:q}.tmp && mv {output.result:q}.tmp {output.result:q}"
        " && echo copied from {params.packed:q} > {log:q}"
