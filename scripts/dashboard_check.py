#!/usr/bin/env python
"""Check in a real browser that optuna-dashboard shows an exported sweep.

    .venv/bin/python scripts/dashboard_check.py results/demo [--screenshot docs/img/dashboard.png]
    .venv/bin/python scripts/dashboard_check.py --journal FILE --study NAME [--expect N]

With a sweep folder it exports the sweep (``snakesweep export optuna``) to a journal in a
scratch folder; with ``--journal`` it checks an existing one. Then it starts
``optuna-dashboard`` on that file on a free port of 127.0.0.1, loads the study's trial list
in headless Chromium (``--dump-dom`` once the page's scripts had 15 s of virtual time), reads
the "N Trials" heading and each trial's state from the page, and compares them with the
journal as Optuna reads it (and with ``--expect``). ``--screenshot PNG`` also saves the
study's page as the browser drew it. Exit 0 when the page agrees, 1 when it does not.

Needs the ``dashboard`` extra (``pip install 'snakesweep[dashboard]'``) and Chromium
(Debian: ``apt-get install -y chromium``; ``--chromium PATH`` or ``$CHROMIUM`` for another).
Nothing is fetched from the network: the dashboard serves its own page and scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

#: Chromium without a display, a sandbox (root in containers), a GPU, or calls home.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
)
#: Virtual time the page's scripts get before the DOM is read (ms): React renders, fetches
#: the trials from the dashboard's API and renders again well within it.
VIRTUAL_TIME_MS = 15000
TRIAL_COUNT = re.compile(r"\|(\d+) Trials\|")
TRIAL_STATE = re.compile(r"\|Trial (\d+)\|(Complete|Pruned|Fail|Running|Waiting)(?=\|)")


def find_chromium(given: str | None = None) -> str:
    for candidate in (given, os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    raise SystemExit(
        "dashboard_check: no Chromium found; install it (Debian: apt-get install -y chromium) "
        "or give --chromium PATH"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dashboard(journal: Path, timeout: float = 60.0) -> Iterator[str]:
    """``optuna-dashboard JOURNAL`` on a free local port, until the block ends; yields its URL."""
    port = free_port()
    # The command the dashboard extra installs, beside this interpreter (a venv's bin/).
    binary = shutil.which("optuna-dashboard", path=os.path.dirname(sys.executable))
    binary = binary or shutil.which("optuna-dashboard")
    if binary is None:
        raise SystemExit(
            "dashboard_check: no optuna-dashboard; install it: pip install 'snakesweep[dashboard]'"
        )
    command = [binary, str(journal)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/studies", timeout=5) as answer:
                    json.load(answer)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(
                        f"dashboard_check: optuna-dashboard did not answer on {url}:\n"
                        + log.read().decode(errors="replace")[-2000:]
                    ) from None
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def browse(chromium: str, url: str, *args: str) -> subprocess.CompletedProcess:
    """Chromium on ``url`` with a fresh profile (nothing shared with a user's browser)."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        command += [f"--virtual-time-budget={VIRTUAL_TIME_MS}", *args, url]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)


def page_text(chromium: str, url: str) -> str:
    """The text the page shows once rendered, each element's text between ``|``."""
    dom = browse(chromium, url, "--dump-dom").stdout
    for tag in ("style", "script", "svg"):
        dom = re.sub(rf"<{tag}\b.*?</{tag}>", " ", dom, flags=re.S)
    text = re.sub(r"<[^>]+>", "|", dom)
    return re.sub(r"\|(\s*\|)+", "|", text)


def shown_trials(text: str) -> tuple[int | None, dict[int, str]]:
    """The trial count a trial-list page shows, and each listed trial's state."""
    count = TRIAL_COUNT.search(text)
    states = {int(n): state for n, state in TRIAL_STATE.findall(text)}
    return (int(count.group(1)) if count else None), states


def journal_trials(journal: Path, study: str) -> tuple[int, dict[int, str]]:
    """What Optuna reads from the journal: the study's id and each trial's state, as the
    dashboard spells them (COMPLETE -> Complete)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(journal)))
    study_id = storage.get_study_id_from_name(study)
    trials = storage.get_all_trials(study_id)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return study_id, {t.number: t.state.name.capitalize() for t in trials}


def check(
    chromium: str,
    url: str,
    study_id: int,
    expected: dict[int, str],
) -> bool:
    """Load the trial list and compare it with ``expected`` (trial number -> state)."""
    count, states = shown_trials(page_text(chromium, f"{url}/dashboard/studies/{study_id}/trials"))
    print(f"dashboard page: {count} Trials; {len(states)} listed: {states}")
    return count == len(expected) and states == expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", nargs="?", help="a sweep folder, results/<sweep>, to export")
    parser.add_argument("--journal", help="check this journal instead of exporting a sweep")
    parser.add_argument("--study", help="the study's name (default: the sweep folder's name)")
    parser.add_argument("--expect", type=int, help="the number of trials the page must show")
    parser.add_argument("--screenshot", help="save the study's page as this PNG")
    parser.add_argument("--chromium", help="the Chromium binary (default: chromium on PATH)")
    args = parser.parse_args(argv)
    if not (args.root or args.journal):
        parser.error("give a sweep folder (results/<sweep>) or --journal FILE")
    chromium = find_chromium(args.chromium)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dashboard-check-") as scratch:
        journal = Path(args.journal) if args.journal else Path(scratch) / "study.log"
        study = args.study or (Path(args.root).name if args.root else None)
        if args.root and not args.journal:
            from snakesweep.report.optuna_export import export_sweep

            result = export_sweep(args.root, journal, study_name=study)
            print(result.summary())
        if study is None:
            parser.error("--journal needs --study NAME")
        study_id, expected = journal_trials(journal, study)
        print(f"journal: {len(expected)} trials: {expected}")
        with dashboard(journal) as url:
            ok = check(chromium, url, study_id, expected)
            if args.screenshot:
                Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
                size = "--window-size=1400,1000"
                shot = f"--screenshot={Path(args.screenshot).resolve()}"
                browse(chromium, f"{url}/dashboard/studies/{study_id}", size, shot)
                print(f"screenshot: {args.screenshot}")
    if args.expect is not None and args.expect != len(expected):
        print(f"dashboard_check: expected {args.expect} trials, the journal has {len(expected)}")
        ok = False
    print(f"dashboard_check: {'ok' if ok else 'MISMATCH'} ({time.monotonic() - started:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
