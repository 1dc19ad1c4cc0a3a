"""A user's own training script gets everything the README promises (issue 9).

``tests/fixtures/regress_train.py`` is written only against the public TrialSession API:
a regression (``val_rmse``, ``mode: min``), not the demo's classifier. It is swept with
random search, sha, asha and hyperband, and its best trial is re-trained by pasting the
command ``best.yaml`` prints. Budgets are tiny: each sweep is a few seconds of training.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, echo_config, read_leaderboard, run_workflow

from snakesweep.config_check import script_problems

pytestmark = pytest.mark.e2e

SCRIPT = REPO / "tests" / "fixtures" / "regress_train.py"


def regress_config(**overrides) -> dict:
    """A sweep of the user's script, with relative paths as a user writes them."""
    config = {
        "sweep": "regress",
        "script": "regress_train.py",
        "metric": "val_rmse",
        "mode": "min",
        "epochs": 3,
        "strategy": "random",
        "n_trials": 3,
        "seed": 1,
        "parameters": {
            "lr": {"kind": "loguniform", "low": 0.01, "high": 0.2},
            "hidden": {"kind": "choice", "values": [4, 16]},
            "seed": {"kind": "fixed", "value": 0},
        },
        "resources": {"runtime": 5, "mem_mb": 1000, "cpus": 1, "gpus": 0},
        "checkpoint": {"every_seconds": 30, "keep": 1, "max_continuations": 3},
    }
    config.update(overrides)
    return config


def user_project(path):
    """A folder laid out like a checkout of the repository, plus the user's script."""
    path.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "profiles", "config", "environment.yml"):
        (path / name).symlink_to(REPO / name)
    shutil.copy(SCRIPT, path / "regress_train.py")
    return path


def sweep(path, config, *args, check=True):
    return run_workflow(path, config, "--cores", "2", *args, check=check)


def assert_min_ranked(root, n):
    rows = read_leaderboard(root)
    assert len(rows) == n
    completed = [float(r["final"]) for r in rows if r["status"] == "completed"]
    assert completed, rows
    assert completed == sorted(completed)  # mode min: smallest val_rmse ranks first
    best = yaml.safe_load((root / "best.yaml").read_text())
    assert best["metric"] == "val_rmse" and best["mode"] == "min"
    assert rows[0]["status"] == "completed"
    assert best["parameters"]["lr"]["value"] == float(rows[0]["param_lr"])
    return rows


@pytest.fixture(scope="module")
def random_sweep(tmp_path_factory):
    path = user_project(tmp_path_factory.mktemp("random"))
    proc = sweep(path, regress_config())
    return path, proc


def test_random_sweep_ranks_by_smallest_metric(random_sweep):
    path, proc = random_sweep
    assert proc.returncode == 0
    assert_min_ranked(path / "results" / "regress", 3)
    assert "NO USABLE RESULT" not in proc.stdout


def test_best_yaml_is_a_standalone_sweep_of_the_best_trial(random_sweep):
    path, _ = random_sweep
    root = path / "results" / "regress"
    best = yaml.safe_load((root / "best.yaml").read_text())
    config = regress_config()
    assert best["sweep"] == "regress-best"
    assert best["script"] == "regress_train.py"
    assert best["strategy"] == "grid" and "n_trials" not in best
    assert best["pruning"] == {"method": "none"}
    for key in ("resources", "checkpoint"):
        for name, value in config[key].items():
            assert best[key][name] == value, (key, name)
    assert best["tracking"] == {"tensorboard": False, "wandb": False}
    assert best["epochs"] == 3
    assert {p["kind"] for p in best["parameters"].values()} == {"fixed"}
    assert set(best["parameters"]) == {"lr", "hidden", "seed"}


def test_pasting_best_yaml_header_retrains_the_same_metric(random_sweep):
    path, _ = random_sweep
    root = path / "results" / "regress"
    text = (root / "best.yaml").read_text()
    command = [line for line in text.splitlines() if line.startswith("#   snakemake ")]
    assert len(command) == 1, text
    argv = shlex.split(command[0].lstrip("# "))
    assert argv[0] == "snakemake"
    proc = subprocess.run(
        [*SNAKEMAKE, *argv[1:]],
        cwd=path,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_leaderboard(root)
    again = read_leaderboard(path / "results" / "regress-best")
    assert len(again) == 1 and again[0]["status"] == "completed"
    assert float(again[0]["final"]) == float(rows[0]["final"])
    assert float(again[0]["param_lr"]) == float(rows[0]["param_lr"])


@pytest.mark.parametrize(
    "method,n",
    [("sha", 3), ("asha", 3), ("hyperband", 5)],
)
def test_pruned_sweeps_of_a_user_script(tmp_path, method, n):
    path = user_project(tmp_path)
    config = regress_config(pruning={"method": method, "eta": 3, "min_t": 1, "min_peers": 1})
    if method != "asha":
        config["pruning"].pop("min_peers")
    proc = sweep(path, config)
    root = path / "results" / "regress"
    rows = assert_min_ranked(root, n)
    # One convention for pruned trials: epochs done out of the sweep's full budget.
    for row in rows:
        assert row["budget"] == "3", row
    assert any(r["status"] == "pruned" for r in rows) or method == "asha"
    if method == "hyperband":
        assert "hyperband' plans 5 trials in 2 brackets" in proc.stderr
        assert "n_trials (3) is not used" in proc.stderr


def test_dry_run_names_a_missing_script(tmp_path):
    path = user_project(tmp_path)
    proc = run_workflow(path, regress_config(script="no_such_train.py"), "-n", check=False)
    assert proc.returncode == 1
    assert "script: 'no_such_train.py' does not exist" in proc.stderr
    # The message alone: no traceback lines into the Snakefile or snakesweep.
    assert 'File "' not in proc.stderr and "Traceback" not in proc.stderr
    assert not (path / "results").exists()


def test_dry_run_rejects_a_script_that_is_not_a_file(tmp_path):
    path = user_project(tmp_path)
    (path / "train_dir").mkdir()
    proc = run_workflow(path, regress_config(script="train_dir"), "-n", check=False)
    assert proc.returncode == 1 and "script: 'train_dir' is not a file" in proc.stderr


def test_an_unreadable_script_is_named(tmp_path, monkeypatch):
    """Root (CI) reads any file, so the permission answer itself is what this test sets."""
    (tmp_path / "train.py").write_text("print('hi')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.R_OK)
    assert script_problems({"script": "train.py"}) == [
        f"script: 'train.py' is not readable ({tmp_path / 'train.py'})"
    ]


def test_a_script_killed_at_startup_fails_at_once(tmp_path):
    path = user_project(tmp_path)
    (path / "abort_train.py").write_text("import os\nos.abort()\n")
    proc = sweep(path, regress_config(script="abort_train.py", n_trials=1), check=False)
    root = path / "results" / "regress"
    rows = read_leaderboard(root)
    assert rows[0]["status"] == "failed"
    assert "killed by SIGABRT before it reported an epoch" in rows[0]["error"]
    events = (root / "trials" / rows[0]["trial_id"] / "segments.jsonl").read_text().splitlines()
    assert len(events) == 2  # one segment: started, ended; never continued
    # Nothing usable: non-zero exit, and the summary says so first.
    assert proc.returncode == 1
    assert proc.stdout.lstrip().startswith("snakesweep: sweep 'regress' produced NO USABLE RESULT")


def test_all_diverged_sweep_with_log_parameters_still_aggregates(tmp_path):
    path = user_project(tmp_path)
    # lr far too large: every trial's val_rmse becomes inf/nan
    config = regress_config(
        parameters={
            "lr": {"kind": "loguniform", "low": 1e6, "high": 1e7},
            "hidden": {"kind": "int", "low": 4, "high": 64, "log": True},
        },
        n_trials=2,
        epochs=2,
    )
    proc = sweep(path, config, check=False)
    root = path / "results" / "regress"
    rows = read_leaderboard(root)
    assert {r["status"] for r in rows} == {"diverged"}, rows
    assert (root / "plots" / "metric_vs_params.svg").exists()
    assert (root / "plots" / "learning_curves.svg").exists()
    assert "no trial completed with a finite val_rmse" in (root / "best.yaml").read_text()
    assert proc.returncode == 1 and "NO USABLE RESULT" in proc.stdout


def test_all_failed_sweep_exits_1_and_partial_failure_exits_0(tmp_path):
    proc = run_workflow(tmp_path / "all", echo_config(tmp_path / "all", ["crash"]), check=False)
    assert proc.returncode == 1
    first = proc.stdout.lstrip().splitlines()[0]
    assert first.startswith("snakesweep: sweep 'echo' produced NO USABLE RESULT")
    assert "FAILED" in proc.stdout
    proc = run_workflow(tmp_path / "some", echo_config(tmp_path / "some", ["crash", "good"]))
    assert proc.returncode == 0 and "FAILED" in proc.stdout
    assert "NO USABLE RESULT" not in proc.stdout


def test_all_pruned_leaderboard_says_why_nothing_is_best(tmp_path):
    """ASHA can stop every trial at its first rung: nothing is best, epochs read 1/9."""
    from snakesweep.report.leaderboard import write_leaderboard
    from snakesweep.store.atomic import write_json
    from snakesweep.store.trial_folder import result_path

    root = tmp_path / "results" / "s"
    for i, tid in enumerate(["a" * 12, "b" * 12]):
        record = {
            "trial_id": tid,
            "status": "pruned",
            "metric": "val_rmse",
            "mode": "min",
            "final": 1.0 + i,
            "best": 1.0 + i,
            "best_epoch": 1,
            "epochs_done": 1,
            "budget": 9,
            "params": {"lr": 10.0 ** -(i + 1), "epochs": 9},
            "history": [{"epoch": 1, "val_rmse": 1.0 + i}],
        }
        write_json(result_path(root / "trials" / tid, 9), record)
    write_leaderboard(
        root,
        ["a" * 12, "b" * 12],
        tmp_path / "lb.csv",
        tmp_path / "best.yaml",
        "s",
        "val_rmse",
        "min",
        9,
        (1, 3, 9),
    )
    rows = read_leaderboard_csv(tmp_path / "lb.csv")
    assert {r["status"] for r in rows} == {"pruned"}
    assert [(r["epochs_done"], r["budget"], r["rung"]) for r in rows] == [("1", "9", "0")] * 2
    assert "no trial completed with a finite val_rmse" in (tmp_path / "best.yaml").read_text()


def read_leaderboard_csv(path):
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_regress_script_keeps_state_by_hand(tmp_path):
    """The README's by-hand path: --trial-dir keeps metrics and checkpoints."""
    env = {**os.environ}
    for key in [k for k in env if k.startswith("SNAKESWEEP_")]:
        env.pop(key)
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--lr=0.05",
            "--epochs=2",
            f"--trial-dir={tmp_path / 'try1'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = (tmp_path / "try1" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2
    assert math.isfinite(json.loads(metrics[-1])["val_rmse"])


def test_status_without_config_uses_the_last_runs_trial_set(random_sweep, capsys):
    from snakesweep.cli import main

    path, _ = random_sweep
    root = path / "results" / "regress"
    stale = root / "trials" / "0123456789ab"  # a trial of an older config of this sweep
    stale.mkdir()
    (stale / "params.json").write_text(json.dumps({"trial_id": stale.name, "params": {}}))
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert "3 trials: 3 completed" in out
    assert "trial set of the last run" in out
    assert "1 STALE trial folder(s)" in out and "0123456789ab" in out


def test_status_with_config_shows_planned_trials_params_before_any_run(tmp_path, capsys):
    from snakesweep.cli import main

    path = user_project(tmp_path)
    configfile = path / "sweep.yaml"
    configfile.write_text(yaml.safe_dump(regress_config(results_dir=str(path / "results"))))
    proc = run_workflow(path, regress_config(), "-n")
    assert not (path / "results").exists()  # a dry run writes nothing, not even the plan
    assert "train_trial" in proc.stdout
    assert main(["status", "--config", str(configfile)]) == 0
    out = capsys.readouterr().out
    assert "3 pending" in out and "pending (planned, not started):" in out
    assert "hidden" in out and "lr" in out
