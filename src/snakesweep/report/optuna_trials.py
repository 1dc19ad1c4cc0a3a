"""A sweep as Optuna trials: the one place that says what each trial is in Optuna's terms.

The journal export (:mod:`snakesweep.report.optuna_export`, what ``optuna-dashboard`` shows) and
the importance figure (:mod:`snakesweep.report.importance`) both read a sweep through
:func:`sweep_trials`, so that a trial means the same in the dashboard and in the report:

* **state**: completed -> ``COMPLETE``; pruned -> ``PRUNED``; diverged and failed -> ``FAIL``
  (so is a completed trial without a finite metric: Optuna refuses such a ``COMPLETE``);
  running and waiting (saved, to be continued) -> ``RUNNING``. Pending trials (no segment
  started) are left out: an Optuna study holds the trials that began.
* **value**: the metric at the last epoch trained (``final``, what the leaderboard ranks by)
  for ``COMPLETE`` and ``PRUNED`` trials (Optuna, too, keeps a pruned trial's last reported
  value); none for the others.
* **intermediate values**: the metric at every epoch trained, step = epoch (a diverged
  trial's NaN included; an epoch that did not report the metric has none).
* **params**: the trial's parameters except ``epochs`` (the budget, which the sweep sets and
  does not search), each with the distribution of its kind in the search space (see
  :func:`distribution`); a parameter the space does not describe gets one read off the values.
* **user attributes**: ``trial_id``, ``status`` (snakesweep's, so diverged and failed stay
  apart), ``epochs`` (trained), ``budget``, ``segments``, ``restarts``, ``log`` and ``error``.
* **times**: the first segment's start and, once finished, the last segment's end.
* **numbers**: trials in the order they first started (ties by trial id), so that a trial
  that starts later never renumbers the ones before it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from snakesweep.report.status import SweepStatus, TrialFiles, TrialStatus, epochs_of
from snakesweep.search.space import ConfigError, Parameter, parse_parameters
from snakesweep.store import contract

#: snakesweep's trial state -> Optuna's (pending trials are not exported).
STATES: dict[str, TrialState] = {
    "completed": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "diverged": TrialState.FAIL,
    "failed": TrialState.FAIL,
    "running": TrialState.RUNNING,
    "waiting": TrialState.RUNNING,
}
#: The config's ``mode`` -> the study's direction.
DIRECTIONS = {"min": StudyDirection.MINIMIZE, "max": StudyDirection.MAXIMIZE}
#: The parameter the workflow passes itself (the budget): not part of the search space.
BUDGET_PARAM = "epochs"


class SpaceError(ValueError):
    """The search space cannot describe the sweep's trials (the message says which and why)."""


def distribution(param: Parameter) -> BaseDistribution:
    """The Optuna distribution of a search-space parameter.

    ``choice`` and ``grid`` -> categorical over their values; ``fixed`` -> categorical with
    one choice (importance leaves it out); ``uniform`` -> float; ``loguniform`` -> float on a
    log scale; ``int`` -> int (log scale with ``log: true``).
    """
    if param.kind in ("choice", "grid"):
        return CategoricalDistribution(list(param.values))
    if param.kind == "fixed":
        return CategoricalDistribution([param.value])
    if param.kind in ("uniform", "loguniform"):
        return FloatDistribution(float(param.low), float(param.high), log=param.log)
    if param.kind == "int":
        return IntDistribution(int(param.low), int(param.high), log=param.log)
    raise SpaceError(f"parameters.{param.name}: kind {param.kind!r} has no Optuna distribution")


def space_distributions(space: Mapping[str, Any] | None) -> dict[str, BaseDistribution]:
    """Distributions of a search space as the config writes it (``strategy``, ``parameters``).

    ``None`` (no space known) gives none: every parameter's is then read off the values.
    """
    if not space:
        return {}
    try:
        params = parse_parameters(space.get("parameters") or {}, space.get("strategy", "random"))
    except ConfigError as error:
        raise SpaceError(f"the search space cannot be read: {error}") from None
    return {p.name: distribution(p) for p in params}


def inferred_distribution(values: Sequence[Any]) -> BaseDistribution:
    """A distribution that holds ``values``, for a parameter the search space does not name.

    Integers -> int over their range, numbers -> float over their range, anything else
    (text, booleans, a mix) -> categorical over the distinct values. Without the space the
    scale (log or not) is unknown: linear.
    """
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if values and len(numbers) == len(values) and all(math.isfinite(v) for v in numbers):
        if all(isinstance(v, int) for v in numbers):
            return IntDistribution(min(numbers), max(numbers))
        return FloatDistribution(float(min(numbers)), float(max(numbers)))
    distinct: dict[tuple[str, str], Any] = {}
    for v in values:
        distinct.setdefault((type(v).__name__, repr(v)), v)
    return CategoricalDistribution([distinct[k] for k in sorted(distinct)])


def sweep_trials(
    status: SweepStatus, distributions: Mapping[str, BaseDistribution] | None = None
) -> list[FrozenTrial]:
    """The sweep's trials that began, as Optuna trials in study order (see the module doc).

    ``distributions`` come from the search space (:func:`space_distributions`); parameters it
    lacks get :func:`inferred_distribution` over the values of every trial, pending ones
    included (with a plan, its values are known before the trials run). Raises
    :class:`SpaceError` when a trial's value lies outside its parameter's distribution.
    """
    started = [t for t in status.trials if t.state in STATES]
    # Pending trials (planned, not started) count for inferred distributions: a plan's values
    # are known before its trials run, so a trial that starts later does not change them.
    params = {
        t.trial_id: {k: v for k, v in t.params.items() if k != BUDGET_PARAM} for t in status.trials
    }
    known = dict(distributions or {})
    for name in sorted({k for p in params.values() for k in p} - set(known)):
        known[name] = inferred_distribution([p[name] for p in params.values() if name in p])
    out = []
    for trial in started:
        files = status.files.get(trial.trial_id)
        out.append(_frozen(status, trial, files, params[trial.trial_id], known))
    return sorted(out, key=lambda t: (t.datetime_start, t.user_attrs["trial_id"]))


def _frozen(
    status: SweepStatus,
    trial: TrialStatus,
    files: TrialFiles | None,
    params: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
) -> FrozenTrial:
    state = STATES[trial.state]
    value = trial.value if _finite(trial.value) else None
    if state == TrialState.COMPLETE and value is None:
        state = TrialState.FAIL  # completed without a finite metric: Optuna has no such COMPLETE
    if state not in (TrialState.COMPLETE, TrialState.PRUNED):
        value = None
    history = epochs_of(files, trial.state) if files else []
    intermediate = {
        int(row["epoch"]): float(row[status.metric])
        for row in history
        if isinstance(row.get("epoch"), int) and _number(row.get(status.metric))
    }
    start, end = _times(files, state.is_finished())
    try:
        frozen = optuna.trial.create_trial(
            state=state,
            value=value,
            params=dict(params),
            distributions={name: distributions[name] for name in params},
            user_attrs=_user_attrs(status.root, trial),
            intermediate_values=intermediate,
        )
    except ValueError as error:
        raise SpaceError(f"trial {trial.trial_id}: {error}") from None
    # create_trial stamps the time of the call; the trial's own times make the export the
    # same whenever it runs.
    frozen.datetime_start = start
    frozen.datetime_complete = end if state.is_finished() else None
    return frozen


def _user_attrs(root: str, trial: TrialStatus) -> dict[str, Any]:
    log = trial.log
    if log is None and trial.budget is not None:
        log = os.path.join(
            root, contract.TRAIN_LOG_PATH.format(trial_id=trial.trial_id, budget=trial.budget)
        )
    attrs = {
        "trial_id": trial.trial_id,
        "status": trial.state,
        "epochs": trial.epochs_done,
        "budget": trial.budget,
        "segments": trial.segments,
        "restarts": trial.restarts,
        "log": log,
        "error": trial.error,
    }
    return {k: v for k, v in attrs.items() if v is not None}


def _times(files: TrialFiles | None, finished: bool) -> tuple[datetime, datetime]:
    """The first segment's start and the last segment's end (else when metrics last changed)."""
    events = files.events if files else []
    starts = [e["time"] for e in events if e.get("event") == "start" and _number(e.get("time"))]
    ends = [e["time"] for e in events if e.get("event") == "end" and _number(e.get("time"))]
    fallback = (files.metrics_mtime if files else None) or 0.0
    start = min(starts) if starts else fallback
    end = max([start, *ends]) if ends else max(start, fallback)
    return _utc(start), _utc(end if finished else start)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    return _number(value) and math.isfinite(value)


def state_counts(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """How many trials are in each Optuna state (``COMPLETE``, ``PRUNED``, ...), in that order."""
    counts = {s.name: 0 for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    counts[TrialState.RUNNING.name] = 0
    for t in trials:
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts
