"""The trial folder's one reader: segments, counts, records and the JSON-lines reader."""

import io
import json
import math

from conftest import REPO

import snakesweep
from snakesweep import cli
from snakesweep.job.launch import TrialJob
from snakesweep.job.training_job import run_training_job
from snakesweep.store.jsonl import read_json, read_jsonl
from snakesweep.store.trial_folder import (
    append_metrics,
    append_segment_event,
    count_segments,
    exit_seconds,
    finished_end,
    pair_segments,
    read_metrics,
    read_params,
    read_segments,
    read_timings,
    result_path,
    result_records,
    segment_counts,
    segment_end,
    segment_start,
    write_metrics,
    write_params,
    write_result,
)

ECHO = REPO / "tests" / "fixtures" / "echo_train.py"
TRIAL = "0123456789ab"


def start(segment, budget, time=0.0):
    return segment_start(segment, budget, time, "node-a", 4242, None)


def end(segment, outcome, time=1.0, exit_code=0):
    return segment_end(segment, time, exit_code, outcome)


def test_what_the_writers_write_the_readers_read(tmp_path):
    write_params(tmp_path, TRIAL, {"lr": 0.1, "epochs": 2})
    assert read_params(tmp_path) == {"lr": 0.1, "epochs": 2}
    events = [start(1, 2, time=10.0), end(1, "continue", time=12.5, exit_code=75)]
    events += [start(2, 2, time=20.0)]
    for event in events:
        append_segment_event(tmp_path, event)
    assert read_segments(tmp_path) == events
    (segment, running) = pair_segments(read_segments(tmp_path), running=True)
    assert (segment["duration_s"], segment["outcome"], running["outcome"]) == (
        2.5,
        "continue",
        "running",
    )
    rows = [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": float("nan")}]
    for row in rows:
        append_metrics(tmp_path, row)
    assert read_metrics(tmp_path)[0] == rows[0] and math.isnan(read_metrics(tmp_path)[1]["loss"])
    write_metrics(tmp_path, rows[:1])  # a resume drops the epoch reported after the last save
    assert read_metrics(tmp_path) == rows[:1]
    write_result(result_path(tmp_path, 2), {"status": "completed", "final": 0.5})
    assert result_records(tmp_path) == {2: {"status": "completed", "final": 0.5}}


def test_jsonl_reader_skips_a_line_cut_short_and_reads_the_rest(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"epoch": 1, "loss": 0.5}\n[1, 2]\n{"epoch": 2, "loss": 0.4}\n{"epoch": 3, "lo'
    )
    assert read_jsonl(path) == [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.4}]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


def test_json_reader_gives_none_for_missing_garbled_or_non_objects(tmp_path):
    (tmp_path / "ok.json").write_text('{"a": 1}')
    (tmp_path / "cut.json").write_text('{"a": ')
    (tmp_path / "list.json").write_text("[1]")
    assert read_json(tmp_path / "ok.json") == {"a": 1}
    assert [read_json(tmp_path / n) for n in ("cut.json", "list.json", "none.json")] == [None] * 3


def test_result_records_are_keyed_by_budget_and_skip_unreadable_ones(tmp_path):
    result_path(tmp_path, 2).write_text('{"status": "completed"}')
    result_path(tmp_path, 4).write_text("{")
    (tmp_path / "result-x.json").write_text("{}")
    assert result_records(tmp_path) == {2: {"status": "completed"}}
    assert result_records(tmp_path / "missing") == {}


def test_each_later_segment_is_a_resume_a_relaunch_or_a_promotion():
    events = [
        start(1, 2),
        end(1, "continue"),  # time limit: saved, continued
        start(2, 2),  # lost: killed without an end event
        start(3, 2),
        end(3, "failed", exit_code=1),
        start(4, 2),
        end(4, "completed"),  # failed, run again
        start(5, 4),
        end(5, "completed"),  # a rung: promoted
    ]
    counts = segment_counts(events)
    assert (counts.segments, counts.resumes, counts.relaunches, counts.promotions) == (5, 1, 2, 1)
    assert counts.restarts == 3
    assert [s["outcome"] for s in pair_segments(events)] == [
        "continue",
        "lost",
        "failed",
        "completed",
        "completed",
    ]
    assert count_segments([]).restarts == 0


def test_a_lower_budget_after_a_higher_one_is_a_revisit_not_a_restart():
    """A trial two Hyperband brackets share: trained to 4 in one, then to rungs 1 and 2."""
    events = [start(1, 4), end(1, "completed"), start(2, 1), end(2, "completed")]
    events += [start(3, 2), end(3, "completed")]
    counts = segment_counts(events)
    assert (counts.revisits, counts.promotions, counts.restarts) == (1, 1, 0)


def test_finished_end_is_the_final_outcome_at_that_budget():
    events = [start(1, 2), end(1, "completed"), start(2, 4), end(2, "continue", exit_code=75)]
    assert finished_end(events[:2], 2) == events[1]
    assert finished_end(events, 4) is None and finished_end(events, 2) is None


def test_record_status_and_provenance_agree_on_restarts_over_three_rungs(tmp_path, monkeypatch):
    """An uninterrupted SHA trial promoted over rungs 1, 2, 3: three segments, no restart,
    two promotions, whoever is asked (they used to say 0, 2 and 0)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    root = tmp_path / "results" / "sha"
    trial_dir = root / "trials" / TRIAL
    for budget in (1, 2, 3):
        job = TrialJob(
            trial_id=TRIAL,
            trial_dir=trial_dir,
            params={"behaviour": "good", "epochs": 3},
            script=str(ECHO),
            budget=budget,
            metric="score",
            mode="max",
            result_path=result_path(trial_dir, budget),
            log_path=root / "logs" / f"{TRIAL}-{budget}ep.log",
        )
        assert run_training_job(job, None) == 0
    record = read_json(result_path(trial_dir, 3))
    provenance = read_json(trial_dir / "provenance.json")
    out = io.StringIO()
    assert cli.main(["status", str(root), "--json"], out=out) == 0
    (status,) = json.loads(out.getvalue())["trials"]
    assert (record["status"], status["state"]) == ("completed", "completed")
    assert (record["segments"], record["restarts"]) == (3, 0)
    assert (status["segments"], status["restarts"]) == (3, 0)
    assert (provenance["n_segments"], provenance["restarts"], provenance["promotions"]) == (3, 0, 2)
    # and the pandas tables, which the leaderboard is made from
    trials = snakesweep.load(root).trials
    assert (trials["segments"][0], trials["restarts"][0]) == (3, 0)


def test_the_exit_estimate_is_the_slowest_of_the_last_three_measured_exits():
    assert exit_seconds([{"event": "start"}, {"event": "end"}]) is None
    exits = [{"event": "exit", "exit_s": s} for s in (9.0, 0.4, 0.7, 0.5)]
    assert exit_seconds(exits) == 0.7  # 9.0 is older than the last three
    assert exit_seconds([*exits, {"event": "exit", "exit_s": "garbled"}]) == 0.7


def test_timings_are_read_from_the_checkpoint_folder(tmp_path):
    assert read_timings(tmp_path) == {}
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "timings.json").write_text('{"save_s": 0.2, "x": "y", "n": -1}')
    assert read_timings(tmp_path) == {"save_s": 0.2}
