"""The warm start (docs/speed.md): a trial forked from a prepared server behaves as a fresh
``python script.py args``: its own process and exit status, signals passed on, the script as
``__main__`` with its argv, and bit-identical training at 1 and 2 threads; and what cannot be
warm started falls back to a fresh process, saying why in the trial's log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, demo_config, run_workflow
from trial_processes import assert_identical, final_state, train_job

from snakesweep.job import fork_server, warm_start
from snakesweep.job.launch import run_segment
from snakesweep.store import contract

FIXTURES = REPO / "tests" / "fixtures"
PROBE = FIXTURES / "warm_probe.py"
TRAIN = REPO / "scripts" / "train.py"
WARM_NOTE = "=== warm start"


@pytest.fixture
def owner():
    """A process standing in for the Snakemake controller: its servers end with it."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def trial_env(owner, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SNAKESWEEP_", "SLURM_", "OMP_", "MKL_"))
    }
    env.update(
        {
            contract.ENV_WARM_OWNER: warm_start.owner_token(owner.pid, env),
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def probe(tmp_path: Path, owner, name: str, *args: str, script: Path = PROBE, **env: str):
    """Run the probe warm; (exit code or None, what it reported, its log)."""
    out = tmp_path / f"{name}.json"
    log_path = tmp_path / f"{name}.log"
    with open(log_path, "a+", encoding="utf-8") as log:
        code = warm_start.run_warm(
            sys.executable,
            [str(script), f"--out={out}", *args],
            trial_env(owner, **env),
            log,
            [],
            log_dir=tmp_path / "servers",
        )
    state = json.loads(out.read_text()) if out.exists() else None
    return code, state, log_path.read_text()


def test_a_warm_trial_is_its_script_as_main_with_its_argv(tmp_path, owner, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, first, log = probe(tmp_path, owner, "a", "--lr=0.1", PROBE="x")
    assert (code, log.count(WARM_NOTE)) == (0, 0), log
    assert first["preloaded"]  # torch came from the server
    assert first["name"] == "__main__"
    assert first["argv"] == [str(PROBE), f"--out={tmp_path / 'a.json'}", "--lr=0.1"]
    assert first["path0"] == str(FIXTURES)  # as `python script.py` sets it
    assert first["cwd"] == str(tmp_path)
    assert first["probe_env"] == "x"
    assert first["own_group"] and first["stdin_empty"]
    assert first["sigint_default"] and first["sigterm_default"]
    assert first["torch_threads"] == 1 and first["python_threads"] == 1
    assert not first["cuda_initialized"]
    assert "probe wrote" in log
    code, second, _ = probe(tmp_path, owner, "b")
    assert code == 0 and second["preloaded"]
    assert second["pid"] != first["pid"]
    # Entropy-seeded generators differ between trials, as between fresh processes.
    assert second["numpy_random"] != first["numpy_random"]


def test_a_trial_ends_alone_with_its_own_exit_status(tmp_path, owner):
    assert probe(tmp_path, owner, "abort", "--then=abort")[0] == -signal.SIGABRT
    assert probe(tmp_path, owner, "exit", "--then=exit-75")[0] == contract.EXIT_CONTINUE
    code, _, log = probe(tmp_path, owner, "raise", "--then=raise")
    assert code == 1 and "ValueError: boom from the probe" in log
    # the traceback a fresh interpreter prints: from the script's frame on (a failed trial's
    # record quotes the log's last lines)
    traceback = log[log.index("Traceback (most recent call last):") :]
    assert "fork_server" not in traceback and "runpy" not in traceback, traceback
    code, state, log = probe(tmp_path, owner, "after")  # the server survived its trials
    assert code == 0 and state["preloaded"], log
    servers = list((tmp_path / "servers").glob("server-*.log"))
    assert len(servers) == 1 and servers[0].read_text().count("serving") == 1


LAUNCHER = """
import json, sys
from snakesweep.job import warm_start
signals = []
with open(sys.argv[1], "a+") as log:  # argv: log, environment, script and its arguments
    code = warm_start.run_warm(sys.executable, sys.argv[3:], json.loads(sys.argv[2]), log, signals)
print(json.dumps({"code": code, "signals": signals}))
"""


def launcher(tmp_path: Path, owner, name: str) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / f"{name}.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            LAUNCHER,
            str(tmp_path / f"{name}.log"),
            json.dumps(trial_env(owner)),
            str(PROBE),
            f"--out={out}",
            "--then=wait",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 300
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.exists(), (tmp_path / f"{name}.log").read_text()
    return proc, out


def test_a_stop_signal_reaches_the_warm_trial(tmp_path, owner):
    proc, _ = launcher(tmp_path, owner, "term")
    proc.send_signal(signal.SIGTERM)
    result = json.loads(proc.communicate(timeout=120)[0])
    assert result == {"code": contract.EXIT_CONTINUE, "signals": [signal.SIGTERM]}


def test_a_warm_trial_dies_with_its_launcher(tmp_path, owner):
    """SIGKILL to the launcher (a killed job step): its trial must not run on without it."""
    proc, out = launcher(tmp_path, owner, "killed")
    trial = json.loads(out.read_text())["pid"]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 120
    while Path(f"/proc/{trial}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{trial}").exists()


def test_the_server_ends_with_its_owner(tmp_path, owner):
    assert probe(tmp_path, owner, "a")[0] == 0
    owner.kill()
    owner.wait()
    log = next((tmp_path / "servers").glob("server-*.log"))
    deadline = time.monotonic() + 120
    while "ended; exiting" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"owner {owner.pid} ended; exiting" in log.read_text()


def test_opting_out_starts_fresh_and_says_why(tmp_path, owner):
    code, state, log = probe(tmp_path, owner, "env", **{contract.ENV_WARM_START: "0"})
    assert code is None and state is None  # run_warm declined: the launcher starts it fresh
    assert f"warm start not used ({contract.ENV_WARM_START}=0)" in log
    marked = tmp_path / "marked.py"
    marked.write_text(f"# {warm_start.SCRIPT_MARKER}\n" + PROBE.read_text())
    code, _, log = probe(tmp_path, owner, "marked", script=marked)
    assert code is None and f"the script says '{warm_start.SCRIPT_MARKER}'" in log


def test_no_owner_means_a_fresh_process(tmp_path):
    with open(tmp_path / "log", "a+") as log:
        code = warm_start.run_warm(sys.executable, [str(PROBE), "--out=x"], {}, log, [])
    assert code is None
    assert "no warm-start owner" in (tmp_path / "log").read_text()


def test_a_module_that_starts_threads_at_import_means_fresh_trials(tmp_path, owner):
    job = train_job(
        tmp_path,
        PROBE,
        {"out": str(tmp_path / "probe.json")},
        warm_modules=("threads_at_import",),
        warm_log_dir=tmp_path / "servers",
        metric="x",
    )
    run_segment(job, env=trial_env(owner))
    log = job.log_path.read_text()
    assert "warm start refused (the warm-start server runs 2 threads after its imports" in log
    state = json.loads((tmp_path / "probe.json").read_text())
    assert state["preloaded"] is False  # started fresh, and ran
    assert (
        "refusing: the warm-start server runs 2 threads"
        in next((tmp_path / "servers").glob("server-*.log")).read_text()
    )


def test_the_server_refuses_to_fork_once_cuda_is_initialised(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert "CUDA was initialised" in fork_server.why_not_fork()


def test_start_up_variables_must_match_the_servers():
    mine = {"OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    assert fork_server._env_mismatch(mine, {**mine, "PROBE": "x"}) is None
    why = fork_server._env_mismatch(mine, {**mine, "OMP_NUM_THREADS": "2"})
    assert why == "start-up variables differ from the server's: OMP_NUM_THREADS"


@pytest.mark.parametrize("threads", [1, 2])
def test_warm_and_fresh_training_are_bit_identical(tmp_path, owner, threads):
    """scripts/train.py (Adam: MKL VML's sqrt on every step) at 1 and 2 threads: the same
    metrics.jsonl bytes and the same final model, optimizer, scheduler and RNG state."""
    params = {"epochs": 2, "batch_size": 32, "width": 32, "dropout": 0.1, "lr": 0.01, "seed": 3}
    env = trial_env(owner)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        del env[name]  # the job's thread count applies (TrialJob.threads)
    runs = {}
    for warm in (True, False):
        where = tmp_path / ("warm" if warm else "fresh")
        job = train_job(
            where,
            TRAIN,
            params,
            budget=2,
            result_path=where / "result-2.json",
            threads=threads,
            warm_start=warm,
            warm_modules=("sklearn.datasets",),
            warm_log_dir=tmp_path / "servers",
        )
        assert run_segment(job, env=env) == 0
        log = job.log_path.read_text()
        assert (WARM_NOTE in log) is False, log
        runs[warm] = job.trial_dir
    assert (runs[True] / "metrics.jsonl").read_bytes() == (
        runs[False] / "metrics.jsonl"
    ).read_bytes()
    warm, fresh = final_state(runs[True]), final_state(runs[False])
    for state in (warm, fresh):
        for generator in ("python", "numpy"):  # seeded from entropy in every fresh process
            state["state"]["rng"].pop(generator)
        for clock in ("saved_at", "timings"):  # wall-clock times
            state["state"].pop(clock)
    assert_identical(warm, fresh)
    assert "serving" in next((tmp_path / "servers").glob("server-*.log")).read_text()


def test_a_local_sweep_warm_starts_its_trials_and_packs_copy_records(tmp_path):
    """The workflow end to end: a pack of 2 trials, each a warm fork of the run's server,
    which ends with the run; the packed records are copied by a shell command."""
    config = demo_config(n_trials=2, epochs=1, pack=2, results_dir=str(tmp_path / "results"))
    run_workflow(tmp_path / "run", config)
    root = tmp_path / "results" / "demo"
    logs = sorted((root / "logs" / "train").glob("*.log"))
    assert len(logs) == 2
    for log in logs:
        assert WARM_NOTE not in log.read_text()
    server = next((root / "logs" / "warm").glob("server-*.log")).read_text()
    assert "serving" in server
    records = sorted((root / "logs" / "packs" / "records").glob("*.log"))
    assert len(records) == 2 and all("copied from" in r.read_text() for r in records)
    deadline = time.monotonic() + 120
    while "ended; exiting" not in server and time.monotonic() < deadline:
        time.sleep(0.1)
        server = next((root / "logs" / "warm").glob("server-*.log")).read_text()
    assert "ended; exiting" in server


def test_a_deadline_stops_a_warm_trial_which_then_resumes(tmp_path, owner):
    """The deadline reaches the forked trial in its environment: it saves after its first step,
    exits 75 (continue), and the next warm segment resumes from that checkpoint."""
    params = {"epochs": 1, "batch_size": 64, "width": 16, "lr": 0.01, "seed": 1}
    job = train_job(
        tmp_path,
        TRAIN,
        params,
        budget=1,
        result_path=tmp_path / "result-1.json",
        deadline_margin_s=0,
        warm_modules=("sklearn.datasets",),
        warm_log_dir=tmp_path / "servers",
    )
    env = trial_env(owner, **{contract.ENV_SEGMENT_SECONDS: "0"})
    assert run_segment(job, env=env) == contract.EXIT_CONTINUE
    del env[contract.ENV_SEGMENT_SECONDS]
    assert run_segment(job, env=env) == 0
    log = job.log_path.read_text()
    assert WARM_NOTE not in log
    assert "checkpointed at epoch 0, batch 1, step 1" in log and "resumed from" in log
    assert json.loads(job.result_path.read_text())["status"] == "completed"
