# Retries (--config retry=failed, docs/retry.md): a request per failed record, which becomes a
# new input of the trial's training job, so that Snakemake runs that job (and the aggregates)
# again. The request keeps the failed record it replaces (snakesweep.store.retry_request).

from snakesweep.store.retry_request import write_request


rule retry_request:
    output:
        f"{ROOT}/{contract.RETRY_REQUEST_PATH}",
    log:
        f"{ROOT}/logs/retries/{{trial_id}}-{{budget}}ep-s{{segments}}.log",
    # Moves one small file: nothing to retry. In the controller's process (run:, not script:).
    retries: 0
    localrule: True
    wildcard_constraints:
        segments="[0-9]+",
    params:
        record=lambda wildcards: record_path(wildcards.trial_id, wildcards.budget),
    run:
        request = write_request(output[0], params.record)
        old = request["replaces"] or {}
        with open(log[0], "w") as f:
            f.write(
                f"retry of {wildcards.trial_id} at {wildcards.budget} epochs; it was "
                f"{old.get('status', 'without a record')}: {old.get('error')}\n"
            )
