"""Real training processes for the resume, signal and deadline tests, and how to compare them.

Every training run is ``scripts/train.py`` in its own OS process, stopped with real
``kill(2)`` signals (SIGTERM, SIGKILL) or by a real deadline, and restarted from its trial
folder. Final ``metrics.jsonl`` and the final checkpoint's model, optimizer, scheduler and
RNG state are compared exactly (``torch.equal``, ``==`` on floats) with one uninterrupted run
(:func:`reference_run`, the session-wide ``reference`` fixture of ``conftest.py``).

Starting Python with torch and scikit-learn takes about 3 s on the test machine, so the
tests that need dozens of processes get them from a *zygote*: a helper process (this file
run as a script) that imports ``scripts/train.py`` once and then forks one child per run;
each child calls ``train.main(argv)`` with its own environment and log file and is a
separate process with its own pid, signalled and reaped like any other (:class:`ForkRunner`,
the ``forks`` fixture). The reference run, the single-interruption test and the
``launch.run_segment`` tests use fresh interpreters (:class:`ExecRunner`), which also shows
that forked and fresh runs agree bitwise.

Where a test needs "a random step", it waits until the checkpoint of a seeded random step
has appeared on disk (``every_steps=7``) and then waits a little longer, seeded too: that
never depends on the machine's speed, only on the trial still running, and the targets
stay well before the end of training.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from snakesweep.job.launch import TrialJob
from snakesweep.session import TrialSession
from snakesweep.session.checkpoint import CORRUPT_SUFFIX, list_checkpoints, load_latest
from snakesweep.store import contract

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


def reference_run(trial: Path) -> dict[str, Any]:
    """One uninterrupted fresh-interpreter run in ``trial``; also measures how long a process
    takes to start."""
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


# -- launch.run_segment -----------------------------------------------------------------------
def train_job(tmp_path: Path, script: Path, params: dict[str, Any], **overrides: Any) -> TrialJob:
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


# -- the session in-process -------------------------------------------------------------------
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


#: A training script that runs ``train`` with rank 1 raising at step 25 (a crashing rank).
CRASHING_RANK = """
import runpy
from snakesweep.session import trial_session as s
original = s.TrialSession._step_boundary
def boundary(self):
    if self.rank == 1 and self.global_step == 25:
        raise ValueError("deliberate failure on rank 1 at step 25")
    original(self)
s.TrialSession._step_boundary = boundary
runpy.run_path({train!r}, run_name="__main__")
"""


if __name__ == "__main__" and sys.argv[1:2] == ["--zygote"]:
    _zygote(sys.argv[2])
