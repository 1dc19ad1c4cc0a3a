"""The optional trackers (TensorBoard, W&B offline): the config check, what they write, and a
sweep with one switched on. Real packages, real files; nothing is mocked but a missing package."""

import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import run_workflow
from test_workflow import echo_config

from snakesweep.report import trackers


def read_json(path):
    return json.loads(Path(path).read_text())


def test_enabled_trackers_in_a_fixed_order_and_their_scalars():
    assert trackers.enabled({"wandb": True, "tensorboard": True}) == ["tensorboard", "wandb"]
    assert trackers.enabled({"wandb": True, "tensorboard": False}) == ["wandb"]
    row = {"epoch": 2, "acc": 1, "loss": float("nan"), "ok": True, "note": "x"}
    scalars = trackers.scalars(row)
    assert list(scalars) == ["acc", "loss"] and scalars["acc"] == 1.0
    assert scalars["loss"] != scalars["loss"]  # NaN is kept: a diverged epoch shows


def test_trackers_are_off_by_default():
    assert trackers.check_trackers({}) == []
    assert trackers.check_trackers(None) == []
    assert trackers.check_trackers({"tensorboard": False, "wandb": False}) == []


@pytest.mark.parametrize(
    ("name", "module", "install"),
    [
        (
            "tensorboard",
            "tensorboard",
            "pip install 'snakesweep[tracking]' (or: pip install tensorboard)",
        ),
        ("wandb", "wandb", "pip install wandb"),
    ],
)
def test_a_tracker_that_is_not_installed_is_a_clear_error(monkeypatch, name, module, install):
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    with pytest.raises(trackers.TrackerUnavailable) as error:
        trackers.check_trackers({name: True})
    message = str(error.value)
    assert f"tracking.{name}: true needs the Python package(s) ['{module}']" in message
    assert f"install with `{install}`, or set tracking.{name}: false" in message
    # written after a segment anyway (another environment): reported, not raised
    report = trackers.sync_trackers({name: True}, "/nonexistent", "t", {}, "s", [{"epoch": 1}])
    assert report[name].startswith("error: ")


HIDE_MODULES = "import sys\nfor _m in {modules!r}:\n    sys.modules[_m] = None\n"


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_dry_run_fails_when_a_tracker_is_missing(tmp_path, name):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_MODULES.format(modules=[name]))
    config = echo_config(tmp_path, ["good"], tracking={name: True})
    path = os.pathsep.join(p for p in (str(hide), os.environ.get("PYTHONPATH")) if p)
    proc = run_workflow(tmp_path, config, "-n", check=False, env={"PYTHONPATH": path})
    assert proc.returncode != 0
    assert (
        f"tracking.{name}: true needs the Python package(s) ['{name}']" in proc.stdout + proc.stderr
    )
    assert not (tmp_path / "results").exists()
    # switched off, the same sweep plans fine
    ok = run_workflow(
        tmp_path, {**config, "tracking": {name: False}}, "-n", env={"PYTHONPATH": path}
    )
    assert ok.returncode == 0


def read_tensorboard(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {
        tag: [(s.step, s.value) for s in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_events_mirror_the_history(tmp_path):
    pytest.importorskip("tensorboard")
    history = [
        {"epoch": 1, "score": 0.5, "loss": 2.0, "note": "x"},
        {"epoch": 2, "score": 0.75, "loss": 1.5},
    ]
    folder = trackers.write_tensorboard(tmp_path, history, {"lr": 0.1})
    assert folder == tmp_path / "tensorboard"
    assert read_tensorboard(folder) == {
        "score": [(1, 0.5), (2, 0.75)],
        "loss": [(1, 2.0), (2, 1.5)],
    }
    # rewritten from scratch: a resume that dropped an epoch leaves no stale point
    trackers.write_tensorboard(tmp_path, history[:1], {"lr": 0.1})
    assert read_tensorboard(folder) == {"score": [(1, 0.5)], "loss": [(1, 2.0)]}
    assert len(list(folder.glob("events.out.tfevents.*"))) == 1
    assert not list(tmp_path.glob(".tensorboard.tmp-*"))


def wandb_runs(trial_dir):
    """The raw bytes of each offline W&B run file, oldest first (protobuf keeps strings as-is)."""
    files = sorted((trial_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    return [f.read_bytes() for f in files]


def test_wandb_logs_each_epoch_once_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="install the tracking extra: pip install -e .[tracking]")
    monkeypatch.setenv("WANDB_MODE", "online")  # write_wandb must force offline mode
    history = [{"epoch": 1, "score": 0.123456}, {"epoch": 2, "score": 0.654321}]
    params = {"marker_learning_rate": 0.1}
    assert trackers.write_wandb(tmp_path, "abc123", history, params, "sweepy") == 2
    (first,) = wandb_runs(tmp_path)
    assert b"score" in first and b"0.123456" in first and b"0.654321" in first
    assert b"marker_learning_rate" in first and b"abc123" in first
    assert os.environ["WANDB_MODE"] == "offline"
    # The next segment adds epoch 3 only, to the same run id; with nothing new, no run at all.
    time.sleep(1.1)  # W&B names offline run folders by the second
    history.append({"epoch": 3, "score": 0.777777})
    assert trackers.write_wandb(tmp_path, "abc123", history, params, "sweepy") == 1
    runs = wandb_runs(tmp_path)
    assert len(runs) == 2
    assert b"0.777777" in runs[1] and b"0.123456" not in runs[1] and b"0.654321" not in runs[1]
    assert trackers.write_wandb(tmp_path, "abc123", history, params, "sweepy") == 0
    assert len(wandb_runs(tmp_path)) == 2


@pytest.mark.e2e
def test_a_sweep_with_tensorboard_on(tmp_path):
    pytest.importorskip("tensorboard")
    config = echo_config(tmp_path, ["ab", "abc"], tracking={"tensorboard": True})
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "echo"
    for trial in sorted((root / "trials").iterdir()):
        behaviour = read_json(trial / "params.json")["params"]["behaviour"]
        n = len(behaviour)
        assert read_tensorboard(trial / "tensorboard") == {"score": [(1, float(n)), (2, 2.0 * n)]}
        log = (root / "logs" / "train" / f"{trial.name}-2ep.log").read_text()
        assert f"=== tracking tensorboard: wrote 2 epochs to {trial / 'tensorboard'}" in log
        assert read_json(trial / "provenance.json")["status"] == "completed"


def test_sync_trackers_writes_each_enabled_one_and_reports_it(tmp_path):
    pytest.importorskip("tensorboard")
    history = [{"epoch": 1, "score": 0.5}]
    report = trackers.sync_trackers(
        {"tensorboard": True, "wandb": False}, tmp_path, "t", {"lr": 0.1}, "s", history
    )
    assert report == {"tensorboard": f"wrote 1 epochs to {tmp_path / 'tensorboard'}"}
    assert read_tensorboard(tmp_path / "tensorboard") == {"score": [(1, 0.5)]}
    assert trackers.sync_trackers({}, tmp_path, "t", {}, "s", history) == {}


def test_wandb_with_an_unreadable_state_file_logs_the_whole_history_again(tmp_path):
    """The state is read by the one JSON reader: garbled, it means "nothing logged yet"."""
    pytest.importorskip("wandb", reason="install the tracking extra: pip install -e .[tracking]")
    state = tmp_path / trackers.WANDB_DIR / trackers.WANDB_STATE
    state.parent.mkdir()
    state.write_text('{"last_epoch": 1')  # cut short
    history = [{"epoch": 1, "score": 0.25}, {"epoch": 2, "score": 0.5}]
    assert trackers.write_wandb(tmp_path, "abc123", history, {}, "sweepy") == 2
    assert read_json(state) == {"last_epoch": 2}
