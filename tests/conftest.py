"""Shared test helpers: running the real workflow in a scratch folder, and the Slurm gate."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


ECHO_SCRIPT = REPO / "tests" / "fixtures" / "echo_train.py"


def run_echo_trial(root: Path, trial_id: str, behaviour: str, epochs: int = 2):
    """Run one trial of the echo fixture script through the real launcher, as a rule would."""
    from snakesweep.job.launch import TrialJob, run_segment
    from snakesweep.store.trial_folder import result_path

    trial_dir = root / "trials" / trial_id
    job = TrialJob(
        trial_id=trial_id,
        trial_dir=trial_dir,
        params={"behaviour": behaviour, "epochs": epochs},
        script=str(ECHO_SCRIPT),
        budget=epochs,
        metric="score",
        mode="max",
        result_path=result_path(trial_dir, epochs),
        log_path=root / "logs" / f"{trial_id}-{epochs}ep.log",
    )
    assert run_segment(job) == 0
    return job


def demo_config(**overrides) -> dict:
    """The shipped demo config with overrides, paths made absolute."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["script"] = str(REPO / "scripts" / "train.py")
    config.update(overrides)
    return config


def workflow_command(workdir: Path, config: dict, *args: str) -> list[str]:
    """``snakemake`` on the repository's Snakefile in ``workdir``, ``config`` as its sweep file."""
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = workdir / "sweep.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    return [
        *SNAKEMAKE,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def run_workflow(
    workdir: Path,
    config: dict,
    *args: str,
    check: bool = True,
    env: dict | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``snakemake`` on the repository's Snakefile in ``workdir`` with ``config``."""
    cmd = workflow_command(workdir, config, *args)
    if not any(a in ("-n", "--dry-run", "--dryrun") or a.startswith("--profile") for a in args):
        cmd += ["--retries", "20", "--keep-going"]
        if "--cores" not in args:
            cmd += ["--cores", "2"]
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
        )
    return proc


def echo_config(tmp_path: Path, values: list, **overrides) -> dict:
    """A sweep of the fast stand-in script (tests/fixtures/echo_train.py) over ``values``."""
    config = {
        "sweep": "echo",
        "results_dir": str(tmp_path / "results"),
        "script": str(REPO / "tests" / "fixtures" / "echo_train.py"),
        "metric": "score",
        "mode": "max",
        "epochs": 2,
        "strategy": "grid",
        "parameters": {"behaviour": {"kind": "choice", "values": values}},
    }
    config.update(overrides)
    return config


def flaky_config(tmp_path: Path, **overrides) -> dict:
    """A 2-trial grid of tests/fixtures/flaky_train.py (steady, flaky), 2 epochs: the flaky trial
    fails after epoch 1's checkpoint while ``tmp_path/broken`` exists."""
    config = {
        "sweep": "flaky",
        "results_dir": str(tmp_path / "results"),
        "script": str(REPO / "tests" / "fixtures" / "flaky_train.py"),
        "metric": "val_loss",
        "mode": "min",
        "epochs": 2,
        "strategy": "grid",
        "parameters": {
            "kind": {"kind": "choice", "values": ["steady", "flaky"]},
            "broken": {"kind": "fixed", "value": str(tmp_path / "broken")},
        },
        # Save at every epoch end, so that the flaky trial has epoch 1's checkpoint.
        "checkpoint": {"epoch_end_max_overhead": None},
    }
    config.update(overrides)
    return config


def read_leaderboard(root: Path) -> list[dict]:
    """The rows of ``<root>/leaderboard.csv``, best first, as strings."""
    with open(Path(root) / "leaderboard.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def slurm_available() -> tuple[bool, str]:
    if shutil.which("sinfo") is None:
        return (
            False,
            "Slurm is not installed (no sinfo); start one with scripts/slurm-cluster.sh up",
        )
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    states = proc.stdout.split()
    if proc.returncode != 0 or not any(s.startswith(("idle", "mixed", "alloc")) for s in states):
        return False, f"no Slurm node is up (sinfo: {proc.stdout.strip() or proc.stderr.strip()})"
    return True, ""


def browser_available() -> tuple[bool, str]:
    """Whether the real-browser check can run: Chromium and the dashboard extra."""
    if not any(shutil.which(b) for b in (os.environ.get("CHROMIUM") or "", "chromium")):
        return False, "Chromium is not installed (Debian: apt-get install -y chromium)"
    if shutil.which("optuna-dashboard", path=os.path.dirname(sys.executable)) is None:
        return False, "optuna-dashboard is not installed (pip install 'snakesweep[dashboard]')"
    return True, ""


#: marker -> (what tells whether it can run, the variable that makes a missing one an error)
GATES = {
    "slurm": (slurm_available, "SNAKESWEEP_REQUIRE_SLURM"),
    "browser": (browser_available, "SNAKESWEEP_REQUIRE_BROWSER"),
}


#: Test files whose tests share one expensive module-scoped fixture (a sweep, a zygote): each
#: runs on one worker, so that ``pytest -n`` builds it once.
SHARED_FIXTURE_FILES = {"test_user_script.py", "test_ddp.py", "test_pbt_workflow.py"}
#: The files of the Slurm tests and the worker group each runs in: the tests of a group run on
#: one worker, one after another. Two groups share the one small cluster at a time; every
#: assertion about time there is measured from its own job's start and end.
SLURM_FILES = {
    "test_slurm.py": "slurm-a",
    "test_slurm_limits.py": "slurm-b",
    "test_slurm_ddp.py": "slurm-b",
    "test_slurm_pbt.py": "slurm-b",
}


def _file_name(nodeid: str) -> str:
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1]


def pytest_xdist_make_scheduler(config, log):
    """``scripts/test.sh`` runs ``pytest -n 4``: every test is its own unit of work, except the
    groups above. (xdist's ``--dist loadgroup`` does not group under pytest 9.2: it renames
    ``item._nodeid``, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class SweepScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            name = _file_name(nodeid)
            if name in SLURM_FILES:
                return SLURM_FILES[name]
            if name in SHARED_FIXTURE_FILES:
                return name
            return nodeid

    return SweepScheduling(config, log)


def _queue_position(item) -> int:
    if item.path.name in SLURM_FILES:
        return 0
    if item.path.name in SHARED_FIXTURE_FILES:
        return 1
    return 2 if "e2e" in item.keywords else 3


def pytest_collection_modifyitems(config, items):
    """Skip (or, where required, refuse) what needs a Slurm or a browser that is not there; a
    Slurm test outside :data:`SLURM_FILES` would escape the one-worker rule, so it is refused.

    The Slurm groups come first, then the shared-fixture files, then the end-to-end tests,
    then the rest: workers take work in this order, and the longest chains and tests must start
    first, or they end the run last while the other workers idle."""
    strays = sorted(
        item.nodeid
        for item in items
        if "slurm" in item.keywords and item.path.name not in SLURM_FILES
    )
    if strays:
        raise pytest.UsageError(f"Slurm tests outside {sorted(SLURM_FILES)}: {strays}")
    items.sort(key=_queue_position)
    for marker, (available, require) in GATES.items():
        needs = [item for item in items if marker in item.keywords]
        if not needs:
            continue
        ok, reason = available()
        if ok:
            continue
        if os.environ.get(require) == "1":
            raise pytest.UsageError(f"{require}=1 but {reason}")
        for item in needs:
            item.add_marker(pytest.mark.skip(reason=reason))


# -- real training processes (tests/trial_processes.py), shared by the test files that need them


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """One uninterrupted training run that interrupted ones must match bit for bit."""
    from trial_processes import reference_run

    return reference_run(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="session")
def forks():
    """Training processes forked from a zygote that imported torch once."""
    from trial_processes import ForkRunner

    runner = ForkRunner()
    yield runner
    runner.close()
