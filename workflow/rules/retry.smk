# Retries (--config retry=failed, docs/retry.md): a request per failed record, which becomes a
# new input of the trial's training job, so that Snakemake runs that job (and the aggregates)
# again. The request keeps the failed record it replaces (snakesweep.store.retry_request).

from snakesweep.store.retry_request import write_request


rule retry_request:
    output:
        f"{ROOT}/{contract.RETRY_REQUEST_PATH}",
    log:
        f"{ROOT}/logs/retries/{{trial_id}}-{{budget}}ep-s{{segments}}.log",
    wildcard_constraints:
        segments="[0-9]+",
    # Moves one small file: nothing to retry. In the controller's process (run:, not script:).
    retries: 0
    localrule: True
    params:
        record=lambda wildcards: record_path(wildcards.trial_id, wildcards.budget),
    run:
        write_request(output[0], params.record, log[0])
