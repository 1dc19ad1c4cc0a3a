"""A real browser: optuna-dashboard serves an exported sweep and headless Chromium reads the
page, while the sweep goes on (scripts/dashboard_check.py does the browsing)."""
# ruff: noqa: F401, F811  (sweep_in_progress, imported from test_status, is a fixture)

import sys

import pytest
from conftest import REPO
from test_optuna_export import advance
from test_status import sweep_in_progress

from snakesweep.report.optuna_export import export_sweep

sys.path.insert(0, str(REPO / "scripts"))
import dashboard_check  # noqa: E402

pytestmark = pytest.mark.browser


def test_the_dashboard_shows_the_sweep_and_follows_it_live(sweep_in_progress, tmp_path, capsys):
    # the documented script: export, serve, load the page, compare with the journal
    assert dashboard_check.main([str(sweep_in_progress), "--expect", "9"]) == 0
    assert "dashboard page: 9 Trials; 9 listed" in capsys.readouterr().out

    # a dashboard left open on the journal while later exports append to it
    path = tmp_path / "live.log"
    export_sweep(sweep_in_progress, path)
    chromium = dashboard_check.find_chromium()
    study_id, _ = dashboard_check.journal_trials(path, "busy")
    with dashboard_check.dashboard(path) as url:
        page = f"{url}/dashboard/studies/{study_id}/trials"
        count, states = dashboard_check.shown_trials(dashboard_check.page_text(chromium, page))
        # trials in the order they started (here: by id), each in its Optuna state
        assert count == 9
        assert states == {
            0: "Running",
            1: "Complete",
            2: "Running",  # waiting to be continued
            3: "Fail",
            4: "Fail",  # diverged
            5: "Pruned",
            6: "Pruned",
            7: "Running",
            8: "Running",  # waiting for its next job
        }
        advance(sweep_in_progress)  # trial 0 completes, trial 9 starts
        assert export_sweep(sweep_in_progress, path).action == "updated"
        count, states = dashboard_check.shown_trials(dashboard_check.page_text(chromium, page))
        assert count == 10
        assert (states[0], states[9]) == ("Complete", "Running")
