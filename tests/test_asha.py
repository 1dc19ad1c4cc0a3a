"""AshaRungs: a trial's reports at the sweep's rungs and the decision it keeps."""

import json

from snakesweep.search.asha import AshaRungs
from snakesweep.store import contract


def rungs(tmp_path, trial_id, min_peers=2):
    return AshaRungs(
        directory=tmp_path / "asha",
        trial_id=trial_id,
        rungs=(1, 3, 9),
        eta=3,
        min_peers=min_peers,
        metric="loss",
        mode="min",
    )


def test_from_env_reads_the_workflows_settings_and_is_none_when_off(tmp_path):
    assert AshaRungs.from_env({}) is None
    env = {
        contract.ENV_ASHA_DIR: str(tmp_path),
        contract.ENV_TRIAL_ID: "t1",
        contract.ENV_ASHA_RUNGS: "1,3,9",
        contract.ENV_ASHA_ETA: "3",
        contract.ENV_ASHA_MIN_PEERS: "2",
        contract.ENV_METRIC: "loss",
        contract.ENV_MODE: "min",
    }
    assert AshaRungs.from_env(env) == AshaRungs(tmp_path, "t1", (1, 3, 9), 3, 2, "loss", "min")


def test_epochs_off_a_rung_and_the_last_rung_never_prune(tmp_path):
    asha = rungs(tmp_path, "t1")
    assert asha.should_continue(2, {"loss": 99.0})
    assert asha.should_continue(9, {"loss": 99.0})
    assert not (tmp_path / "asha").exists()


def test_a_trial_is_judged_against_the_peers_reports_and_keeps_its_decision(tmp_path):
    assert rungs(tmp_path, "a").should_continue(1, {"loss": 0.1})  # alone: goes on
    assert not rungs(tmp_path, "b").should_continue(1, {"loss": 0.9})  # worse of 2: pruned
    report = json.loads((tmp_path / "asha" / "rung-1" / "b.json").read_text())
    assert report == {"trial_id": "b", "score": 0.9, "peers": 1, "continue": False}
    # a resumed trial replays its decision even if better peers arrived since
    (tmp_path / "asha" / "rung-1" / "c.json").write_text('{"trial_id": "c", "score": 0.0}')
    assert rungs(tmp_path, "a").should_continue(1, {"loss": 0.1})
    # a peer's report cut short is ignored, not fatal
    (tmp_path / "asha" / "rung-1" / "d.json").write_text('{"trial_id": "d", "sco')
    assert rungs(tmp_path, "e").should_continue(1, {"loss": 0.0})


def test_a_missing_or_non_finite_metric_prunes(tmp_path):
    assert not rungs(tmp_path, "x").should_continue(3, {})
    assert not rungs(tmp_path, "y").should_continue(3, {"loss": float("nan")})
