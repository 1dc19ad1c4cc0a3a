"""The sweep's figures and `snakemake --report`: a self-contained HTML file with the results."""

import base64
import csv
import json
import re
from pathlib import Path

import pytest
from conftest import echo_config, run_workflow

from snakesweep.plots import latest_records, plot_learning_curves, plot_metric_vs_params
from snakesweep.sweep import build_sweep


def record(tid, status, values, budget, params, final="last"):
    history = [{"epoch": i, "acc": v} for i, v in enumerate(values, start=1)]
    return {
        "trial_id": tid,
        "status": status,
        "budget": budget,
        "epochs_done": len(values),
        "final": values[-1] if final == "last" else final,
        "params": params,
        "history": history,
    }


def sample_records():
    """Five trials (full budget 3); one has records at two rungs, one stopped at rung 1."""
    return [
        record("t1", "completed", [0.5, 0.7, 0.9], 3, {"lr": 0.001, "act": "relu", "k": 1}),
        record("t2", "completed", [0.4], 1, {"lr": 0.01, "act": "gelu", "k": 1}),
        record("t2", "completed", [0.4, 0.6, 0.8], 3, {"lr": 0.01, "act": "gelu", "k": 1}),
        # completed rung 1 and was not promoted: drawn as pruned, ending at epoch 1
        record("t3", "completed", [0.3], 1, {"lr": 0.1, "act": "relu", "k": 1}),
        # stopped itself (ASHA) at epoch 2
        record("t4", "pruned", [0.2, 0.25], 2, {"lr": 0.0001, "act": "gelu", "k": 1}),
        record("t5", "diverged", [0.1, float("nan")], 3, {"lr": 1.0, "act": "relu", "k": 1}, None),
    ]


def test_latest_record_per_trial():
    latest = {r["trial_id"]: r for r in latest_records(sample_records(), full_budget=3)}
    assert sorted(latest) == ["t1", "t2", "t3", "t4", "t5"]
    assert latest["t2"]["budget"] == 3 and latest["t2"]["status"] == "completed"
    assert latest["t3"]["status"] == "pruned"  # below the full budget, not promoted
    assert latest["t4"]["status"] == "pruned"


def test_learning_curves(tmp_path):
    path = tmp_path / "curves.svg"
    drawn = plot_learning_curves(
        sample_records(), path, "acc", "max", title="demo curves", budget=3
    )
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
    plot_learning_curves(sample_records(), again, "acc", "max", title="demo curves", budget=3)
    assert again.read_bytes() == path.read_bytes()


def test_metric_against_parameters(tmp_path):
    path = tmp_path / "params.svg"
    info = plot_metric_vs_params(
        sample_records(), path, "acc", "max", ["act", "k", "lr"], ["lr"], title="demo", budget=3
    )
    # k never varies: no panel; lr is loguniform: log axis; act is text: categorical
    assert info == {"panels": {"act": "category", "lr": "log"}, "shown": 4, "hidden": 1}
    svg = path.read_text()
    for text in ("demo", "lr (log)", "relu", "gelu", "1 trial(s) without a finite acc not shown"):
        assert text in svg
    linear = plot_metric_vs_params(sample_records(), tmp_path / "lin.svg", "acc", "max", ["lr"])
    assert linear["panels"] == {"lr": "linear"}


def test_figures_with_nothing_to_show(tmp_path):
    assert plot_learning_curves([], tmp_path / "a.svg", "acc", "min")["drawn"] == {}
    assert "no metrics reported yet" in (tmp_path / "a.svg").read_text()
    info = plot_metric_vs_params([], tmp_path / "b.svg", "acc", "min", ["lr"])
    assert info == {"panels": {}, "shown": 0, "hidden": 0}
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
        "metric_vs_params.svg",
    ]
    log = (root / "logs" / "plots.log").read_text()
    assert "'panels': {'behaviour': 'category', 'offset': 'log'}, 'shown': 2, 'hidden': 2" in log
    good = {t: p for t, p in plan.trials.items() if p["behaviour"] == "ab"}
    best = max(good, key=lambda t: good[t]["offset"])
    with open(root / "leaderboard.csv", newline="") as f:
        assert next(csv.DictReader(f))["trial_id"] == best
    curves = (plots / "learning_curves.svg").read_text()
    final = 4 + good[best]["offset"]  # len("ab") * 2 epochs + offset
    assert f"best {best}: score={final:.4g}" in curves
    assert "diverged (2)" in curves and "completed (1)" in curves

    proc = run_workflow(tmp_path, config, "--report", "report.html")
    report = tmp_path / "report.html"
    assert "Report created" in proc.stdout + proc.stderr
    html = report.read_text()
    # one self-contained file: everything inline, nothing loaded from beside it
    assert not re.search(r"<script[^>]+src=", html) and not re.search(r"<link[^>]+href=", html)
    for name in ("learning_curves.svg", "metric_vs_params.svg", "leaderboard.csv"):
        assert (
            embedded(html, name)
            == (root / ("plots" if name.endswith("svg") else "") / name).read_bytes()
        )
    assert embedded(html, "best.yaml") == (root / "best.yaml").read_bytes()
    for caption in (
        "A hyper-parameter sweep run by snakesweep",
        "Learning curves of sweep",
        "against each hyper-parameter that varies in sweep",
        "Leaderboard of sweep",
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
