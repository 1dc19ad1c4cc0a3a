"""Issue 11's guarantees with real ranks: 2 CPU processes (gloo) of ``scripts/train.py`` under
DistributedDataParallel, started by the real launcher (``launch.run_segment`` in its own
process, spawning the ranks), stopped by real signals and real deadlines.

An interrupted 2-process trial must end bit for bit where an uninterrupted 2-process trial
ends: metrics, weights, optimizer, and each rank's own torch generator (the example seeds
each rank's dropout differently, so a rank restored with another rank's generator shows).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from trial_processes import (
    CRASHING_RANK,
    RESUMED,
    STOPPED,
    TOTAL_STEPS,
    assert_identical,
    base_env,
    final_state,
    steps_on_disk,
)

from snakesweep.job.launch import TrialJob, run_segment
from snakesweep.store import contract
from snakesweep.store.trial_folder import read_segments

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "scripts" / "train.py"
PARAMS = {"epochs": 3, "batch_size": 16, "width": 32, "dropout": 0.1, "lr": 0.01, "seed": 3}
EVERY_STEPS = 7
WORLD = 2


def job_fields(tmp: Path, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "trial_id": "ddp0",
        "trial_dir": str(tmp / "trial"),
        "params": PARAMS,
        "script": str(TRAIN),
        "budget": 3,
        "metric": "val_accuracy",
        "mode": "max",
        "result_path": str(tmp / "result-3.json"),
        "log_path": str(tmp / "train.log"),
        "every_steps": EVERY_STEPS,
        "every_seconds": 0.0,
        "deadline_margin_s": 0.3,
        "processes_per_node": WORLD,
    }
    fields.update(overrides)
    return fields


def build_job(fields: dict[str, Any]) -> TrialJob:
    paths = ("trial_dir", "result_path", "log_path")
    return TrialJob(**{k: Path(v) if k in paths else v for k, v in fields.items()})


class Launcher:
    """``run_segment`` of one trial in its own process (this file run with ``--launch``)."""

    def __init__(self, fields: dict[str, Any], env: dict[str, str]) -> None:
        self.fields = fields
        self.popen = subprocess.Popen(
            [sys.executable, __file__, "--launch", json.dumps(fields)],
            env=env,
            stdin=subprocess.DEVNULL,
        )

    @property
    def log(self) -> str:
        return Path(self.fields["log_path"]).read_text()

    def ranks(self) -> dict[int, int]:
        """pid of each rank (children of the launcher, by their RANK variable)."""
        found: dict[int, int] = {}
        pid = self.popen.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return found
        for child in children:
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for item in environ:
                if item.startswith(b"RANK="):
                    found[int(item[5:])] = int(child)
        return found

    def wait(self, timeout: float = 180) -> int:
        return self.popen.wait(timeout)

    def wait_for_step(self, target: int, timeout: float = 120) -> int:
        trial = Path(self.fields["trial_dir"])
        limit = time.monotonic() + timeout
        while time.monotonic() < limit:
            steps = steps_on_disk(trial) if trial.exists() else []
            if steps and steps[0] >= target:
                return steps[0]
            if self.popen.poll() is not None:
                pytest.fail(
                    f"segment ended ({self.popen.returncode}) before step {target}:\n{self.log}"
                )
            time.sleep(0.002)
        pytest.fail(f"no checkpoint of step >= {target} after {timeout} s:\n{self.log}")


def segment_log(fields: dict[str, Any], segment: int) -> str:
    """The output of one segment (the log holds every segment, each after its header)."""
    parts = Path(fields["log_path"]).read_text().split("=== snakesweep trial ")
    return parts[segment]


def assert_matches(fields: dict[str, Any], reference: dict[str, Any]) -> None:
    trial = Path(fields["trial_dir"])
    got = final_state(trial)
    assert got["metrics_bytes"] == reference["metrics_bytes"]
    state, ref = got["state"], reference["state"]
    assert (state["epoch"], state["global_step"]) == (3, TOTAL_STEPS)
    for key in ("objects", "history", "epoch", "position", "global_step", "sums"):
        assert_identical(state[key], ref[key], key)
    assert len(state["ranks"]) == WORLD
    for rank in range(WORLD):
        assert_identical(
            state["ranks"][rank]["rng"]["torch"], ref["ranks"][rank]["rng"]["torch"], f"rng{rank}"
        )
        assert_identical(state["ranks"][rank]["sums"], ref["ranks"][rank]["sums"], f"sums{rank}")
    record = json.loads(Path(fields["result_path"]).read_text())
    assert record["status"] == "completed", record["error"]
    assert record["history"] == reference["metrics"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Any]:
    """One uninterrupted 2-process trial; also how long the ranks take to their first save."""
    tmp = tmp_path_factory.mktemp("ddp-reference")
    fields = job_fields(tmp)
    started = time.monotonic()
    launcher = Launcher(fields, base_env())
    launcher.wait_for_step(EVERY_STEPS)
    startup_s = time.monotonic() - started
    assert launcher.wait() == 0, launcher.log
    result = final_state(Path(fields["trial_dir"]))
    assert result["state"]["global_step"] == TOTAL_STEPS
    ranks = result["state"]["ranks"]
    # each rank's own generator: a copy of rank 0's would make these equal
    assert not ranks[0]["rng"]["torch"].equal(ranks[1]["rng"]["torch"])
    assert json.loads(Path(fields["result_path"]).read_text())["status"] == "completed"
    return {**result, "startup_s": startup_s}


def interrupt(tmp: Path, targets: list[int], whom: list[str], rng: random.Random) -> dict:
    """One segment per target: SIGTERM to the launcher (or to one rank only) once step
    ``target`` is on disk; every segment must exit 75 with all ranks stopped at one step."""
    fields = job_fields(tmp)
    stops: list[int] = []
    for i, (target, who) in enumerate(zip(targets, whom, strict=True)):
        launcher = Launcher(fields, base_env())
        target = max(target, stops[-1] + 1) if stops else target
        launcher.wait_for_step(target)
        time.sleep(rng.uniform(0.0, 0.03))
        if who == "launcher":
            launcher.popen.send_signal(signal.SIGTERM)
        else:  # a signal that reaches one rank only: the other must stop at the same step
            os.kill(launcher.ranks()[int(who[-1])], signal.SIGTERM)
        assert launcher.wait() == contract.EXIT_CONTINUE, launcher.log
        text = segment_log(fields, i + 1)
        # rank 0's log says why: its own signal, or that rank 1 got one (first, when the
        # launcher forwards SIGTERM to both)
        own, other = "received SIGTERM", "another rank received a stop signal"
        why = {"rank0": (own,), "rank1": (other,), "launcher": (own, other)}[who]
        assert any(f"{w}: saving and stopping" in text for w in why), text
        stopped = int(STOPPED.findall(text)[-1])
        assert stopped >= target
        assert steps_on_disk(Path(fields["trial_dir"]))[0] == stopped
        assert f"exit code {contract.EXIT_CONTINUE} -> continue" in text
        assert "ranks ended with" not in text  # every rank exited 75
        if i > 0:
            assert int(RESUMED.search(text).group(2)) == stops[-1]
        stops.append(stopped)
    return {"fields": fields, "stops": stops}


def finish(fields: dict[str, Any], resumed_at: int) -> None:
    launcher = Launcher(fields, base_env())
    assert launcher.wait() == 0, launcher.log
    starts = [e for e in read_segments(Path(fields["trial_dir"])) if e["event"] == "start"]
    text = segment_log(fields, len(starts))
    assert int(RESUMED.search(text).group(2)) == resumed_at, text


def test_one_sigterm(reference, tmp_path):
    rng = random.Random(11)
    target = rng.randrange(20, TOTAL_STEPS // 2)
    run = interrupt(tmp_path, [target], ["launcher"], rng)
    finish(run["fields"], run["stops"][-1])
    assert_matches(run["fields"], reference)


def test_three_sigterms_to_the_launcher_and_to_single_ranks(reference, tmp_path):
    rng = random.Random(13)
    targets = sorted(rng.sample(range(10, 200, 40), 3))
    run = interrupt(tmp_path, targets, ["launcher", "rank1", "rank0"], rng)
    finish(run["fields"], run["stops"][-1])
    assert_matches(run["fields"], reference)


def test_sigkill_of_one_rank_continues_from_the_last_checkpoint(reference, tmp_path):
    rng = random.Random(17)
    fields = job_fields(tmp_path, **{"deadline_margin_s": 0.3})
    env = base_env(**{contract.ENV_RANK_GRACE_SECONDS: 2})
    launcher = Launcher(fields, env)
    target = rng.randrange(30, TOTAL_STEPS // 2)
    launcher.wait_for_step(target)
    time.sleep(rng.uniform(0.005, 0.03))
    os.kill(launcher.ranks()[1], signal.SIGKILL)
    # the killed rank decides: -9 after progress, no stop asked for -> continue
    assert launcher.wait() == contract.EXIT_CONTINUE, launcher.log
    ends = [e for e in read_segments(Path(fields["trial_dir"])) if e["event"] == "end"]
    assert ends[-1]["exit_code"] == -signal.SIGKILL and ends[-1]["outcome"] == "continue"
    last_saved = steps_on_disk(Path(fields["trial_dir"]))[0]
    assert last_saved >= target
    finish(fields, last_saved)
    assert_matches(fields, reference)


#: Sets each rank's deadline once its imports are done: the start-up of a fresh interpreter
#: (seconds, varying with the machine's load) then does not eat the window. Each rank reads
#: its own clock, so the ranks' deadlines differ a little: they must still agree on one step.
DEADLINE_WRAPPER = """
import os, runpy, time
from snakesweep.session.deadline import Deadline
from snakesweep.session import TrialSession
resume = TrialSession.resume
def resume_then_start_the_window(self):
    # the window starts once the ranks have met and resumed, however long that took
    resumed = resume(self)
    self.deadline = Deadline(explicit=time.time() + float(os.environ["WINDOW_S"]))
    return resumed
TrialSession.resume = resume_then_start_the_window
runpy.run_path({train!r}, run_name="__main__")
"""


def test_deadline_over_several_segments(reference, tmp_path):
    """Each segment's deadline is a window after its ranks resumed; the window grows while
    a segment makes fewer than 30 steps and shrinks while it makes more than 120."""
    script = tmp_path / "deadline.py"
    script.write_text(DEADLINE_WRAPPER.format(train=str(TRAIN)))
    fields = job_fields(tmp_path, script=str(script), max_continuations=30)
    window_s = fields["deadline_margin_s"] + 0.5
    codes: list[int] = []
    stops = [0]
    trial = Path(fields["trial_dir"])
    while not codes or codes[-1] != 0:
        assert len(codes) < 25, stops
        codes.append(Launcher(fields, base_env(WINDOW_S=f"{window_s:.3f}")).wait())
        text = segment_log(fields, len(codes))
        if len(codes) > 1:
            assert int(RESUMED.search(text).group(2)) == stops[-1], text
        if codes[-1] == 0:
            break
        assert codes[-1] == contract.EXIT_CONTINUE, text
        # rank 0's own deadline, or rank 1's that came first: either says so
        assert "cannot fit another step" in text, text
        stops.append(int(STOPPED.findall(text)[-1]))
        assert steps_on_disk(trial)[0] == stops[-1]  # its last completed step is saved
        made = stops[-1] - stops[-2]
        window_s = window_s * 1.5 if made < 30 else window_s / 1.5 if made > 120 else window_s
    assert len(codes) >= 3, f"the deadline should have split the training: {stops}"
    assert max(b - a for a, b in zip(stops, stops[1:], strict=False)) >= 10, stops
    assert_matches(fields, reference)


def test_a_crashing_rank_fails_the_trial_promptly_with_its_error(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_RANK.format(train=str(TRAIN)))
    fields = job_fields(tmp_path, script=str(script))
    env = base_env(**{contract.ENV_RANK_GRACE_SECONDS: 2})
    started = time.monotonic()
    assert Launcher(fields, env).wait() == 0
    # far below the collectives' 600 s timeout: nothing waited for a dead peer
    assert time.monotonic() - started < 120
    record = json.loads(Path(fields["result_path"]).read_text())
    assert record["status"] == "failed"
    # rank 1 ends first: its error decides (should rank 0's gloo error about the vanished
    # peer be seen in the same 5 ms poll, rank 0 is named; the traceback is in the log either way)
    assert re.search(r"\(rank [01] of 2\) exited with code 1", record["error"]), record["error"]
    assert "deliberate failure on rank 1 at step 25" in Path(fields["log_path"]).read_text()
    assert record["segments"] == 1 and record["restarts"] == 0


def test_asha_prunes_from_rank_0_and_stops_every_rank(tmp_path):
    """Two better peers at rung 1: rank 0 reports once and decides, both ranks exit 76."""
    asha = tmp_path / "asha"
    for peer, score in (("p1", 0.99), ("p2", 0.995)):
        (asha / "rung-1").mkdir(parents=True, exist_ok=True)
        (asha / "rung-1" / f"{peer}.json").write_text(json.dumps({"score": score}))
    env = base_env(
        **{
            contract.ENV_ASHA_DIR: asha,
            contract.ENV_ASHA_RUNGS: "1,3",
            contract.ENV_ASHA_ETA: 3,
            contract.ENV_ASHA_MIN_PEERS: 2,
        }
    )
    fields = job_fields(tmp_path)
    assert Launcher(fields, env).wait() == 0
    log = Path(fields["log_path"]).read_text()
    assert "pruned by ASHA at epoch 1" in log
    assert f"exit code {contract.EXIT_PRUNED} -> pruned" in log
    assert "ranks ended with" not in log  # both ranks exited 76
    assert sorted(p.name for p in (asha / "rung-1").iterdir()) == [
        "ddp0.json",
        "p1.json",
        "p2.json",
    ]
    record = json.loads(Path(fields["result_path"]).read_text())
    assert record["status"] == "pruned" and record["epochs_done"] == 1


def test_a_two_rank_sweep_runs_through_the_workflow(tmp_path):
    """resources.processes_per_node: 2 through Snakemake (2 cores): each trial's job spawns
    2 ranks; records, leaderboard and 2-rank checkpoints as for any sweep."""
    from conftest import read_leaderboard, run_workflow

    config = {
        "sweep": "ddp",
        "results_dir": str(tmp_path / "results"),
        "script": str(TRAIN),
        "metric": "val_accuracy",
        "mode": "max",
        "epochs": 2,
        "strategy": "grid",
        "parameters": {"lr": {"kind": "grid", "values": [0.01, 0.003]}},
        "resources": {"processes_per_node": 2, "cpus": 1},
    }
    run_workflow(tmp_path, config, env={"OMP_NUM_THREADS": "1"})
    rows = read_leaderboard(tmp_path / "results" / "ddp")
    assert [r["status"] for r in rows] == ["completed", "completed"]
    for trial in (tmp_path / "results" / "ddp" / "trials").iterdir():
        assert len(final_state(trial)["state"]["ranks"]) == 2


if __name__ == "__main__" and sys.argv[1:2] == ["--launch"]:
    sys.exit(run_segment(build_job(json.loads(sys.argv[2]))))
