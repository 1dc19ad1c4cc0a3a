"""The ``snakesweep`` command: ``snakesweep status results/<sweep>`` and friends.

Running the sweep itself is Snakemake's job (``snakemake``, ``snakemake --profile slurm``);
this command only reads what a sweep leaves in its results folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from snakesweep import __version__
from snakesweep.report.status import StatusError, scan_sweep
from snakesweep.report.status_config import status_plan

CLEAR_SCREEN = "\033[2J\033[H"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snakesweep",
        description="Hyper-parameter sweeps of PyTorch training as a Snakemake workflow.",
    )
    parser.add_argument("--version", action="version", version=f"snakesweep {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="where a sweep stands: counts, best so far, running trials (at any time)",
        description=(
            "Print a live leaderboard of a sweep from its results folder: how many trials "
            "are completed, running, waiting to continue, pending, pruned, diverged or "
            "failed, the best so far, and each running trial's last epoch and metric. "
            "Safe to run while the sweep runs; it reads files and writes nothing."
        ),
    )
    status.add_argument(
        "root",
        nargs="?",
        help="the sweep's results folder, results/<sweep> (default: the one --config names)",
    )
    status.add_argument(
        "--config",
        metavar="CONFIGFILE",
        help="the sweep's config file: counts planned trials not started as pending, "
        "and gives the metric and mode",
    )
    status.add_argument("--metric", help="metric to rank by (default: from results or --config)")
    status.add_argument(
        "--mode", choices=["min", "max"], help="whether smaller or larger is better"
    )
    add_watch(status, "refresh every SECONDS (default 5) until Ctrl-C")
    status.add_argument("--json", action="store_true", help="print machine-readable JSON")
    status.add_argument(
        "--top", type=int, default=20, help="leaderboard rows to show (0: all; default 20)"
    )
    status.set_defaults(handler=cmd_status)
    export = commands.add_parser(
        "export",
        help="write a sweep in another tool's format (optuna: a journal for optuna-dashboard)",
        description="Write a sweep in another tool's format.",
    )
    formats = export.add_subparsers(dest="format", required=True, metavar="FORMAT")
    optuna = formats.add_parser(
        "optuna",
        help="an Optuna study in a journal file (optuna-dashboard FILE, optuna.load_study)",
        description=(
            "Write the sweep as an Optuna study in a journal file (JournalStorage, file "
            "backend): every trial that began, with its parameters and their distributions, "
            "its state (COMPLETE, PRUNED, FAIL for failed and diverged, RUNNING), its final "
            "value, the metric of every epoch as intermediate values, and its trial id, log "
            "and restarts as user attributes. The same sweep gives the same file; a file "
            "written before is brought up to date by appending, so that optuna-dashboard "
            "FILE, left open, follows the sweep. Reads the trial folders without locks and "
            "writes only FILE."
        ),
    )
    optuna.add_argument("root", help="the sweep's results folder, results/<sweep>")
    optuna.add_argument("file", help="the journal file to write (or bring up to date)")
    optuna.add_argument(
        "--config",
        metavar="CONFIGFILE",
        help="the sweep's config: its plan and search space (default: the last run's plan.json)",
    )
    optuna.add_argument("--study-name", help="the study's name (default: the folder's name)")
    optuna.add_argument("--metric", help="the metric (default: from the plan or the results)")
    optuna.add_argument(
        "--mode", choices=["min", "max"], help="whether smaller or larger is better"
    )
    add_watch(optuna, "bring FILE up to date every SECONDS (default 5) until Ctrl-C")
    optuna.set_defaults(handler=cmd_export_optuna)
    return parser


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    plan = status_plan(args.root, args.config, args.metric, args.mode)

    def render() -> str:
        status = scan_sweep(
            plan.root,
            metric=plan.metric,
            mode=plan.mode,
            planned=plan.trials,
            rounds_planned=plan.rounds,
        )
        status.plan_source = plan.source
        if args.json:
            return json.dumps(status.to_json(), indent=2, sort_keys=True)
        from snakesweep.report.status_text import format_status  # imports pandas: text only

        return format_status(status, top=args.top)

    if args.watch is None:
        print(render(), file=out)
        return 0
    return watch(render, args.watch, out, clear=not args.json)


def cmd_export_optuna(args: argparse.Namespace, out: TextIO) -> int:
    from snakesweep.report.optuna_export import export_sweep  # imports Optuna: this command only

    def render() -> str:
        result = export_sweep(
            args.root, args.file, args.config, args.study_name, args.metric, args.mode
        )
        text = result.summary()
        return text if args.watch is None else f"{time.strftime('%H:%M:%S')} {text}"

    if args.watch is None:
        print(render(), file=out)
        return 0
    return watch(render, args.watch, out, clear=False)


def watch(
    render: Callable[[], str],
    interval: float,
    out: TextIO,
    clear: bool = True,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Print ``render()`` every ``interval`` seconds (clearing the screen first) until Ctrl-C."""
    sleep = time.sleep if sleep is None else sleep
    try:
        while True:
            text = render()
            out.write((CLEAR_SCREEN if clear else "") + text + "\n")
            out.flush()
            sleep(max(0.1, interval))
    except KeyboardInterrupt:
        out.write("\n")
        return 0


def add_watch(parser: argparse.ArgumentParser, help: str) -> None:
    """``--watch [SECONDS]``: repeat every SECONDS (5 when given bare) until Ctrl-C."""
    parser.add_argument(
        "--watch", nargs="?", type=float, const=5.0, default=None, metavar="SECONDS", help=help
    )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args, out)
    except StatusError as error:
        print(f"snakesweep {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
