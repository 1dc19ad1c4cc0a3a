"""The sweep's figures and `snakemake --report`: a self-contained HTML file with the results."""

import base64
import csv
import json
import re
from pathlib import Path

import pytest
from conftest import echo_config, run_workflow

from snakesweep.report.plots import drawn_trials, plot_learning_curves, plot_metric_vs_params
from snakesweep.report.tables import SweepTables, metrics_frame, trials_frame
from snakesweep.search.sweep import build_sweep


def trial(tid, status, values, params, final="last"):
    """One trial as the tables hold it, and its per-epoch metric rows."""
    row = {
        "trial_id": tid,
        "status": status,
        "epochs": len(values),
        "budget": 3,
        "final": values[-1] if final == "last" else final,
        **{f"params_{k}": v for k, v in params.items()},
    }
    return row, [{"trial_id": tid, "epoch": i, "acc": v} for i, v in enumerate(values, start=1)]


def sample_tables(extra=()):
    """Five finished trials (full budget 3): t3 stopped at rung 1 (SHA), t4 pruned itself (ASHA)."""
    trials = [
        trial("t1", "completed", [0.5, 0.7, 0.9], {"lr": 0.001, "act": "relu", "k": 1}),
        trial("t2", "completed", [0.4, 0.6, 0.8], {"lr": 0.01, "act": "gelu", "k": 1}),
        trial("t3", "pruned", [0.3], {"lr": 0.1, "act": "relu", "k": 1}),
        trial("t4", "pruned", [0.2, 0.25], {"lr": 0.0001, "act": "gelu", "k": 1}),
        trial("t5", "diverged", [0.1, float("nan")], {"lr": 1.0, "act": "relu", "k": 1}, None),
        *extra,
    ]
    return SweepTables(
        root="results/s",
        metric="acc",
        mode="max",
        trials=trials_frame([row for row, _ in trials]),
        metrics=metrics_frame([m for _, rows in trials for m in rows]),
    )


def test_drawn_trials_are_the_finished_ones_at_the_full_budget():
    running = trial("t6", "running", [0.99], {"lr": 0.5, "act": "relu", "k": 1})
    drawn = {r["trial_id"]: r for r in drawn_trials(sample_tables([running]), full_budget=3)}
    assert sorted(drawn) == ["t1", "t2", "t3", "t4", "t5"]  # a running trial is not drawn
    assert {r["budget"] for r in drawn.values()} == {3}
    assert drawn["t3"]["status"] == "pruned" and drawn["t3"]["epochs_done"] == 1
    assert drawn["t5"]["history"] == [{"epoch": 1, "acc": 0.1}, {"epoch": 2}]  # NaN: no value


def test_learning_curves(tmp_path):
    path = tmp_path / "curves.svg"
    drawn = plot_learning_curves(sample_tables(), path, "acc", "max", title="demo curves", budget=3)
    assert drawn["best"] == "t1"
    assert drawn["drawn"] == {"completed": 1, "pruned": 2, "diverged": 1, "best": 1}
    # each line ends where its trial stopped: pruned ones at their rung
    assert drawn["ends"] == {
        "t1": ("completed", 3),
        "t2": ("completed", 3),
        "t3": ("pruned", 1),
        "t4": ("pruned", 2),
        "t5": ("diverged", 2),
    }
    svg = path.read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for text in (
        "demo curves",
        "best t1: acc=0.9",
        "pruned (2) - ends at its rung",
        "diverged (1)",
    ):
        assert text in svg
    assert "Date" not in svg  # no time stamp: the same records give the same file
    again = tmp_path / "again.svg"
    plot_learning_curves(sample_tables(), again, "acc", "max", title="demo curves", budget=3)
    assert again.read_bytes() == path.read_bytes()


def test_metric_against_parameters(tmp_path):
    path = tmp_path / "params.svg"
    info = plot_metric_vs_params(
        sample_tables(), path, "acc", "max", ["act", "k", "lr"], ["lr"], title="demo", budget=3
    )
    # k never varies: no panel; lr is loguniform: log axis; act is text: categorical
    assert info == {
        "panels": {"act": "category", "lr": "log"},
        "shown": 4,
        "hidden": 1,
        "points": {"act": 4, "lr": 4},
    }
    svg = path.read_text()
    for text in ("demo", "lr (log)", "relu", "gelu", "1 trial(s) without a finite acc not shown"):
        assert text in svg
    linear = plot_metric_vs_params(sample_tables(), tmp_path / "lin.svg", "acc", "max", ["lr"])
    assert linear["panels"] == {"lr": "linear"}


def test_figures_with_nothing_to_show(tmp_path):
    empty = SweepTables("results/s", "acc", "min", trials_frame([]), metrics_frame([]))
    assert plot_learning_curves(empty, tmp_path / "a.svg", "acc", "min")["drawn"] == {}
    assert "no metrics reported yet" in (tmp_path / "a.svg").read_text()
    info = plot_metric_vs_params(empty, tmp_path / "b.svg", "acc", "min", ["lr"])
    assert info == {"panels": {}, "shown": 0, "hidden": 0, "points": {}}
    assert "no parameter varies between the trials" in (tmp_path / "b.svg").read_text()


def embedded(html: str, name: str) -> bytes:
    """The bytes of a file the report embeds as a data URI."""
    match = re.search(
        rf"data:[a-z+/-]+;charset=utf8;filename={re.escape(name)};base64,([A-Za-z0-9+/=]+)", html
    )
    assert match, f"{name} is not embedded in the report"
    return base64.b64decode(match.group(1))


@pytest.mark.e2e
def test_report_of_a_small_sweep(tmp_path):
    config = echo_config(tmp_path, ["ab", "nan"], strategy="random", n_trials=2, seed=3)
    config["parameters"] = {
        "behaviour": {"kind": "grid", "values": ["ab", "nan"]},
        "offset": {"kind": "loguniform", "low": 0.1, "high": 10.0},
    }
    plan = build_sweep(config)
    assert len(plan.trials) == 4
    run_workflow(tmp_path, config)
    root = tmp_path / "results" / "echo"
    plots = root / "plots"
    assert sorted(p.name for p in plots.iterdir()) == [
        "learning_curves.svg",
        "metric_by_trial.svg",
        "metric_vs_params.svg",
        "param_importance.svg",
    ]
    log = (root / "logs" / "plots.log").read_text()
    assert "'panels': {'behaviour': 'category', 'offset': 'log'}, 'shown': 2, 'hidden': 2" in log
    # One round (random): no round marks; the best so far from trial 1 (behaviour ab first).
    good_final = [4 + p["offset"] for p in plan.trials.values() if p["behaviour"] == "ab"]
    assert (
        "metric against trial number: {'shown': 2, 'hidden': 2, 'rounds': [], "
        f"'best_so_far': [{good_final[0]!r}, {max(good_final)!r}]}}"
    ) in log
    good = {t: p for t, p in plan.trials.items() if p["behaviour"] == "ab"}
    best = max(good, key=lambda t: good[t]["offset"])
    with open(root / "leaderboard.csv", newline="") as f:
        assert next(csv.DictReader(f))["trial_id"] == best
    curves = (plots / "learning_curves.svg").read_text()
    final = 4 + good[best]["offset"]  # len("ab") * 2 epochs + offset
    assert f"best {best}: score={final:.4g}" in curves
    assert "diverged (2)" in curves and "completed (1)" in curves
    # two trials completed, fewer than fANOVA is asked to explain: the figure says so
    importance = (plots / "param_importance.svg").read_text()
    assert "no importance figure:" in importance and "2 completed trial(s)" in importance

    proc = run_workflow(tmp_path, config, "--report", "report.html")
    report = tmp_path / "report.html"
    assert "Report created" in proc.stdout + proc.stderr
    html = report.read_text()
    # one self-contained file: everything inline, nothing loaded from beside it
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=", html)
    for name in (
        "learning_curves.svg",
        "metric_vs_params.svg",
        "param_importance.svg",
        "metric_by_trial.svg",
        "leaderboard.csv",
    ):
        assert (
            embedded(html, name)
            == (root / ("plots" if name.endswith("svg") else "") / name).read_bytes()
        )
    assert embedded(html, "best.yaml") == (root / "best.yaml").read_bytes()
    for caption in (
        "A hyper-parameter sweep run by snakesweep",
        "Learning curves of sweep",
        "against each hyper-parameter that varies in sweep",
        "in the order the sweep planned the trials",
        "Leaderboard of sweep",
        "Hyper-parameter importance in sweep",
    ):
        assert caption in html
    # the plots are part of a normal run: nothing is left to do
    again = run_workflow(tmp_path, config, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    assert json.loads((root / "trials" / best / "provenance.json").read_text())["trial_id"] == best
    assert Path(report).stat().st_size > 100_000


def test_the_workflow_extra_installs_what_the_report_needs():
    """`pip install '.[workflow]'` then `snakemake --report` must not ask for pygments."""
    import tomllib

    from conftest import REPO

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    workflow = " ".join(extras["workflow"])
    assert "snakemake[reports]" in workflow or "pygments" in workflow
