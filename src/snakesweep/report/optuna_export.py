"""``snakesweep export optuna``: a sweep as an Optuna study in a journal file.

The file is written by Optuna's own ``JournalStorage``, so ``optuna-dashboard FILE``,
``optuna.load_study`` and ``optuna.importance`` read it like any study (what each trial
carries: :mod:`snakesweep.report.optuna_trials`).

**Running it twice gives the same study.** A fresh file is built in memory and then
written in one atomic rename; the only thing in Optuna's journal that differs between two
runs, the writer's random worker id, is replaced by :data:`WORKER_ID`, and every time in it
is the trial's own, so the same sweep gives the same bytes.

**Keeping the file current.** A journal is read incrementally: ``optuna-dashboard`` and any
other reader remember how far they read and only read the lines added since. So once the file
exists, a later export (``--watch`` runs one every few seconds) appends only what changed:
new trials, new epochs, changed attributes and trials that finished, through
``JournalStorage`` on ``JournalFileBackend`` (whose lock, a symlink beside the file, is the
only lock taken). A trial that finishes while being watched gets the time of that export as
its completion time. Only when the sweep changed in a way a journal cannot append (a trial
that changed after it finished, such as a failed trial run again, or a trial no longer in
the plan) is the file rewritten from scratch, and the result says so: a dashboard open on
it must then be restarted.

The export reads the trial folders without locks (:func:`snakesweep.report.status.scan_sweep`)
and writes nothing but ``FILE``, which may not lie inside a trial folder: it never blocks or
touches a trial.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from snakesweep.report.optuna_trials import (
    DIRECTIONS,
    SpaceError,
    space_distributions,
    state_counts,
)
from snakesweep.report.optuna_trials import sweep_trials as frozen_trials
from snakesweep.report.status import StatusError, scan_sweep
from snakesweep.report.status_config import planned_trials, status_plan
from snakesweep.store import contract
from snakesweep.store.atomic import write_bytes
from snakesweep.store.plan_file import PLAN_FILE, read_plan

#: The worker id every line of a fresh export carries (Optuna would put a random one there).
WORKER_ID = "snakesweep-export"
#: Study user attributes: where the sweep lives, and what it optimises.
RESULTS_ATTR = "snakesweep_results"


class ExportError(StatusError):
    """The sweep cannot be exported to that file (the message says why and what to do)."""


@dataclass
class SweepStudy:
    """What an export writes: the study's name, direction, metric and trials in order."""

    root: str
    name: str
    metric: str
    mode: str
    trials: list[FrozenTrial]
    #: Where the search space came from (for messages).
    space_source: str

    @property
    def direction(self) -> StudyDirection:
        return DIRECTIONS[self.mode]


@dataclass
class ExportResult:
    """What an export did: ``written`` (a new file), ``updated`` (appended), ``unchanged``, or
    ``rewritten`` (the file could not be brought up to date by appending; ``reason`` says why)."""

    path: str
    study: str
    action: str
    counts: dict[str, int]
    #: Journal operations appended by an update.
    appended: int = 0
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        total = sum(self.counts.values())
        what = {
            "written": "written",
            "updated": f"updated ({self.appended} journal operations appended)",
            "unchanged": "unchanged (nothing new)",
            "rewritten": f"rewritten ({self.reason}): restart optuna-dashboard on it",
        }[self.action]
        lines = [f"{self.path}: study {self.study!r} {what}; {total} trials: {states}"]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])


# -- reading the sweep -------------------------------------------------------------------------


def read_sweep(
    root: str | os.PathLike | None,
    config_path: str | os.PathLike | None = None,
    study_name: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> SweepStudy:
    """The sweep in ``root`` as the study to export, its plan and search space from
    ``config_path`` if given, else from the last run's ``plan.json``."""
    plan = status_plan(None if root is None else str(root), config_path, metric, mode)
    space, source = None, "the trials' own values (no search space known)"
    if config_path:
        _, config = planned_trials(config_path)
        space = {k: config.get(k) for k in ("strategy", "parameters") if k in config}
        source = f"--config {config_path}"
    elif (recorded := read_plan(plan.root)) is not None and recorded.get("space"):
        space = recorded["space"]
        source = f"the last run's {Path(plan.root) / PLAN_FILE}"
    status = scan_sweep(plan.root, metric=plan.metric, mode=plan.mode, planned=plan.trials)
    if status.metric is None or status.mode not in DIRECTIONS:
        raise ExportError(
            f"{plan.root}: cannot tell the metric and mode (no result and no plan names them); "
            "give --config CONFIGFILE, or --metric NAME --mode min|max"
        )
    try:
        trials = frozen_trials(status, space_distributions(space))
    except SpaceError as error:
        raise ExportError(
            f"{error} (search space from {source}); give --config with the sweep's config"
        ) from None
    return SweepStudy(
        root=plan.root,
        name=study_name or Path(plan.root).name,
        metric=status.metric,
        mode=status.mode,
        trials=trials,
        space_source=source,
    )


# -- writing a journal -------------------------------------------------------------------------


class MemoryJournal(BaseJournalBackend):
    """A journal held in memory: Optuna's ``JournalStorage`` writes the study's operations
    here, and :func:`journal_bytes` turns them into the lines ``JournalFileBackend`` writes."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        yield from self.logs[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(copy.deepcopy(logs))


def journal_bytes(study: SweepStudy) -> bytes:
    """The journal file of ``study``: the same bytes for the same sweep (module docstring)."""
    backend = MemoryJournal()
    with _quiet_optuna():
        created = optuna.create_study(
            storage=JournalStorage(backend), study_name=study.name, direction=study.direction
        )
        created.set_metric_names([study.metric])
        for key, value in _study_attrs(study).items():
            created.set_user_attr(key, value)
        created.add_trials(study.trials)
    # JournalFileBackend's line format: compact JSON, one operation per line.
    lines = [
        json.dumps({**log, "worker_id": WORKER_ID}, separators=(",", ":")) + "\n"
        for log in backend.logs
    ]
    return "".join(lines).encode("utf-8")


def _study_attrs(study: SweepStudy) -> dict[str, Any]:
    return {RESULTS_ATTR: study.root, "metric": study.metric, "mode": study.mode}


class _Incompatible(Exception):
    """The file cannot be brought up to date by appending (the message says why)."""


def export_study(study: SweepStudy, path: str | os.PathLike) -> ExportResult:
    """Write ``study`` to the journal ``path``: a new file, or what changed appended to it."""
    path = Path(path)
    _check_target(study, path)
    counts = state_counts(study.trials)
    if not path.exists() or path.stat().st_size == 0:
        write_bytes(path, journal_bytes(study))
        return ExportResult(str(path), study.name, "written", counts)
    try:
        appended = _append_changes(study, path)
    except _Incompatible as reason:
        write_bytes(path, journal_bytes(study))
        return ExportResult(str(path), study.name, "rewritten", counts, reason=str(reason))
    action = "updated" if appended else "unchanged"
    return ExportResult(str(path), study.name, action, counts, appended=appended)


def _check_target(study: SweepStudy, path: Path) -> None:
    trials_dir = (Path(study.root) / contract.TRIALS_DIR).resolve()
    if path.resolve().is_relative_to(trials_dir):
        raise ExportError(
            f"{path}: lies inside the trial folders ({trials_dir}), which belong to the "
            "trials; write the journal elsewhere, e.g. beside results/<sweep>"
        )
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; name the journal file to write")


def _append_changes(study: SweepStudy, path: Path) -> int:
    """Append what changed since the file was written; the number of operations appended."""
    try:
        with _quiet_optuna():
            storage = JournalStorage(JournalFileBackend(str(path)))
            studies = storage.get_all_studies()
    except (ValueError, KeyError, TypeError) as error:
        raise ExportError(
            f"{path}: not an Optuna journal file ({error}); the export writes its own file: "
            "name a new one or remove this one"
        ) from None
    names = [s.study_name for s in studies]
    if not names:  # Optuna skips a last line it cannot parse (one being written): not ours
        raise ExportError(
            f"{path}: not an Optuna journal file (it holds no study); the export writes its "
            "own file: name a new one or remove this one"
        )
    if names != [study.name]:
        raise ExportError(
            f"{path}: holds the Optuna studies {names}, not only {study.name!r}; the export "
            "keeps one sweep per file: name a new file or remove this one"
        )
    with _quiet_optuna():
        loaded = optuna.load_study(study_name=study.name, storage=storage)
    if loaded.directions != [study.direction] or loaded.metric_names not in (None, [study.metric]):
        raise _Incompatible(f"the study optimised another metric or direction than {study.metric}")
    study_id = storage.get_study_id_from_name(study.name)
    existing = storage.get_all_trials(study_id, deepcopy=False)
    by_id = {t.user_attrs.get("trial_id"): t for t in existing}
    wanted = {t.user_attrs["trial_id"]: t for t in study.trials}
    gone = sorted(str(t) for t in set(by_id) - set(wanted))
    if gone:
        raise _Incompatible(f"trial(s) {', '.join(gone)} are no longer part of the sweep")
    updates = [(by_id[tid], t) for tid, t in wanted.items() if tid in by_id]
    planned = [_trial_updates(old, new) for old, new in updates]  # raises before any write
    appended = 0
    with _quiet_optuna():
        for (old, _), ops in zip(updates, planned, strict=True):
            trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, old.number)
            for op, *args in ops:
                getattr(storage, op)(trial_id, *args)
                appended += 1
        for trial in study.trials:
            if trial.user_attrs["trial_id"] not in by_id:
                loaded.add_trial(trial)
                appended += 1
    return appended


def _trial_updates(old: FrozenTrial, new: FrozenTrial) -> list[tuple[Any, ...]]:
    """The storage calls that bring ``old`` (in the file) to ``new`` (the sweep now)."""
    tid = new.user_attrs["trial_id"]
    if old.params != new.params:
        raise _Incompatible(f"trial {tid} has other parameters than in the file")
    if old.distributions != new.distributions:
        raise _Incompatible(
            f"the distributions of trial {tid}'s parameters changed (without a search space "
            "they are read off the values: give --config)"
        )
    if old.state.is_finished():
        if _content(old) != _content(new):
            raise _Incompatible(f"trial {tid} changed after it finished ({old.state.name})")
        return []
    finished = new.state.is_finished()
    ops: list[tuple[Any, ...]] = []
    for step, value in sorted(new.intermediate_values.items()):
        if step not in old.intermediate_values or not _same(old.intermediate_values[step], value):
            ops.append(("set_trial_intermediate_value", step, value))
    dropped = set(old.intermediate_values) - set(new.intermediate_values)
    if finished and dropped:
        raise _Incompatible(f"trial {tid} finished without epochs {sorted(dropped)} it reported")
    for key, value in new.user_attrs.items():
        if old.user_attrs.get(key, _MISSING) != value:
            ops.append(("set_trial_user_attr", key, value))
    if finished and set(old.user_attrs) - set(new.user_attrs):
        raise _Incompatible(f"trial {tid} lost attributes it had in the file")
    if finished:
        ops.append(("set_trial_state_values", new.state, new.values))
    return ops


_MISSING = object()


def _content(trial: FrozenTrial) -> tuple[Any, ...]:
    """What makes two exported trials the same (times aside)."""
    inter = sorted((k, "nan" if math.isnan(v) else v) for k, v in trial.intermediate_values.items())
    return (trial.state, trial.values, trial.params, trial.user_attrs, inter)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's info lines ("A new study created ...") and experimental warnings say nothing
    about the sweep; keep them out of the command's output."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(level)


def export_sweep(
    root: str | os.PathLike | None,
    path: str | os.PathLike,
    config_path: str | os.PathLike | None = None,
    study_name: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> ExportResult:
    """Read the sweep in ``root`` and write it to the journal ``path`` (:func:`export_study`)."""
    study = read_sweep(root, config_path, study_name, metric, mode)
    result = export_study(study, path)
    if study.space_source.startswith("the trials' own values") and study.trials:
        result.notes.append(
            "no search space known (no --config, no space in plan.json): each parameter's "
            "distribution is read off the trials' values; give --config for the real ones"
        )
    return result


def load_trials(path: str | os.PathLike, study_name: str) -> Sequence[FrozenTrial]:
    """The trials of ``study_name`` in the journal ``path``, as Optuna reads them."""
    with _quiet_optuna():
        storage = JournalStorage(JournalFileBackend(str(path)))
        return optuna.load_study(study_name=study_name, storage=storage).get_trials()
