"""One trainer per trial: a lock file in the trial folder, taken for the length of a segment.

Why: when the controlling Snakemake dies (SIGKILL, a closed login session) its
SLURM jobs keep running, and a restarted controller submits the unfinished
trials again. Without a lock two jobs could train one trial at the same time
into the same checkpoint folder.

The lock is ``<trial_dir>/lock``, created atomically (a complete temporary file
hard-linked to that name, which fails if it exists; ``O_EXCL`` where hard links
are not supported) and holding JSON: host, pid, the pid's start time, SLURM job
id, creation time and a random token. Its holder refreshes the file's mtime
every :data:`HEARTBEAT_SECONDS`. A launcher that finds the lock taken asks
whether the owner still lives:

* the owner's SLURM job is our own job (an earlier run of a requeued job): dead;
* same host: alive while its pid runs (and is the same process: start time);
* another host with a SLURM job id: alive while ``squeue`` shows that job
  running (``RUNNING``, ``COMPLETING``, ``SUSPENDED`` ...); ``PENDING`` (e.g.
  requeued), ended or unknown to ``squeue``: dead;
* otherwise, or when ``squeue`` cannot answer: alive while the heartbeat is
  fresher than :data:`STALE_AFTER_SECONDS`.

A live owner is waited for (polling every ``poll_s`` seconds, saying so now and
then); a dead owner's lock is broken with a message, by renaming it aside and
checking that what was moved is the lock judged dead (so that two launchers
breaking the same stale lock never remove a fresh one).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from snakesweep.cluster import slurm_job
from snakesweep.cluster.host_process import pid_alive, process_start_time

LOCK_FILE = "lock"
#: Seconds between two looks at a lock held by a live owner (env: SNAKESWEEP_LOCK_POLL_SECONDS).
POLL_SECONDS = 5.0
ENV_POLL_SECONDS = "SNAKESWEEP_LOCK_POLL_SECONDS"
#: How often the holder refreshes the lock file's mtime.
HEARTBEAT_SECONDS = 30.0
#: A lock whose liveness cannot be checked otherwise is stale after this long without a heartbeat.
STALE_AFTER_SECONDS = 300.0
#: How often a waiting launcher repeats that it is still waiting.
REPORT_EVERY_SECONDS = 60.0


def owner_alive(
    owner: Mapping[str, Any],
    me: Mapping[str, Any],
    *,
    mtime: float | None,
    now: float,
    slurm_state: Callable[[str], str | None] = slurm_job.job_state,
    is_alive: Callable[[int, str | None], bool] = pid_alive,
    stale_after_s: float = STALE_AFTER_SECONDS,
) -> tuple[bool, str]:
    """Whether the lock's ``owner`` may still be training, and why we think so."""
    job = owner.get("slurm_job_id")
    if job and job == me.get("slurm_job_id") and owner.get("pid") != me.get("pid"):
        return False, f"left by an earlier run of this SLURM job ({job}, requeued or restarted)"
    if owner.get("host") == me.get("host") and isinstance(owner.get("pid"), int):
        if owner["pid"] == me.get("pid") and owner.get("pid_start") == me.get("pid_start"):
            return False, "left by this very process (a lock that was never released)"
        if is_alive(owner["pid"], owner.get("pid_start")):
            return True, f"pid {owner['pid']} on {owner['host']} is running"
        return False, f"pid {owner['pid']} on {owner['host']} is gone"
    if job:
        state = slurm_state(str(job))
        if state is not None:
            if state in slurm_job.ALIVE_STATES:
                return True, f"SLURM job {job} is {state}"
            return False, f"SLURM job {job} is {state or 'no longer known to squeue'}"
    if mtime is not None and now - mtime < stale_after_s:
        return True, f"its heartbeat is {now - mtime:.0f}s old"
    return False, "no heartbeat for " + (
        f"{now - mtime:.0f}s" if mtime is not None else "an unknown time"
    )


def describe(owner: Mapping[str, Any]) -> str:
    parts = []
    if owner.get("slurm_job_id"):
        parts.append(f"SLURM job {owner['slurm_job_id']}")
    parts.append(f"pid {owner.get('pid')} on {owner.get('host')}")
    if isinstance(owner.get("time"), int | float):
        parts.append(f"since {time.strftime('%H:%M:%S', time.localtime(owner['time']))}")
    return ", ".join(parts)


class TrialLock:
    """``with TrialLock(trial_dir): ...`` trains a trial with nobody else training it."""

    def __init__(
        self,
        trial_dir: str | os.PathLike,
        *,
        env: Mapping[str, str] | None = None,
        poll_s: float | None = None,
        say: Callable[[str], None] | None = None,
        slurm_state: Callable[[str], str | None] = slurm_job.job_state,
        is_alive: Callable[[int, str | None], bool] = pid_alive,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat_s: float = HEARTBEAT_SECONDS,
        stale_after_s: float = STALE_AFTER_SECONDS,
        report_every_s: float = REPORT_EVERY_SECONDS,
        trial_id: str | None = None,
    ) -> None:
        env = os.environ if env is None else env
        self.path = Path(trial_dir) / LOCK_FILE
        self.poll_s = float(
            poll_s if poll_s is not None else env.get(ENV_POLL_SECONDS) or POLL_SECONDS
        )
        self._say = say or (
            lambda message: print(f"snakesweep: {message}", file=sys.stderr, flush=True)
        )
        self._slurm_state = slurm_state
        self._is_alive = is_alive
        self._clock = clock
        self._sleep = sleep
        self._heartbeat_s = heartbeat_s
        self._stale_after_s = stale_after_s
        self._report_every_s = report_every_s
        self._name = f"trial {trial_id}" if trial_id else f"trial folder {self.path.parent}"
        self.me: dict[str, Any] = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start": process_start_time(os.getpid()),
            "slurm_job_id": slurm_job.job_id(env),
            "token": uuid.uuid4().hex,
        }
        self.held = False
        #: Seconds the last ``acquire`` waited for a live owner.
        self.waited_s = 0.0
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- public ---------------------------------------------------------------------------------
    def acquire(self) -> float:
        """Take the lock, waiting for a live owner to end; return the seconds waited."""
        started = self._clock()
        last_report: float | None = None
        while True:
            if self._try_create():
                self.held = True
                self.waited_s = self._clock() - started
                if last_report is not None:
                    self._say(f"{self._name}: lock taken after waiting {self.waited_s:.0f}s")
                self._start_heartbeat()
                return self.waited_s
            owner, mtime = self._read()
            if owner is None and mtime is None:
                continue  # released between our two looks: try again at once
            now = self._clock()
            if owner is None:
                alive, why = (now - mtime < self._stale_after_s), "unreadable lock file"
            else:
                alive, why = owner_alive(
                    owner,
                    self.me,
                    mtime=mtime,
                    now=now,
                    slurm_state=self._slurm_state,
                    is_alive=self._is_alive,
                    stale_after_s=self._stale_after_s,
                )
            if not alive:
                who = describe(owner) if owner else "an unknown owner"
                self._say(f"{self._name}: breaking the stale lock {self.path} of {who}: {why}")
                self._break(owner)
                continue
            if last_report is None or now - last_report >= self._report_every_s:
                self._say(
                    f"{self._name} is being trained by {describe(owner or {})} ({why}); "
                    f"waiting for it to end before resuming (checking every {self.poll_s:g}s, "
                    f"waited {now - started:.0f}s so far; lock: {self.path})"
                )
                last_report = now
            self._sleep(self.poll_s)

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
            self._heartbeat = None
        if not self.held:
            return
        self.held = False
        owner, _ = self._read()
        if owner is not None and owner.get("token") == self.me["token"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def __enter__(self) -> TrialLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    # -- internals ------------------------------------------------------------------------------
    def _content(self) -> bytes:
        return (json.dumps({**self.me, "time": self._clock()}, sort_keys=True) + "\n").encode()

    def _try_create(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{LOCK_FILE}.{self.me['token']}.tmp")
        tmp.write_bytes(self._content())
        try:
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        except OSError:  # no hard links on this file system: O_EXCL instead
            return self._try_create_excl()
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _try_create_excl(self) -> bool:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(self._content())
        return True

    def _read(self, path: Path | None = None) -> tuple[dict[str, Any] | None, float | None]:
        """The lock's owner (None if unreadable) and mtime (None if there is no lock)."""
        path = path or self.path
        try:
            mtime = path.stat().st_mtime
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None, None
        except (OSError, ValueError):
            try:
                return None, path.stat().st_mtime
            except OSError:
                return None, None
        return (data if isinstance(data, dict) else None), mtime

    def _break(self, owner: Mapping[str, Any] | None) -> None:
        aside = self.path.with_name(f".{LOCK_FILE}.stale.{self.me['token']}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # somebody else broke it first
        moved, _ = self._read(aside)
        same = (moved or {}).get("token") == (owner or {}).get("token")
        if not same:
            # Between our look and the rename another launcher broke the stale lock and took a
            # fresh one: put that back (unless a third one got in first, then it stays theirs).
            with contextlib.suppress(FileExistsError):
                os.link(aside, self.path)
        with contextlib.suppress(FileNotFoundError):
            aside.unlink()

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        if self._heartbeat_s <= 0:
            return

        def beat() -> None:
            while not self._stop.wait(self._heartbeat_s):
                with contextlib.suppress(OSError):
                    os.utime(self.path)

        self._heartbeat = threading.Thread(
            target=beat, name="snakesweep-lock-heartbeat", daemon=True
        )
        self._heartbeat.start()
