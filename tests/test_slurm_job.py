"""The cluster settings snakesweep reads from ``scontrol show config`` (KillWait, cred_expire),
parsed from text captured on the local cluster (Slurm 22.05.8), without Slurm."""

from __future__ import annotations

import subprocess

from conftest import REPO

from snakesweep.cluster import slurm_job

CAPTURED = (REPO / "tests" / "fixtures" / "scontrol_show_config.txt").read_text()


def test_the_captured_config_gives_killwait_and_cred_expire():
    config = slurm_job.parse_config(CAPTURED)
    assert config["KillWait"] == "5 sec" and slurm_job.kill_wait_s(config) == 5.0
    assert config["AuthInfo"] == "cred_expire=10" and slurm_job.cred_expire_s(config) == 10.0
    assert config["SLURM_VERSION"] == "22.05.8"
    assert config["SchedulerParameters"].startswith("batch_sched_delay=0,")
    # the header and the trailing status line are not settings
    assert not any(key.startswith(("Configuration", "Slurmctld(")) for key in config)


def test_unset_values_fall_back_to_slurms_documented_defaults():
    # a site's munge socket and no cred_expire; no KillWait line at all
    config = slurm_job.parse_config(
        "AuthInfo                = socket=/run/munge/munge.socket.2\nKillWait = (null)\n"
    )
    assert slurm_job.cred_expire_s(config) == slurm_job.DEFAULT_CRED_EXPIRE_S == 120.0
    assert slurm_job.kill_wait_s(config) == slurm_job.DEFAULT_KILL_WAIT_S == 30.0
    both = slurm_job.parse_config("AuthInfo = socket=/x,cred_expire=30\nKillWait = 60 sec\n")
    assert slurm_job.cred_expire_s(both) == 30.0 and slurm_job.kill_wait_s(both) == 60.0


def test_cluster_config_is_none_when_scontrol_cannot_answer():
    def failing(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], 1, "", "slurm_load_ctl_conf error")

    def missing(*args, **kwargs):
        raise FileNotFoundError("scontrol")

    assert slurm_job.cluster_config(run=failing) is None
    assert slurm_job.cluster_config(run=missing) is None

    def answering(*args, **kwargs):
        return subprocess.CompletedProcess(args[0], 0, CAPTURED, "")

    assert slurm_job.kill_wait_s(slurm_job.cluster_config(run=answering)) == 5.0
    # outside a SLURM job nobody asks
    assert slurm_job.kill_wait({}) is None


def test_the_requeued_start_needs_a_job_and_a_whole_number_of_seconds():
    assert slurm_job.hasten_requeued_start({}) == "not in a SLURM job"
    env = {"SLURM_JOB_ID": "7", slurm_job.ENV_REQUEUE_START: "2.5"}
    assert "is not a whole number of seconds" in slurm_job.hasten_requeued_start(env)
