"""Issue #3's guarantee with real processes and real signals: an interrupted trial ends bit for bit
where an uninterrupted one does.

Every training run here is ``scripts/train.py`` in its own OS process, stopped with real
``kill(2)`` signals (SIGTERM, SIGKILL) or by a real deadline, and restarted from its trial
folder. Final ``metrics.jsonl`` and the final checkpoint's model, optimizer, scheduler and
RNG state are compared exactly (``torch.equal``, ``==`` on floats) with one uninterrupted run.

Starting Python with torch and scikit-learn takes about 3 s on the test machine, so the
tests that need dozens of processes get them from a *zygote*: a helper process (this file
run as a script) that imports ``scripts/train.py`` once and then forks one child per run;
each child calls ``train.main(argv)`` with its own environment and log file and is a
separate process with its own pid, signalled and reaped like any other. The reference run,
the single-interruption test and the ``launch.run_segment`` tests use fresh interpreters
(``python scripts/train.py``), which also shows that forked and fresh runs agree bitwise.

Where a test needs "a random step", it waits until the checkpoint of a seeded random step
has appeared on disk (``every_steps=7``) and then waits a little longer, seeded too: that
never depends on the machine's speed, only on the trial still running, and the targets
stay well before the end of training.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from snakesweep import contract
from snakesweep.checkpoint import CORRUPT_SUFFIX, list_checkpoints, load_latest
from snakesweep.contract import ENV_SEGMENT_SECONDS
from snakesweep.launch import TrialJob, run_segment
from snakesweep.session import STOP_SIGNALS, TrialSession
from snakesweep.trial_folder import read_segments, read_timings

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "scripts" / "train.py"
# Small but not trivial: dropout makes the torch RNG matter, Adam and the cosine schedule
# carry state, the last batch of an epoch is short (1,438 training images / 16).
ARGS = ["--epochs=3", "--batch_size=16", "--width=32", "--dropout=0.1", "--lr=0.01", "--seed=3"]
STEPS_PER_EPOCH = math.ceil(1438 / 16)
TOTAL_STEPS = 3 * STEPS_PER_EPOCH
EVERY_STEPS = 7
RESUMED = re.compile(
    r"\[snakesweep\] resumed from (ckpt-\d+\.pt): epoch \d+, batch \d+, step (\d+)"
)
STOPPED = re.compile(r"\[snakesweep\] checkpointed at epoch \d+, batch \d+, step (\d+)")


def base_env(**extra: Any) -> dict[str, str]:
    """The environment of every training run: one thread, no inherited deadline or SLURM job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKESWEEP_", "SLURM_"))}
    env.update(
        {
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            contract.ENV_CHECKPOINT_EVERY_STEPS: str(EVERY_STEPS),
            contract.ENV_CHECKPOINT_EVERY_SECONDS: "0",
            contract.ENV_CHECKPOINT_KEEP: "2",
        }
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


# -- running training processes -------------------------------------------------------------
class Proc:
    """One training process: its pid, and how it ended (exit code, or -signal; end time)."""

    def __init__(self, runner: Any, pid: int, log: Path) -> None:
        self.runner, self.pid, self.log = runner, pid, log
        self.code: int | None = None
        self.ended_at: float | None = None

    def kill(self, sig: int) -> None:
        os.kill(self.pid, sig)  # an exited, not yet reaped child is a zombie: this is harmless

    def poll(self) -> int | None:
        if self.code is None:
            self.runner.poll(self)
        return self.code

    def wait(self, timeout: float = 120) -> int:
        if self.code is None:
            self.runner.wait(self, timeout)
        assert self.code is not None
        return self.code

    def text(self) -> str:
        return self.log.read_text()


class ExecRunner:
    """Each run is a fresh ``python scripts/train.py ...``."""

    def start(self, trial_dir: Path, log: Path, env: dict[str, str]) -> Proc:
        with open(log, "w") as out:
            popen = subprocess.Popen(
                [sys.executable, str(TRAIN), *ARGS, f"--trial-dir={trial_dir}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        proc = Proc(self, popen.pid, log)
        proc.popen = popen
        return proc

    def poll(self, proc: Proc) -> None:
        if proc.popen.poll() is not None:
            proc.code, proc.ended_at = proc.popen.returncode, time.time()

    def wait(self, proc: Proc, timeout: float) -> None:
        proc.code, proc.ended_at = proc.popen.wait(timeout), time.time()


class ForkRunner:
    """Each run is a child forked by the zygote (see the module docstring and ``_zygote``)."""

    def __init__(self) -> None:
        self.zygote = subprocess.Popen(
            [sys.executable, __file__, "--zygote", str(TRAIN)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=base_env(),
        )
        assert self._ask({"op": "ping"}) == {"ok": True}

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        self.zygote.stdin.write(json.dumps(request) + "\n")
        self.zygote.stdin.flush()
        line = self.zygote.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote died (exit code {self.zygote.wait()})")
        return json.loads(line)

    def start(self, trial_dir: Path, log: Path, env: dict[str, str]) -> Proc:
        argv = [*ARGS, f"--trial-dir={trial_dir}"]
        pid = self._ask({"op": "start", "argv": argv, "env": env, "log": str(log)})["pid"]
        return Proc(self, pid, log)

    def poll(self, proc: Proc) -> None:
        answer = self._ask({"op": "poll", "pid": proc.pid})
        if answer["code"] is not None:
            proc.code, proc.ended_at = answer["code"], answer["time"]

    def wait(self, proc: Proc, timeout: float) -> None:
        answer = self._ask({"op": "wait", "pid": proc.pid, "timeout": timeout})
        if answer["code"] is None:
            proc.kill(signal.SIGKILL)
            self._ask({"op": "wait", "pid": proc.pid, "timeout": 30})
            raise AssertionError(f"training process {proc.pid} still ran after {timeout} s")
        proc.code, proc.ended_at = answer["code"], answer["time"]

    def close(self) -> None:
        self.zygote.stdin.close()
        self.zygote.wait(30)


def _zygote(train_path: str) -> None:
    """Serve the ForkRunner: fork a child running ``train.main(argv)`` per request."""
    import importlib.util
    import traceback

    spec = importlib.util.spec_from_file_location("snakesweep_example_train", train_path)
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)  # torch, scikit-learn, snakesweep: imported once, here
    # Warm up what torch loads lazily on first use (torch.optim imports torch._dynamo: ~2 s),
    # on one thread: the zygote must not start threads that its forked children would lack.
    torch.set_num_threads(1)
    model = train.build_model(8, 1, 0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=2)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss = torch.nn.CrossEntropyLoss()(model(torch.zeros(2, 64)), torch.zeros(2, dtype=torch.long))
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    assert len(os.listdir("/proc/self/task")) == 1, "the zygote must stay single-threaded"

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def reaped(pid: int, flags: int) -> dict[str, Any]:
        done, status = os.waitpid(pid, flags)
        if done == 0:
            return {"code": None}
        return {"code": os.waitstatus_to_exitcode(status), "time": time.time()}

    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "ping":
            reply({"ok": True})
        elif op == "start":
            pid = os.fork()
            if pid == 0:  # the child: a training run of its own
                code = 1
                try:
                    null = os.open(os.devnull, os.O_RDONLY)
                    os.dup2(null, 0)  # not the zygote's request pipe
                    os.close(null)
                    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    os.dup2(fd, 1)
                    os.dup2(fd, 2)
                    os.close(fd)
                    sys.stdout = open(1, "w", buffering=1, closefd=False)
                    sys.stderr = open(2, "w", buffering=1, closefd=False)
                    os.environ.clear()
                    os.environ.update(request["env"])
                    try:
                        train.main(request["argv"])
                        code = 0
                    except SystemExit as exc:
                        code = exc.code if isinstance(exc.code, int) else (exc.code is not None)
                except BaseException:
                    traceback.print_exc()
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(int(code))
            reply({"pid": pid})
        elif op == "poll":
            reply(reaped(request["pid"], os.WNOHANG))
        elif op == "wait":
            limit = time.monotonic() + request["timeout"]
            answer = reaped(request["pid"], os.WNOHANG)
            while answer["code"] is None and time.monotonic() < limit:
                time.sleep(0.002)
                answer = reaped(request["pid"], os.WNOHANG)
            reply(answer)


@pytest.fixture(scope="module")
def forks():
    runner = ForkRunner()
    yield runner
    runner.close()


# -- reading and comparing results ----------------------------------------------------------
def steps_on_disk(trial_dir: Path) -> list[int]:
    return [int(p.name[5:17]) for p in list_checkpoints(trial_dir / contract.CHECKPOINT_DIR)]


def wait_for_step(proc: Proc, trial_dir: Path, target: int, timeout: float = 120) -> int:
    """Block until a checkpoint of step >= ``target`` exists; the newest step on disk."""
    limit = time.monotonic() + timeout
    n = 0
    while time.monotonic() < limit:
        steps = steps_on_disk(trial_dir)
        if steps and steps[0] >= target:
            return steps[0]
        n += 1
        if n % 25 == 0 and proc.poll() is not None:
            pytest.fail(f"run ended (code {proc.code}) before step {target}:\n{proc.text()}")
        time.sleep(0.002)
    pytest.fail(f"no checkpoint of step >= {target} after {timeout} s:\n{proc.text()}")


def final_state(trial_dir: Path) -> dict[str, Any]:
    found = load_latest(trial_dir / contract.CHECKPOINT_DIR)
    assert found is not None, f"no checkpoint in {trial_dir}"
    state, _ = found
    metrics = (trial_dir / contract.METRICS_FILE).read_bytes()
    return {"state": state, "metrics_bytes": metrics, "metrics": _rows(metrics)}


def _rows(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def assert_identical(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested checkpoint contents: tensors bitwise, floats with ==."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), where
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"tensors differ at {where}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"keys differ at {where}"
        for key in a:
            assert_identical(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, list | tuple):
        assert isinstance(b, list | tuple) and len(a) == len(b), f"lengths differ at {where}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{where}[{i}]")
    elif hasattr(a, "shape") and hasattr(a, "dtype"):  # numpy arrays (RNG state)
        assert a.dtype == b.dtype and (a == b).all(), f"arrays differ at {where}"
    else:
        assert type(a) is type(b) and a == b, f"{a!r} != {b!r} at {where}"


def assert_matches_reference(trial_dir: Path, reference: dict[str, Any]) -> None:
    got = final_state(trial_dir)
    assert got["metrics"] == reference["metrics"]  # every metric, exact float equality
    assert got["metrics_bytes"] == reference["metrics_bytes"]
    ref_state, state = reference["state"], got["state"]
    assert (state["epoch"], state["global_step"]) == (3, TOTAL_STEPS)
    for key in ("objects", "history", "epoch", "position", "global_step", "sums"):
        assert_identical(state[key], ref_state[key], key)
    # torch's generator drives dropout; Python's and numpy's are seeded from the OS at start
    # (train.py never seeds them), so only torch's must come out the same.
    assert_identical(state["rng"]["torch"], ref_state["rng"]["torch"], "rng/torch")
    assert not list(trial_dir.rglob("*.tmp")), "a stale temporary file survived"
    assert not list(trial_dir.rglob("*" + CORRUPT_SUFFIX)), "a checkpoint was found damaged"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Any]:
    """One uninterrupted fresh-interpreter run; also measures how long a process takes to start."""
    trial = tmp_path_factory.mktemp("reference")
    proc = ExecRunner().start(trial, trial.parent / "reference.log", base_env())
    started = time.monotonic()
    wait_for_step(proc, trial, 1)
    startup_s = time.monotonic() - started
    assert proc.wait() == 0, proc.text()
    assert "resumed" not in proc.text()
    result = final_state(trial)
    assert [r["epoch"] for r in result["metrics"]] == [1, 2, 3]
    assert result["state"]["global_step"] == TOTAL_STEPS
    return {**result, "startup_s": startup_s, "trial": trial}


# -- signals ---------------------------------------------------------------------------------
def interrupt_with_sigterm(runner, trial: Path, logs: Path, targets: list[int], rng) -> list[int]:
    """One segment per target: SIGTERM once step ``target`` is on disk; each must exit 75."""
    stops: list[int] = []
    for i, target in enumerate(targets):
        proc = runner.start(trial, logs / f"segment-{i}.log", base_env())
        # A step this process has saved: it is training, its signal handlers are in place.
        target = max(target, stops[-1] + 1) if stops else target
        wait_for_step(proc, trial, target)
        time.sleep(rng.uniform(0.0, 0.03))  # land anywhere between two periodic saves
        proc.kill(signal.SIGTERM)
        assert proc.wait() == contract.EXIT_CONTINUE, proc.text()
        text = proc.text()
        assert "received SIGTERM: saving and stopping" in text
        stopped = int(STOPPED.findall(text)[-1])
        assert stopped >= target
        assert steps_on_disk(trial)[0] == stopped  # the stop was saved: nothing lost
        if i > 0:  # the segment started where the one before it stopped
            assert int(RESUMED.search(text).group(2)) == stops[-1]
        stops.append(stopped)
    return stops


def finish(runner, trial: Path, log: Path, resumed_at: int | None) -> Proc:
    proc = runner.start(trial, log, base_env())
    assert proc.wait() == 0, proc.text()
    if resumed_at is not None:
        assert int(RESUMED.search(proc.text()).group(2)) == resumed_at
    return proc


def test_one_sigterm_fresh_interpreters(reference, tmp_path):
    trial = tmp_path / "trial"
    target = random.Random(1).randrange(20, TOTAL_STEPS // 2)
    stops = interrupt_with_sigterm(ExecRunner(), trial, tmp_path, [target], random.Random(1))
    finish(ExecRunner(), trial, tmp_path / "final.log", resumed_at=stops[-1])
    assert_matches_reference(trial, reference)


def test_three_sigterms_then_sigkill_between_checkpoints(reference, forks, tmp_path):
    rng = random.Random(3)
    trial = tmp_path / "trial"
    # Seeded random steps, far enough apart that each lies after the previous stop.
    targets = sorted(rng.sample(range(10, 190, 30), 3))
    targets = [t + rng.randrange(0, 20) for t in targets]
    stops = interrupt_with_sigterm(forks, trial, tmp_path, targets, rng)

    # SIGKILL: no warning, no save; the next run must resume from the last checkpoint.
    proc = forks.start(trial, tmp_path / "killed.log", base_env())
    target = stops[-1] + rng.randrange(10, 40)
    wait_for_step(proc, trial, target)
    time.sleep(rng.uniform(0.005, 0.03))
    proc.kill(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    last_saved = steps_on_disk(trial)[0]
    assert last_saved >= target
    finish(forks, trial, tmp_path / "final.log", resumed_at=last_saved)
    assert_matches_reference(trial, reference)


def test_sigkill_while_saving_never_breaks_resume(reference, forks, tmp_path):
    """every_steps=1: the run spends about half its time saving; kill it at random moments.

    A third of the kills land as soon as a checkpoint's temporary file is seen (inside the
    write), every sixth at a random moment of start-up and resume, the others a random
    0-30 ms after the process saved its first step (inside a step or a save).
    """
    rng = random.Random(30)
    trial = tmp_path / "trial"
    env = base_env(**{contract.ENV_CHECKPOINT_EVERY_STEPS: 1})
    # How long a forked run takes to reach its first step, to aim the start-up kills.
    probe = forks.start(tmp_path / "probe", tmp_path / "probe.log", env)
    started = time.monotonic()
    wait_for_step(probe, tmp_path / "probe", 1)
    first_step_s = time.monotonic() - started
    probe.kill(signal.SIGKILL)
    probe.wait()

    killed, torn, progress = 0, 0, [0]
    for i in range(36):
        proc = forks.start(trial, tmp_path / f"kill-{i}.log", env)
        if i % 6 == 5:
            time.sleep(rng.uniform(0.0, first_step_s))
        elif i % 3 == 0:
            wait_for_step(proc, trial, progress[-1] + 1)
            limit = time.monotonic() + 5
            while time.monotonic() < limit and not any(
                name.endswith(".tmp") for name in os.listdir(trial / contract.CHECKPOINT_DIR)
            ):
                pass
        else:
            wait_for_step(proc, trial, progress[-1] + 1)
            time.sleep(rng.uniform(0.0, 0.03))
        proc.kill(signal.SIGKILL)
        code = proc.wait()
        assert code in (-signal.SIGKILL, 0), proc.text()
        killed += code == -signal.SIGKILL
        # Killed mid-write: a temporary file is left behind (never a half-written checkpoint).
        torn += bool(list((trial / contract.CHECKPOINT_DIR).glob(".ckpt-*.tmp")))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a damaged checkpoint would warn: fail instead
            found = load_latest(trial / contract.CHECKPOINT_DIR)
        step = found[0]["global_step"] if found else 0
        assert step >= progress[-1], "a kill lost a checkpoint that had been complete"
        progress.append(step)
    print(f"kills: {killed} of 36 during the run, {torn} inside a checkpoint write; {progress}")
    assert killed >= 30
    assert torn >= 3, f"only {torn} kills landed inside a checkpoint write"
    assert progress[-1] > 0, progress
    finish(forks, trial, tmp_path / "final.log", resumed_at=progress[-1])
    assert_matches_reference(trial, reference)


# -- deadlines -------------------------------------------------------------------------------
def test_deadline_shorter_than_training_over_several_segments(reference, forks, tmp_path):
    """Each segment gets SNAKESWEEP_DEADLINE = its start + a window too short for the training.

    A step takes 1-10 ms here, depending on the machine's load, and a forked run needs
    some 20-100 ms to reach its first step: the windows start small and grow by half
    while a segment makes fewer than 30 steps (shrink while more than 90), so that the
    training is split on a fast machine and does not crawl on a slow one.
    """
    trial = tmp_path / "trial"
    margin_s = 0.3
    window_s = margin_s + 0.05
    segments: list[tuple[int, str]] = []
    stops = [0]
    while not segments or segments[-1][0] != 0:
        assert len(segments) < 40, stops
        deadline = time.time() + window_s
        env = base_env(
            **{
                contract.ENV_DEADLINE: f"{deadline:.3f}",
                contract.ENV_DEADLINE_MARGIN: margin_s,
                # Only epoch ends and the stops save: the first segment starts without a
                # measured save time and must not give up after one step because of it.
                contract.ENV_CHECKPOINT_EVERY_STEPS: 0,
            }
        )
        proc = forks.start(trial, tmp_path / f"segment-{len(segments)}.log", env)
        code = proc.wait()
        text = proc.text()
        segments.append((code, text))
        if len(segments) > 1:  # no completed step lost: it resumed where the last one saved
            assert int(RESUMED.search(text).group(2)) == stops[-1], text
        if code == 0:
            break
        assert code == contract.EXIT_CONTINUE, text
        assert "cannot fit another step" in text
        late = proc.ended_at - deadline
        assert late < 0, f"segment {len(segments)} ended {late:.3f}s after its deadline"
        stops.append(int(STOPPED.findall(text)[-1]))
        assert steps_on_disk(trial)[0] == stops[-1]  # its last completed step is saved
        made = stops[-1] - stops[-2]
        if made < 30:
            window_s = margin_s + 1.5 * (window_s - margin_s)
        elif made > 90:
            window_s = margin_s + (window_s - margin_s) / 1.5
    assert len(segments) >= 3, f"the deadline should have split the training: {stops}"
    assert max(b - a for a, b in zip(stops, stops[1:], strict=False)) >= 10, stops
    assert_matches_reference(trial, reference)


# -- launch.run_segment: failures and continuations -------------------------------------------
def make_job(tmp_path: Path, script: Path, params: dict[str, Any], **overrides: Any) -> TrialJob:
    fields: dict[str, Any] = {
        "trial_id": "t0",
        "trial_dir": tmp_path / "trial",
        "params": params,
        "script": str(script),
        "budget": 3,
        "metric": "val_accuracy",
        "mode": "max",
        "result_path": tmp_path / "result-3.json",
        "log_path": tmp_path / "train.log",
        "every_steps": EVERY_STEPS,
        "every_seconds": 0.0,
        "deadline_margin_s": 0.3,
    }
    fields.update(overrides)
    return TrialJob(**fields)


def test_crashing_trial_fails_fast_with_its_cause(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(
        "import sys\nraise ValueError('deliberate failure in user code: ' + sys.argv[1])\n"
    )
    job = make_job(tmp_path, script, {"lr": 0.5})
    started = time.monotonic()
    assert run_segment(job, env=base_env()) == 0
    assert time.monotonic() - started < 30
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "failed"
    assert "ValueError: deliberate failure in user code: --lr=0.5" in record["error"]
    assert "exited with code 1" in record["error"]
    assert record["segments"] == 1 and record["restarts"] == 0
    assert [e["event"] for e in read_segments(job.trial_dir)] == ["start", "end"]


def test_max_continuations_caps_a_trial_that_never_finishes(tmp_path):
    script = tmp_path / "forever.py"
    script.write_text(f"import sys\nprint('saved, not done')\nsys.exit({contract.EXIT_CONTINUE})\n")
    job = make_job(tmp_path, script, {"lr": 0.5}, max_continuations=2)
    codes = [run_segment(job, env=base_env()) for _ in range(3)]
    assert codes == [contract.EXIT_CONTINUE, contract.EXIT_CONTINUE, 0]
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "failed"
    assert "gave up after 2 continuations" in record["error"]
    assert record["segments"] == 3 and record["restarts"] == 2


def test_run_segment_continues_a_trial_over_segments(reference, tmp_path):
    """SNAKESWEEP_SEGMENT_SECONDS: each segment gets start+N s; run_segment exits 75 until done.

    A fresh interpreter takes seconds to start (more on a busy machine; the reference run
    measured it), and the training itself one or two more: the first two segments get half
    that start-up time, far too little to finish (a start-up that eats all of it still
    leaves one step per segment), the next ones plenty.
    """
    params = {"epochs": 3, "batch_size": 16, "width": 32, "dropout": 0.1, "lr": 0.01, "seed": 3}
    # Save every step here (the reference saved every 7): results must not depend on it,
    # and it makes the training last long enough that a short segment cannot finish it.
    job = make_job(tmp_path, TRAIN, params, every_steps=1, max_continuations=5)
    tight_s = 0.5 * reference["startup_s"]
    plenty_s = 3 * reference["startup_s"] + 30
    codes: list[int] = []
    while not codes or codes[-1] != 0:
        assert len(codes) <= job.max_continuations, codes
        segment_s = tight_s if len(codes) < 2 else plenty_s
        codes.append(run_segment(job, env=base_env(**{ENV_SEGMENT_SECONDS: f"{segment_s:.2f}"})))
    assert codes[:2] == [contract.EXIT_CONTINUE] * 2, f"{tight_s:.1f}s segments finished it"
    assert set(codes[:-1]) == {contract.EXIT_CONTINUE} and codes[-1] == 0
    record = json.loads(job.result_path.read_text())
    assert record["status"] == "completed", record["error"]
    assert record["segments"] == len(codes) and record["restarts"] == len(codes) - 1
    assert record["history"] == reference["metrics"]
    ends = [e for e in read_segments(job.trial_dir) if e["event"] == "end"]
    assert [e["exit_code"] for e in ends] == codes[:-1] + [0]
    assert_matches_reference(job.trial_dir, reference)


# -- the session in-process: edge cases of stopping and saving --------------------------------
class CountingSession(TrialSession):
    def __init__(self, *args: Any, handle_signals: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, handle_signals=handle_signals, verbose=False, **kwargs)
        self.saves: list[tuple[int, int]] = []

    def save(self):
        self.saves.append((self.epoch, self.global_step))
        return super().save()


def tiny_training(session: TrialSession, epochs: int = 2, n_items: int = 12, batch: int = 4):
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    session.register(model=model, optimizer=optimizer)
    session.resume()
    for _ in session.epochs(epochs):
        for idx in session.batches(n_items, batch):
            loss = model(torch.ones(len(idx), 3)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            session.track("loss", loss.item())
        session.end_epoch({})
    return model


def test_no_double_save_at_an_epochs_last_step(tmp_path):
    session = CountingSession(tmp_path, every_steps=1, keep=100)
    tiny_training(session)
    # Steps 1, 2 (periodic), the end of epoch 1 at step 3, 4, 5, the end of epoch 2 at step 6:
    # no periodic save right before an epoch end saves the same step again.
    assert session.saves == [(0, 1), (0, 2), (1, 3), (1, 4), (1, 5), (2, 6)]


@pytest.fixture
def restore_signal_handlers():
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_signal_after_the_last_step_does_not_ask_for_another_segment(
    tmp_path, restore_signal_handlers
):
    session = CountingSession(tmp_path, handle_signals=True, max_overhead=None)
    session.register(model=torch.nn.Linear(3, 1))
    for _ in session.epochs(2):
        for _idx in session.batches(8, 4):
            pass
        if session.epoch == 1:
            os.kill(os.getpid(), signal.SIGUSR1)  # a real signal, during the final validation
        session.end_epoch({"x": 1.0})  # must not exit 75: the training is complete
    assert session._stop_signal == signal.SIGUSR1
    assert session.saves == [(1, 2), (2, 4)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2])
def test_a_signal_mid_epoch_saves_once_and_exits_75(tmp_path, restore_signal_handlers, signum):
    session = CountingSession(tmp_path, handle_signals=True, every_steps=2)
    session.register(model=torch.nn.Linear(3, 1))
    with pytest.raises(SystemExit) as exc:
        for _ in session.epochs(1):
            for _idx in session.batches(12, 2):
                if session.global_step == 3:  # step 4 runs with the signal pending
                    os.kill(os.getpid(), signum)
            session.end_epoch({})
    assert exc.value.code == contract.EXIT_CONTINUE
    assert session.saves == [(0, 2), (0, 4)]  # step 4: periodic and stop share one save


def test_resuming_a_finished_trial_changes_nothing(reference, forks, tmp_path):
    trial = tmp_path / "trial"
    finish(forks, trial, tmp_path / "first.log", resumed_at=None)
    before = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in trial.rglob("*") if p.is_file()
    }
    proc = finish(forks, trial, tmp_path / "again.log", resumed_at=TOTAL_STEPS)
    assert "nothing left to train" in proc.text()
    after = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in trial.rglob("*") if p.is_file()
    }
    assert after == before
    assert_matches_reference(trial, reference)


def test_first_save_time_is_measured_not_guessed(tmp_path):
    """A deadline closer than the default save guess (1 s) + margin, but far enough for the
    training: the session saves once to measure, then goes on instead of stopping."""
    from snakesweep.deadline import Deadline

    deadline = Deadline(explicit=time.time() + 0.9)
    session = CountingSession(tmp_path, deadline=deadline, margin_s=0, max_overhead=None)
    tiny_training(session, epochs=2, n_items=40, batch=4)  # exits 75 if it stops: fails
    assert session.saves == [(0, 1), (1, 10), (2, 20)]


def test_epoch_end_saves_are_skipped_when_they_would_cost_too_much(tmp_path):
    # max_overhead=None: every epoch end saves.
    session = CountingSession(tmp_path / "always", max_overhead=None)
    tiny_training(session, epochs=3, n_items=12, batch=4)
    assert session.saves == [(1, 3), (2, 6), (3, 9)]
    # A tiny allowance: epoch ends do not save, except the last one; periodic saves (every
    # 4 steps) still happen.
    session = CountingSession(tmp_path / "skip", max_overhead=1e-9, every_steps=4)
    tiny_training(session, epochs=3, n_items=12, batch=4)
    assert session.saves == [(1, 4), (2, 8), (3, 9)]
    # What the skipped epoch ends leave on disk resumes like any other checkpoint.
    state, _ = load_latest(tmp_path / "skip" / contract.CHECKPOINT_DIR)
    assert (state["epoch"], state["global_step"], len(state["history"])) == (3, 9, 3)


def test_measured_timings_reach_the_next_segment(tmp_path):
    first = CountingSession(tmp_path, stop_at_epoch=1)
    tiny_training(first, epochs=2)
    assert first.saves == [(1, 3)]  # its only save: the checkpoint cannot hold its duration
    second = CountingSession(tmp_path)
    second.register(model=torch.nn.Linear(3, 1))
    assert second.resume()
    assert not second._save_time_unknown()
    assert second._save_estimate() == pytest.approx(first._max_save_s)
    assert second._prior_timings["step_s"] > 0 and second._prior_timings["epoch_end_s"] > 0


def test_deadline_already_passed_saves_after_one_step(tmp_path):
    from snakesweep.deadline import Deadline

    session = CountingSession(tmp_path, deadline=Deadline(explicit=time.time() - 1), margin_s=0)
    with pytest.raises(SystemExit) as exc:
        tiny_training(session)
    assert exc.value.code == contract.EXIT_CONTINUE
    assert session.saves == [(0, 1)]
    state, _ = load_latest(tmp_path / contract.CHECKPOINT_DIR)
    assert (state["epoch"], state["position"], state["global_step"]) == (0, 1, 1)
    # the stop's moment, from which the launcher measures the exit path; not a prior timing
    assert read_timings(tmp_path)["stopped_at"] >= session.deadline.at()
    model = torch.nn.Linear(3, 1)
    resumed = CountingSession(tmp_path)
    resumed.register(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    assert resumed.resume() and "stopped_at" not in resumed._prior_timings


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _zygote(sys.argv[2])
