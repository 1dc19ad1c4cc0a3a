"""`snakesweep export optuna`: a sweep as an Optuna study in a journal file that Optuna reads."""
# ruff: noqa: F401, F811  (sweep_in_progress, imported from test_status, is a fixture)

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import REPO, echo_config, read_json, read_leaderboard, run_workflow
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from test_status import (
    T0,
    end,
    epochs,
    make_trial,
    start,
    sweep_in_progress,
)

from snakesweep import cli
from snakesweep.job.launch import TrialJob, build_record
from snakesweep.report.optuna_export import (
    WORKER_ID,
    ExportError,
    export_sweep,
    journal_bytes,
    read_sweep,
)
from snakesweep.search.sweep import build_sweep
from snakesweep.store.plan_file import write_plan
from snakesweep.store.trial_folder import (
    append_metrics,
    append_segment_event,
    read_segments,
    result_path,
    write_result,
)


def load(path, name):
    """The study in the journal ``path``, read by Optuna alone."""
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def view(trials):
    """What makes two exports the same study: every trial's number, state, values, params,
    distributions, intermediate values (NaN compared as NaN), user attributes and start."""
    return [
        (
            t.number,
            t.state,
            t.values,
            t.params,
            t.distributions,
            {k: "nan" if math.isnan(v) else v for k, v in t.intermediate_values.items()},
            t.user_attrs,
            t.datetime_start,
        )
        for t in trials
    ]


def by_trial_id(study):
    return {t.user_attrs["trial_id"]: t for t in study.get_trials()}


def finish(root, tid, params, budget, outcome, error=None):
    """Write the result record of ``tid`` at ``budget`` as the launcher does after its segment."""
    trial = root / "trials" / tid
    job = TrialJob(
        trial_id=tid,
        trial_dir=trial,
        params=params,
        script="train.py",
        budget=budget,
        metric="acc",
        mode="max",
        result_path=result_path(trial, budget),
        log_path=root / "logs" / f"{tid}-{budget}ep.log",
    )
    write_result(job.result_path, build_record(job, outcome, error, read_segments(trial)))


def test_every_trial_of_a_sweep_in_progress(sweep_in_progress, tmp_path):
    path = tmp_path / "study.log"
    result = export_sweep(sweep_in_progress, path)
    assert (result.action, result.study) == ("written", "busy")
    assert result.counts == {"COMPLETE": 1, "PRUNED": 2, "FAIL": 2, "RUNNING": 4}
    study = load(path, "busy")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["acc"]
    assert study.user_attrs == {
        "snakesweep_results": str(sweep_in_progress),
        "metric": "acc",
        "mode": "max",
    }
    trials = study.get_trials()
    # every trial that began, in the order they started (all at T0 here: then by id);
    # a0000000000a has params but no segment: pending, not in the study
    assert [t.user_attrs["trial_id"] for t in trials] == [f"a0000000000{i}" for i in range(1, 10)]
    assert [t.number for t in trials] == list(range(9))
    got = {
        t.user_attrs["trial_id"][-1]: (
            t.state,
            t.value,
            {k: "nan" if math.isnan(v) else v for k, v in t.intermediate_values.items()},
            t.user_attrs["status"],
        )
        for t in trials
    }
    running, complete, pruned, fail = (
        TrialState.RUNNING,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAIL,
    )
    assert got == {
        "1": (running, None, {1: 0.5, 2: 0.6}, "running"),  # the line cut short is not an epoch
        "2": (complete, 0.82, {1: 0.7, 2: 0.75, 3: 0.8, 4: 0.82}, "completed"),
        "3": (running, None, {1: 0.65}, "waiting"),
        "4": (fail, None, {}, "failed"),
        "5": (fail, None, {1: "nan", 2: "nan", 3: "nan", 4: "nan"}, "diverged"),
        "6": (pruned, 0.35, {1: 0.3, 2: 0.35}, "pruned"),  # ASHA: stopped itself at its rung
        "7": (pruned, 0.2, {1: 0.2}, "pruned"),  # a synchronous rung did not promote it
        "8": (running, None, {1: 0.9, 2: 0.91}, "running"),
        "9": (running, None, {1: 0.4}, "waiting"),
    }
    # no search space known (no plan, no --config): x's distribution spans the values of every
    # trial, the pending one's (10) included, so that it does not change when that one starts
    for t in trials:
        assert t.params == {"x": int(t.user_attrs["trial_id"][-1])}  # epochs is the budget
        assert t.distributions == {"x": IntDistribution(1, 10)}
        assert t.datetime_start.timestamp() == T0
    assert any("no search space known" in n for n in result.notes)
    failed = {t.user_attrs["trial_id"]: t.user_attrs for t in trials}["a00000000004"]
    assert failed == {
        "trial_id": "a00000000004",
        "status": "failed",
        "epochs": 0,
        "budget": 4,
        "segments": 1,
        "restarts": 0,
        "log": str(sweep_in_progress / "logs" / "a00000000004-4ep.log"),
        "error": "RuntimeError: boom",
    }
    done = by_trial_id(study)["a00000000002"]
    assert done.datetime_complete.timestamp() == T0 + 60  # the segment's end
    # a running trial's log is the one its current segment writes
    assert by_trial_id(study)["a00000000008"].user_attrs["log"] == os.path.join(
        str(sweep_in_progress), "logs", "train", "a00000000008-4ep.log"
    )


def test_the_same_sweep_gives_the_same_file(sweep_in_progress, tmp_path):
    first, second = tmp_path / "one.log", tmp_path / "two.log"
    export_sweep(sweep_in_progress, first)
    # another process, another hash seed: the same bytes
    proc = subprocess.run(
        [sys.executable, "-m", "snakesweep.cli", "export", "optuna", str(sweep_in_progress)]
        + [str(second)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
        check=True,
    )
    assert f"{second}: study 'busy' written; 9 trials" in proc.stdout
    assert first.read_bytes() == second.read_bytes()
    # Optuna's random worker id is replaced, the times are the trials' own
    assert WORKER_ID.encode() in first.read_bytes()
    again = export_sweep(sweep_in_progress, first)
    assert (again.action, again.appended) == ("unchanged", 0)
    assert first.read_bytes() == second.read_bytes()
    assert view(load(first, "busy").get_trials()) == view(load(second, "busy").get_trials())


def advance(root):
    """The sweep_in_progress sweep some minutes later."""
    p = lambda x: {"x": x, "epochs": 4}  # noqa: E731
    one = root / "trials" / "a00000000001"
    with open(one / "metrics.jsonl", "a") as f:
        f.write('c": 0.65}\n')  # the line that was being written is complete now
    append_metrics(one, {"epoch": 4, "acc": 0.7, "loss": 0.3})
    append_segment_event(one, end(1, "completed", t=T0 + 90))
    finish(root, "a00000000001", p(1), 4, "completed")
    three = root / "trials" / "a00000000003"  # waiting: its next segment runs
    append_segment_event(three, start(2, t=T0 + 95))
    append_metrics(three, {"epoch": 2, "acc": 0.66, "loss": 0.34})
    ten = root / "trials" / "a0000000000a"  # pending: it started
    append_segment_event(ten, start(1, t=T0 + 100))
    append_metrics(ten, {"epoch": 1, "acc": 0.1, "loss": 0.9})


def test_a_file_written_before_follows_the_sweep_by_appending(sweep_in_progress, tmp_path):
    # as a run leaves it: plan.json with the trial set and the search space
    planned = {f"a0000000000{i:x}": {"x": i, "epochs": 4} for i in range(1, 11)}
    space = {"strategy": "random", "parameters": {"x": {"kind": "int", "low": 0, "high": 20}}}
    write_plan(sweep_in_progress, "acc", "max", planned, space)
    path = tmp_path / "live.log"
    export_sweep(sweep_in_progress, path)
    before = path.read_bytes()
    # a reader that keeps its storage open, as optuna-dashboard does: it reads only new lines
    reader = JournalStorage(JournalFileBackend(str(path)))
    study_id = reader.get_study_id_from_name("busy")
    assert len(reader.get_all_trials(study_id)) == 9
    advance(sweep_in_progress)
    result = export_sweep(sweep_in_progress, path)
    assert result.action == "updated" and result.appended > 0
    assert path.read_bytes().startswith(before)  # appended, nothing rewritten
    seen = {t.user_attrs["trial_id"]: t for t in reader.get_all_trials(study_id)}
    assert len(seen) == 10 and seen["a0000000000a"].number == 9  # the new trial comes last
    one = seen["a00000000001"]
    assert (one.state, one.value) == (TrialState.COMPLETE, 0.7)
    assert one.intermediate_values == {1: 0.5, 2: 0.6, 3: 0.65, 4: 0.7}
    assert one.user_attrs["status"] == "completed"
    three = seen["a00000000003"]
    assert three.state == TrialState.RUNNING and three.intermediate_values == {1: 0.65, 2: 0.66}
    assert (three.user_attrs["status"], three.user_attrs["segments"]) == ("running", 2)
    # the same study as a fresh export of the sweep as it is now (times of completion aside:
    # a trial that finished while watched completes at the export that saw it)
    fresh = tmp_path / "fresh.log"
    export_sweep(sweep_in_progress, fresh)
    assert view(load(path, "busy").get_trials()) == view(load(fresh, "busy").get_trials())
    assert export_sweep(sweep_in_progress, path).action == "unchanged"


def test_a_trial_that_changed_after_it_finished_rewrites_the_file(sweep_in_progress, tmp_path):
    path = tmp_path / "study.log"
    export_sweep(sweep_in_progress, path)
    # the failed trial runs again after a fix and completes
    four = sweep_in_progress / "trials" / "a00000000004"
    append_segment_event(four, start(2, t=T0 + 200))
    for row in epochs(0.6, 0.7, 0.8, 0.85):
        append_metrics(four, row)
    append_segment_event(four, end(2, "completed", t=T0 + 260))
    finish(sweep_in_progress, "a00000000004", {"x": 4, "epochs": 4}, 4, "completed")
    result = export_sweep(sweep_in_progress, path)
    assert result.action == "rewritten"
    assert result.reason == "trial a00000000004 changed after it finished (FAIL)"
    assert "restart optuna-dashboard" in result.summary()
    assert path.read_bytes() == journal_bytes(read_sweep(sweep_in_progress))
    four = by_trial_id(load(path, "busy"))["a00000000004"]
    assert (four.state, four.value, four.user_attrs["restarts"]) == (TrialState.COMPLETE, 0.85, 1)
    # the other direction is another study: written afresh too
    flipped = export_sweep(sweep_in_progress, path, mode="min")
    assert flipped.action == "rewritten"
    assert flipped.reason == "the study optimised another metric or direction than acc"
    assert load(path, "busy").direction == optuna.study.StudyDirection.MINIMIZE


def test_a_file_that_is_not_this_sweeps_journal_is_left_alone(sweep_in_progress, tmp_path):
    other = tmp_path / "other.log"
    optuna.create_study(study_name="other", storage=JournalStorage(JournalFileBackend(str(other))))
    content = other.read_bytes()
    with pytest.raises(ExportError, match=r"holds the Optuna studies \['other'\], not only 'busy'"):
        export_sweep(sweep_in_progress, other)
    text = tmp_path / "notes.txt"
    text.write_text("my notes\n")
    with pytest.raises(ExportError, match="not an Optuna journal file"):
        export_sweep(sweep_in_progress, text)
    inside = sweep_in_progress / "trials" / "a00000000001" / "study.log"
    with pytest.raises(ExportError, match="lies inside the trial folders"):
        export_sweep(sweep_in_progress, inside)
    assert other.read_bytes() == content and text.read_text() == "my notes\n"
    assert not inside.exists()


def test_the_search_space_gives_the_distributions(tmp_path):
    parameters = {
        "lr": {"kind": "loguniform", "low": 0.001, "high": 0.3},
        "width": {"kind": "int", "low": 16, "high": 256, "log": True},
        "act": {"kind": "choice", "values": ["relu", "gelu", "tanh"]},
        "opt": {"kind": "fixed", "value": "adam"},
    }
    config = {
        "sweep": "space",
        "results_dir": str(tmp_path / "results"),
        "metric": "acc",
        "mode": "max",
        "epochs": 2,
        "n_trials": 3,
        "parameters": parameters,
    }
    configfile = tmp_path / "sweep.yaml"
    configfile.write_text(yaml.safe_dump(config))
    sweep = build_sweep(config)
    root = sweep.root
    for tid, p in sweep.trials.items():
        make_trial(root, tid, p, segments=[start(1, budget=2), end(1, "completed")])
        for row in epochs(0.5, 0.6):
            append_metrics(root / "trials" / tid, row)
        finish(root, tid, p, 2, "completed")
    expected = {
        "act": CategoricalDistribution(["relu", "gelu", "tanh"]),
        "lr": FloatDistribution(0.001, 0.3, log=True),
        "opt": CategoricalDistribution(["adam"]),
        "width": IntDistribution(16, 256, log=True),
    }
    # from --config ...
    result = export_sweep(root, tmp_path / "config.log", config_path=configfile)
    assert result.notes == [] and result.counts["COMPLETE"] == 3
    trials = load(tmp_path / "config.log", "space").get_trials()
    assert len(trials) == 3
    for t in trials:
        assert t.distributions == expected
        wanted = sweep.trials[t.user_attrs["trial_id"]]
        assert t.params == {k: v for k, v in wanted.items() if k != "epochs"}
    # ... or from the last run's plan.json (every run writes it when it starts): the same file
    write_plan(root, "acc", "max", sweep.trials, {"strategy": "random", "parameters": parameters})
    export_sweep(root, tmp_path / "plan.log")
    assert (tmp_path / "plan.log").read_bytes() == (tmp_path / "config.log").read_bytes()
    # a space that does not hold a trial's value is an error that names the trial
    narrow = {**parameters, "lr": {"kind": "uniform", "low": 0.3, "high": 0.4}}
    write_plan(root, "acc", "max", sweep.trials, {"strategy": "random", "parameters": narrow})
    with pytest.raises(ExportError, match=r"trial [0-9a-f]{12}: The value .* 'lr' .*--config"):
        export_sweep(root, tmp_path / "narrow.log")
    assert not (tmp_path / "narrow.log").exists()


def test_the_command_and_its_watch(sweep_in_progress, tmp_path, monkeypatch):
    path = tmp_path / "live.log"
    out = io.StringIO()
    assert cli.main(["export", "optuna", str(sweep_in_progress), str(path)], out=out) == 0
    assert out.getvalue().startswith(
        f"{path}: study 'busy' written; 9 trials: 1 COMPLETE, 2 PRUNED, 2 FAIL, 4 RUNNING\n"
    )
    path.unlink()
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 1:
            advance(sweep_in_progress)  # the sweep goes on between two exports
        if len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli.time, "sleep", sleep)
    out = io.StringIO()
    args = ["export", "optuna", str(sweep_in_progress), str(path), "--watch", "2"]
    assert cli.main(args, out=out) == 0
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    exports = [line.split(" ", 1)[1] for line in lines if not line.startswith("note:")]
    assert naps == [2.0, 2.0, 2.0]
    assert exports[0].startswith(f"{path}: study 'busy' written; 9 trials")
    assert exports[1].startswith(f"{path}: study 'busy' updated (")
    assert exports[1].endswith("10 trials: 2 COMPLETE, 2 PRUNED, 2 FAIL, 4 RUNNING")
    assert exports[2].startswith(f"{path}: study 'busy' unchanged")
    assert len(load(path, "busy").get_trials()) == 10


def test_a_sweep_without_metric_or_mode_asks_for_them(tmp_path, capsys):
    root = tmp_path / "results" / "new"
    (root / "trials").mkdir(parents=True)
    args = ["export", "optuna", str(root), str(tmp_path / "x.log")]
    assert cli.main(args) == 2
    assert "cannot tell the metric and mode" in capsys.readouterr().err
    out = io.StringIO()
    assert cli.main([*args, "--metric", "acc", "--mode", "min"], out=out) == 0
    assert "0 trials" in out.getvalue()
    assert load(tmp_path / "x.log", "new").direction == optuna.study.StudyDirection.MINIMIZE


def test_the_dashboard_extra_and_the_pin():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "optuna==5.0.0" in project["dependencies"]
    assert project["optional-dependencies"]["dashboard"] == ["optuna-dashboard==0.21.0"]
    env = Path(REPO / "environment.yml").read_text()
    assert "optuna=5.0.0" in env and "optuna-dashboard=0.21.0" in env


@pytest.mark.e2e
def test_a_finished_sweep_with_pruned_and_failed_trials_reads_back_in_optuna(tmp_path):
    """A real sweep (SHA rungs at 1 and 3 epochs) exported by the command, then read by Optuna."""
    values = ["a", "bb", "ccc", "ok", "crash", "nan"]
    config = echo_config(
        tmp_path, values, epochs=3, pruning={"method": "sha", "eta": 3, "min_t": 1}
    )
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "echo"
    rows = {row["trial_id"]: row for row in read_leaderboard(root)}
    assert sorted(r["status"] for r in rows.values()) == [
        "completed",
        "completed",
        "diverged",
        "failed",
        "pruned",
        "pruned",
    ]
    path = tmp_path / "echo-optuna.log"
    command = [sys.executable, "-m", "snakesweep.cli", "export", "optuna", str(root), str(path)]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    assert (
        proc.stdout
        == f"{path}: study 'echo' written; 6 trials: 2 COMPLETE, 2 PRUNED, 2 FAIL, 0 RUNNING\n"
    )
    study = load(path, "echo")
    assert (study.direction, study.metric_names) == (
        optuna.study.StudyDirection.MAXIMIZE,
        ["score"],
    )
    trials = study.get_trials()
    assert sorted(t.user_attrs["trial_id"] for t in trials) == sorted(rows)
    state = {"completed": "COMPLETE", "pruned": "PRUNED", "diverged": "FAIL", "failed": "FAIL"}
    for t in trials:
        row = rows[t.user_attrs["trial_id"]]
        behaviour = row["param_behaviour"]
        assert t.state.name == state[row["status"]]
        assert t.params == {"behaviour": behaviour}
        # the search space of the run's plan.json, not values read off the trials
        assert t.distributions == {"behaviour": CategoricalDistribution(values)}
        assert t.value == (float(row["final"]) if t.state.name in ("COMPLETE", "PRUNED") else None)
        records = (root / "trials" / row["trial_id"]).glob("result-*.json")
        newest = max(records, key=lambda p: int(p.stem.split("-")[1]))  # its latest word
        record = read_json(newest)
        trained = int(row["epochs_done"] or 0)
        if behaviour == "crash":
            assert t.intermediate_values == {}
        elif behaviour == "nan":
            assert sorted(t.intermediate_values) == [1] and math.isnan(t.intermediate_values[1])
        else:  # echo_train.py reports score = len(behaviour) * epoch
            expected = {e: float(len(behaviour) * e) for e in range(1, trained + 1)}
            assert t.intermediate_values == expected
            assert [h["epoch"] for h in record["history"]] == list(expected)
        assert t.user_attrs["status"] == row["status"]
        assert t.user_attrs["restarts"] == int(row["restarts"])
        assert t.user_attrs["log"] == row["log"] == record["log"]
        assert t.user_attrs["epochs"] == trained
        assert ("error" in t.user_attrs) == (row["status"] in ("failed", "diverged"))
        assert t.datetime_complete >= t.datetime_start
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert all(sorted(t.intermediate_values) == [1] for t in pruned)  # stopped at rung 0
    # the same sweep, the same file: again in place (nothing to append) and afresh
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "unchanged (nothing new)" in again.stdout
    fresh = tmp_path / "fresh.log"
    subprocess.run(command[:-1] + [str(fresh)], check=True, capture_output=True)
    assert fresh.read_bytes() == path.read_bytes()
    # the report's importance figure says why it has no bars
    svg = (root / "plots" / "param_importance.svg").read_text()
    assert "2 completed trial(s) with a finite score" in svg
    log = (root / "logs" / "plots.log").read_text()
    assert "hyper-parameter importance: {'importances': {}, 'completed': 2," in log
