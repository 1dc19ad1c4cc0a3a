# Training: one job trains one trial up to a budget (in epochs), resuming from its checkpoint.


rule train_trial:
    input:
        retries=trial_retries,
    output:
        result=f"{ROOT}/{contract.RESULT_PATH}",
    log:
        f"{ROOT}/{contract.TRAIN_LOG_PATH}",
    conda:
        "../../environment.yml"
    threads: LAYOUT.threads
    resources:
        **training_resources(),
    params:
        hparams=trial_params,
        trial_dir=trial_dir,
        script=config["script"],
        metric=config["metric"],
        mode=config["mode"],
        checkpoint=config["checkpoint"],
        extra_env=trial_asha_settings,
    script:
        "../scripts/run_trial.py"
