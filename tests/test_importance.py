"""The importance figure: Optuna's fANOVA on the completed trials, seeded; or why it is absent."""

import html
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_status import end, make_trial, start

from snakesweep.report.importance import MIN_COMPLETED, param_importances
from snakesweep.report.optuna_export import export_sweep, load_trials
from snakesweep.report.optuna_trials import DIRECTIONS, space_distributions, sweep_trials
from snakesweep.report.plots import plot_importance
from snakesweep.report.status import scan_sweep

SPACE = {
    "strategy": "random",
    "parameters": {
        "lr": {"kind": "loguniform", "low": 0.0001, "high": 1.0},
        "act": {"kind": "choice", "values": ["relu", "gelu"]},
        "seed": {"kind": "fixed", "value": 0},
    },
}
LRS = [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]


def build_sweep_folder(root, outcomes):
    """One trial per ``(lr, act, outcome, final)``, each a finished segment at budget 2.

    ``outcome`` is what the launcher recorded; the metric is ``final`` at epoch 2 (half of it
    at epoch 1), so a completed trial's ``final`` is its Optuna value.
    """
    for i, (lr, act, outcome, final) in enumerate(outcomes):
        tid = f"b{i:011x}"
        params = {"lr": lr, "act": act, "seed": 0, "epochs": 2}
        rows = [{"epoch": 1, "acc": final / 2}, {"epoch": 2, "acc": final}]
        if outcome == "pruned":
            rows = rows[:1]
        make_trial(
            root,
            tid,
            params,
            segments=[start(1, budget=2, t=1000.0 + i), end(1, outcome, t=1010.0 + i)],
            metrics=rows,
            results={len(rows): (outcome, "boom" if outcome == "failed" else None)},
        )
    return root


def importance_of(root):
    status = scan_sweep(root, "acc", "max")
    trials = sweep_trials(status, space_distributions(SPACE))
    return param_importances(trials, DIRECTIONS["max"], "acc")


def test_the_parameter_that_drives_the_metric_comes_first(tmp_path):
    # acc falls with |log10(lr) + 2| (best at lr = 0.01); act changes it by a hair
    outcomes = [
        (lr, act, "completed", 1.0 - abs(math.log10(lr) + 2) / 4 + (0.001 if act == "gelu" else 0))
        for lr, act in zip(LRS, ["relu", "gelu"] * 5, strict=False)
    ]
    root = build_sweep_folder(tmp_path / "results" / "imp", outcomes)
    result = importance_of(root)
    assert result.reason is None and result.completed == 9
    assert list(result.importances) == ["lr", "act"]  # seed is fixed: not a bar
    assert result.importances["lr"] > 0.5  # more than all the others together
    assert math.isclose(sum(result.importances.values()), 1.0)
    # seeded: the same trials give the same numbers, in this process and in another
    assert importance_of(root).importances == result.importances
    code = (
        "import sys; sys.path[:0] = sys.argv[1:2]\n"
        "from test_importance import importance_of\n"
        "print(repr(importance_of(sys.argv[2]).importances))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(root)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == repr(result.importances)
    path = tmp_path / "importance.svg"
    drawn = plot_importance(result, path, title="imp: importance")
    assert drawn == {"importances": result.importances, "completed": 9, "reason": None}
    svg = path.read_text()
    for text in ("imp: importance", "fANOVA (Optuna, seed 0) over 9 completed trials", "lr", "act"):
        assert text in svg
    again = tmp_path / "again.svg"
    plot_importance(importance_of(root), again, title="imp: importance")
    assert again.read_bytes() == path.read_bytes()


def test_pruned_and_failed_trials_do_not_count(tmp_path):
    outcomes = [(lr, "relu", "completed", 0.5 + i / 100) for i, lr in enumerate(LRS[:4])]
    outcomes += [(0.1, "gelu", "pruned", 0.9), (0.3, "gelu", "failed", 0.0)]
    result = importance_of(build_sweep_folder(tmp_path / "results" / "few", outcomes))
    assert result.importances == {} and result.completed == 4
    assert result.reason == (
        f"4 completed trial(s) with a finite acc; the importance needs at least {MIN_COMPLETED} "
        "(pruned, diverged and failed trials do not count)"
    )


# Sweeps with nothing to explain: they export, and the figure says why there are no bars.
DEGENERATE = {
    "all failed": (
        [(lr, "relu", "failed", 0.0) for lr in LRS[:6]],
        {"COMPLETE": 0, "PRUNED": 0, "FAIL": 6, "RUNNING": 0},
        "0 completed trial(s) with a finite acc",
    ),
    "all pruned": (
        [(lr, "relu", "pruned", 0.5) for lr in LRS[:6]],
        {"COMPLETE": 0, "PRUNED": 6, "FAIL": 0, "RUNNING": 0},
        "0 completed trial(s) with a finite acc",
    ),
    "all NaN": (
        [(lr, "relu", "completed", float("nan")) for lr in LRS[:6]],
        {"COMPLETE": 0, "PRUNED": 0, "FAIL": 6, "RUNNING": 0},
        "0 completed trial(s) with a finite acc",
    ),
    "one value": (
        [(lr, "relu", "completed", 0.5) for lr in LRS[:6]],
        {"COMPLETE": 6, "PRUNED": 0, "FAIL": 0, "RUNNING": 0},
        "all 6 completed trials have the same acc (0.5): there is no variance to explain",
    ),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
def test_degenerate_sweeps_export_and_say_why_there_is_no_importance(case, tmp_path):
    outcomes, counts, reason = DEGENERATE[case]
    root = build_sweep_folder(tmp_path / "results" / "degenerate", outcomes)
    result = export_sweep(root, tmp_path / "study.log")
    assert result.counts == counts
    trials = load_trials(tmp_path / "study.log", "degenerate")
    assert len(trials) == len(outcomes)
    statuses = {t.user_attrs["status"] for t in trials}
    expected = {"all failed": "failed", "all pruned": "pruned", "all NaN": "diverged"}
    assert statuses == {expected.get(case, "completed")}
    if case == "all NaN":  # the launcher's record says diverged: FAIL, NaN at every epoch
        assert all(math.isnan(v) for t in trials for v in t.intermediate_values.values())
        assert all(len(t.intermediate_values) == 2 for t in trials)
    importance = importance_of(root)
    assert importance.importances == {}
    assert importance.reason.startswith(reason)
    path = tmp_path / "importance.svg"
    assert plot_importance(importance, path)["reason"] == importance.reason
    svg = path.read_text()
    assert "no importance figure:" in svg
    for line in textwrap.wrap(importance.reason, 60):  # the reason, as the figure wraps it
        assert html.escape(line, quote=False) in svg


def test_no_parameter_that_varies(tmp_path):
    outcomes = [(0.01, act, "completed", 0.5 + i / 10) for i, act in enumerate(["relu"] * 5)]
    root = tmp_path / "results" / "flat"
    for i, (lr, act, outcome, final) in enumerate(outcomes):
        # the same parameters but for the seed, which the space fixes: five trials, one point
        tid = f"c{i:011x}"
        params = {"lr": lr, "act": act, "seed": 0, "epochs": 2}
        make_trial(
            root,
            tid,
            params,
            segments=[start(1, budget=2), end(1, outcome)],
            metrics=[{"epoch": 1, "acc": final}, {"epoch": 2, "acc": final}],
            results={2: (outcome, None)},
        )
    result = importance_of(root)
    assert result.reason == "no parameter varies between the 5 completed trials"
