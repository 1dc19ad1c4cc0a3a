"""The launcher's side of the warm start: run a trial as a fork of a prepared server.

Why: see :mod:`snakesweep.job.fork_server`. Which server: one per owner (the Snakemake
controller of a local run, or the job of a pack on SLURM), per Python, per start-up
environment and per list of preloaded modules, found by a Unix socket in a private folder
and started on demand under a lock; it ends with its owner. Everything here falls back to a
fresh process (``None`` from :func:`run_warm`) with a line in the trial's log saying why.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from snakesweep.cluster import slurm_job
from snakesweep.cluster.host_process import pid_alive, process_start_time
from snakesweep.job import fork_server
from snakesweep.job.spawn import FORWARDED_SIGNALS
from snakesweep.store import contract

#: A line in a training script that keeps it out of the warm start (``# snakesweep: fresh-process``).
SCRIPT_MARKER = "snakesweep: fresh-process"
#: Seconds a new server may take to import everything before trials start fresh instead.
START_TIMEOUT_S = 300.0
#: Seconds without requests after which a server exits even if its owner still runs.
IDLE_S = 600.0


class WarmStartUnavailable(Exception):
    """Why this trial starts as a fresh process."""


def owner_token(pid: int | None = None, env: Mapping[str, str] | None = None) -> str:
    """Who a server serves: host, pid and start time of the owner, and its SLURM job (if any).

    The workflow sets it (``contract.ENV_WARM_OWNER``) in the controller of a local run, and a
    pack's job sets it to itself inside SLURM: a trial job of its own on SLURM has no owner
    on its node, so it starts fresh (a server would serve one trial)."""
    pid = os.getpid() if pid is None else pid
    env = os.environ if env is None else env
    start = process_start_time(pid) or ""
    return f"{socket.gethostname()}:{pid}:{start}:{slurm_job.job_id(env) or ''}"


def _owner(env: Mapping[str, str]) -> tuple[int, str]:
    token = env.get(contract.ENV_WARM_OWNER)
    if not token:
        raise WarmStartUnavailable("no warm-start owner (not run by the workflow)")
    host, pid, start, job = token.rsplit(":", 3)
    if job != (slurm_job.job_id(env) or ""):
        raise WarmStartUnavailable("a SLURM job of one trial (the warm start serves packs there)")
    if host != socket.gethostname() or not pid_alive(int(pid), start or None):
        raise WarmStartUnavailable(f"its owner {token} does not run on this host")
    return int(pid), start


def why_fresh(script: str, env: Mapping[str, str]) -> str | None:
    """Why this trial must start fresh although the sweep asks for the warm start."""
    if env.get(contract.ENV_WARM_START) == "0":
        return f"{contract.ENV_WARM_START}=0"
    if not sys.platform.startswith("linux"):
        return "the warm start needs Linux (/proc, pidfd; torch is not fork-safe on macOS)"
    try:
        with open(script, encoding="utf-8", errors="replace") as f:
            if SCRIPT_MARKER in f.read():
                return f"the script says {SCRIPT_MARKER!r}"
    except OSError as error:
        return f"cannot read the script: {error}"
    return None


def server_env(env: Mapping[str, str]) -> dict[str, str]:
    """The trial's environment without its per-trial settings: the server's."""
    return {k: v for k, v in env.items() if not k.startswith("SNAKESWEEP_")}


def socket_folder() -> Path:
    """A folder only this user can enter: whoever reaches a server runs code as its owner."""
    folder = Path(tempfile.gettempdir()) / f"snakesweep-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise WarmStartUnavailable(f"{folder} is not private to this user")
    return folder


def server_key(
    python: str, script: str, modules: Sequence[str], env: Mapping[str, str], owner: tuple
) -> str:
    """One server per owner, Python, script folder, preloaded modules and start-up settings."""
    what = [
        list(owner),
        python,
        os.path.dirname(os.path.realpath(script)),
        list(modules),
        sorted(fork_server.startup_env(env).items()),
    ]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()[:24]


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return sock


def connect(
    python: str,
    script: str,
    modules: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path | None,
) -> socket.socket:
    """A connection to the server for this trial, started first if none runs."""
    owner = _owner(env)
    key = server_key(python, script, modules, env, owner)
    folder = socket_folder()
    path = folder / f"{key}.sock"
    sock = _connect(path)
    if sock is not None:
        return sock
    with open(folder / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one start; the others wait for it, then connect
        sock = _connect(path)
        if sock is not None:
            return sock
        return _start(python, script, modules, env, owner, path, log_dir, key)


def _start(
    python: str,
    script: str,
    modules: Sequence[str],
    env: Mapping[str, str],
    owner: tuple[int, str],
    path: Path,
    log_dir: Path | None,
    key: str,
) -> socket.socket:
    log_path = (log_dir or path.parent) / f"server-{key}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [python, "-m", "snakesweep.job.fork_server", "--socket", str(path)]
    command += ["--owner-pid", str(owner[0]), "--owner-start", owner[1], "--idle-s", str(IDLE_S)]
    command += ["--path", os.path.dirname(os.path.realpath(script))]
    for name in modules:
        command += ["--module", name]
    with open(log_path, "a", encoding="utf-8") as log:
        server = subprocess.Popen(
            command,
            env=server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # not stopped by a Ctrl-C meant for Snakemake's jobs
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock is not None:
            return sock
        if server.poll() is not None:
            raise WarmStartUnavailable(
                f"the warm-start server exited {server.returncode} (log: {log_path})"
            )
        time.sleep(0.02)
    server.kill()
    raise WarmStartUnavailable(f"the warm-start server was not ready in {START_TIMEOUT_S:g} s")


def run_warm(
    python: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log: IO[str],
    signals: list[int],
    modules: Sequence[str] = (),
    log_dir: Path | None = None,
) -> int | None:
    """Run ``argv`` (script and arguments) as a fork of a warm server, passing stop signals on;
    its exit code as ``Popen`` gives it, or None when it must start fresh (logged)."""
    script = argv[0]
    try:
        reason = why_fresh(script, env)
        if reason is not None:
            raise WarmStartUnavailable(reason)
        sock = connect(python, script, modules, env, log_dir)
    except (WarmStartUnavailable, OSError) as error:
        _note(log, f"warm start not used ({error}): a fresh process")
        return None
    trial: list[int] = []
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        signals.append(signum)
        if not trial:
            pending.append(signum)
            return
        try:
            os.kill(trial[0], signum)
        except ProcessLookupError:
            pass

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED_SIGNALS}
    try:
        with sock, sock.makefile("rb") as replies:
            request = {
                "argv": list(argv),
                "env": dict(env),
                "cwd": os.getcwd(),
                "python": python,
                "affinity": sorted(os.sched_getaffinity(0))
                if hasattr(os, "sched_getaffinity")
                else None,
            }
            socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], [log.fileno()])
            first = _reply(replies)
            if first is None or "refused" in first:
                why = first["refused"] if first else "the server closed the connection"
                _note(log, f"warm start refused ({why}): a fresh process")
                return None
            trial.append(int(first["pid"]))
            for signum in pending:
                os.kill(trial[0], signum)
            last = _reply(replies)
            if last is None:  # the handler died: its trial is orphaned; end it
                _kill(trial[0])
                _note(log, "the warm-start server lost the trial process; killed it")
                return -signal.SIGKILL
            return os.waitstatus_to_exitcode(int(last["status"]))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reply(replies: IO[bytes]) -> dict[str, Any] | None:
    line = replies.readline()
    return json.loads(line) if line else None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _note(log: IO[str], message: str) -> None:
    log.write(f"=== {message}\n")
    log.flush()
