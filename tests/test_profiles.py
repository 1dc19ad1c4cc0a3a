"""Profiles as a user types them: `--profile slurm` by name and plain `snakemake`, from a fresh copy.

Snakemake's own argument parser (`snakemake.cli.parse_args`) tells which settings a command line
ends up with, so these tests need no cluster; the SLURM runs themselves are in test_slurm.py.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, echo_config

PARSE = (
    "import json, sys; from snakemake.cli import parse_args; _, a = parse_args(sys.argv[1:]); "
    "print(json.dumps({k: getattr(a, k) for k in "
    "('executor', 'retries', 'keep_going', 'rerun_incomplete', 'printshellcmds', 'cores', "
    "'latency_wait', 'slurm_init_seconds_before_status_checks')}, default=str))"
)


@pytest.fixture
def fresh_copy(tmp_path) -> Path:
    """The repository's files as a clone has them (symlinks kept), without results or venv."""
    copy = tmp_path / "clone"
    copy.mkdir()
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    packed = subprocess.run(
        ["tar", "-cf", "-", "--null", "-T", "-"],
        cwd=REPO,
        input=files,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-xf", "-"], cwd=copy, input=packed, check=True)
    return copy


@pytest.fixture
def empty_config_dirs(tmp_path) -> dict:
    """An environment whose user and site Snakemake profile folders are empty."""
    user, site = tmp_path / "xdg-user", tmp_path / "xdg-site"
    user.mkdir()
    site.mkdir()
    return {**os.environ, "XDG_CONFIG_HOME": str(user), "XDG_CONFIG_DIRS": str(site)}


def parsed(cwd: Path, env: dict, *args: str) -> dict:
    """The settings Snakemake's command line parser derives for ``args`` run in ``cwd``."""
    proc = subprocess.run(
        [sys.executable, "-c", PARSE, *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]) | {"stderr": proc.stderr}


def test_profile_slurm_by_name_plans_the_slurm_executor(fresh_copy, empty_config_dirs):
    settings = parsed(fresh_copy, empty_config_dirs, "--profile", "slurm", "-n")
    assert settings["executor"] == "slurm"
    # Finished jobs are noticed within ~10 s, not the plugin's 40 (docs/slurm.md, Status polling).
    assert settings["slurm_init_seconds_before_status_checks"] == 10
    assert settings["retries"] == 20 and settings["keep_going"] is True
    assert (
        "Using profiles slurm and workflow specific profile profiles/default"
        in (settings["stderr"])
    )
    # A real dry run by name plans every trial with the profile's SLURM resources.
    proc = subprocess.run(
        [*SNAKEMAKE, "--profile", "slurm", "-n"],
        cwd=fresh_copy,
        env=empty_config_dirs,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert out.count("slurm_extra=--requeue --open-mode=append") >= 8
    assert "train_trial        8" in out
    # The explicit path form still works and means the same.
    by_path = parsed(fresh_copy, empty_config_dirs, "--profile", "profiles/slurm", "-n")
    assert {k: by_path[k] for k in ("executor", "retries")} == {"executor": "slurm", "retries": 20}


def test_a_users_own_slurm_profile_is_kept_and_can_be_chosen(fresh_copy, empty_config_dirs):
    mine = Path(empty_config_dirs["XDG_CONFIG_HOME"]) / "snakemake" / "slurm"
    mine.mkdir(parents=True)
    text = "executor: slurm\nretries: 3\nlatency-wait: 7\n"
    (mine / "config.yaml").write_text(text)
    # In the repository the name means the repository's profile; the user's is untouched.
    assert parsed(fresh_copy, empty_config_dirs, "--profile", "slurm", "-n")["latency_wait"] == 60
    assert (mine / "config.yaml").read_text() == text
    # Elsewhere, or by its path, the name means the user's own.
    elsewhere = fresh_copy.parent / "elsewhere"
    elsewhere.mkdir()
    assert parsed(elsewhere, empty_config_dirs, "--profile", "slurm", "-n")["latency_wait"] == 7
    layered = parsed(fresh_copy, empty_config_dirs, "--profile", "slurm", "--profile", str(mine))
    assert layered["latency_wait"] == 7


def test_plain_snakemake_runs_locally_with_the_workflow_profile(fresh_copy, empty_config_dirs):
    settings = parsed(fresh_copy, empty_config_dirs)
    assert settings["executor"] is None or settings["executor"] == "local"
    assert settings["cores"] == str(os.cpu_count()) or settings["cores"] == os.cpu_count()
    assert settings["retries"] == 20 and settings["keep_going"] is True
    assert settings["printshellcmds"] is True and settings["rerun_incomplete"] is True
    # `--profile profiles/local` still works and is the same folder.
    local = parsed(fresh_copy, empty_config_dirs, "--profile", "profiles/local")
    assert {k: local[k] for k in ("cores", "retries")} == {
        k: settings[k] for k in ("cores", "retries")
    }

    # A tiny real run: no --cores (Snakemake refuses a local run without it), the profile's
    # shell-command printing and keep-going apply: the crashing trial never stops the other.
    config = echo_config(fresh_copy, ["crash", "ok"], results_dir=str(fresh_copy / "results"))
    (fresh_copy / "echo.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [*SNAKEMAKE, "--configfile", "echo.yaml"],
        cwd=fresh_copy,
        env=empty_config_dirs,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Using workflow specific profile profiles/default" in out
    assert f"Provided cores: {os.cpu_count()}" in out
    assert "echo_train.py" in out  # printshellcmds
    assert (fresh_copy / "results" / "echo" / "leaderboard.csv").exists()


def test_setup_names_a_users_own_slurm_profile_without_touching_it(tmp_path):
    """setup-env.sh's note, run in isolation (the script itself installs into .venv)."""
    script = (REPO / "scripts" / "setup-env.sh").read_text()
    start = script.index("note_own_slurm_profiles() {")
    function = script[start : script.index("\n}\n", start) + 3]
    user, site, empty = tmp_path / "user", tmp_path / "site", tmp_path / "empty"
    (user / "snakemake" / "slurm").mkdir(parents=True)
    empty.mkdir()

    def note(config_home: Path, config_dirs: str) -> str:
        env = {**os.environ, "XDG_CONFIG_HOME": str(config_home), "XDG_CONFIG_DIRS": config_dirs}
        cmd = ["bash", "-c", f"set -euo pipefail\n{function}\nnote_own_slurm_profiles"]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

    assert note(empty, str(empty)) == ""
    said = note(user, f"{site}:/etc/xdg")
    assert f"not your {user}/snakemake/slurm (left untouched)" in said
    assert f"--profile slurm --profile {user}/snakemake/slurm" in said
    (site / "snakemake" / "slurm").mkdir(parents=True)
    assert f"not your {site}/snakemake/slurm" in note(empty, f"{site}:/etc/xdg")
