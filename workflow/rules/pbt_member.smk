# Population based training, one job per member and generation (docs/pbt.md): the member
# resumes its checkpoint (its own, or the copy the generation's decision made) and trains to
# the generation's last epoch with the decision's parameters. Replaces train.smk with `pbt`.


rule train_member:
    input:
        member_segment_inputs,
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
        hparams=member_params,
        trial_dir=trial_dir,
        script=config["script"],
        metric=config["metric"],
        mode=config["mode"],
        checkpoint=config["checkpoint"],
        extra_env={},
    script:
        "../scripts/run_trial.py"
