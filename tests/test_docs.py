"""The notebook session of docs/results.md runs, cell by cell, on a small finished demo sweep."""

import re

import pytest
from conftest import REPO, demo_config, run_workflow

DOC = REPO / "docs" / "results.md"


def notebook_cells() -> list[str]:
    """The ``python`` code blocks of the doc's "A notebook session" section, in order."""
    text = DOC.read_text()
    section = text[text.index("### A notebook session") :]
    section = section[: section.index("\n## ")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.e2e
def test_the_pandas_notebook_example_runs_on_a_finished_sweep(tmp_path, monkeypatch):
    run_workflow(tmp_path, demo_config(n_trials=3, epochs=2))  # real training, a few seconds
    monkeypatch.chdir(tmp_path)  # the doc reads results/demo, as from the sweep's directory
    monkeypatch.setenv("MPLBACKEND", "Agg")
    cells = notebook_cells()
    assert len(cells) >= 5 and "snakesweep.load(" in cells[0]
    namespace: dict = {}
    for cell in cells:
        exec(compile(cell, str(DOC), "exec"), namespace)
    trials, metrics = namespace["trials"], namespace["metrics"]
    assert (namespace["sweep"].metric, namespace["sweep"].mode) == ("val_accuracy", "max")
    assert len(trials) == 3 and set(trials["status"]) == {"completed"}
    assert list(trials["final"]) == sorted(trials["final"], reverse=True)  # best first
    assert len(metrics) == 3 * 2 and {"val_accuracy", "val_loss"} <= set(metrics.columns)
    assert namespace["curves"].shape == (2, 3)  # epochs x trials
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert (tmp_path / "final_vs_lr.png").stat().st_size > 0
