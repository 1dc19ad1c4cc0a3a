"""Which hyper-parameters matter: Optuna's fANOVA on a sweep's completed trials, seeded.

fANOVA (``optuna.importance.FanovaImportanceEvaluator``) fits a random forest to the
completed trials' final metric and splits its variance between the parameters. Its
forest is random: :data:`SEED` fixes it, so the same trials always give the same bars.
It is chosen over PED-ANOVA (Optuna 5's default, and what optuna-dashboard's importance
panel shows) because PED-ANOVA compares the top 10 % of trials with the rest and wants
at least 5 trials in that top, some 50 completed trials, more than most sweeps have.

Only completed trials count (a pruned trial's metric is from a shorter budget, a failed
one has none), and only parameters that every completed trial has and that take more
than one value among them. With fewer than :data:`MIN_COMPLETED` completed trials, no
varying parameter, or a metric that is the same in every completed trial, there is no
importance and :attr:`Importance.reason` says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

#: Fewer completed trials than this give no importance: a forest fitted to so few points
#: says nothing a reader should act on.
MIN_COMPLETED = 5
#: The seed of fANOVA's random forest: the same trials give the same importances.
SEED = 0
EVALUATOR = "fANOVA"


@dataclass
class Importance:
    """The share of the metric's variance each parameter explains, or why there is none."""

    metric: str
    #: Parameter -> importance (fANOVA, normalised to sum to 1), largest first; empty if none.
    importances: dict[str, float] = field(default_factory=dict)
    #: Completed trials with a finite metric: what the importance is computed from.
    completed: int = 0
    #: Why there is no importance (None when there is one).
    reason: str | None = None
    evaluator: str = EVALUATOR
    seed: int = SEED


def param_importances(
    trials: Sequence[FrozenTrial],
    direction: StudyDirection,
    metric: str,
    seed: int = SEED,
    min_completed: int = MIN_COMPLETED,
) -> Importance:
    """fANOVA importances of the completed ones among ``trials`` (a sweep's Optuna trials,
    :func:`snakesweep.report.optuna_trials.sweep_trials`), or the reason there are none."""
    completed = [
        t
        for t in trials
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
    ]
    result = Importance(metric=metric, completed=len(completed), seed=seed)
    if len(completed) < min_completed:
        result.reason = (
            f"{len(completed)} completed trial(s) with a finite {metric}; the importance needs "
            f"at least {min_completed} (pruned, diverged and failed trials do not count)"
        )
        return result
    shared = set.intersection(*(set(t.params) for t in completed))
    varying = sorted(n for n in shared if len({repr(t.params[n]) for t in completed}) > 1)
    if not varying:
        result.reason = f"no parameter varies between the {len(completed)} completed trials"
        return result
    if len({t.value for t in completed}) == 1:
        result.reason = (
            f"all {len(completed)} completed trials have the same {metric} "
            f"({completed[0].value:g}): there is no variance to explain"
        )
        return result
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction=direction)  # in memory
        study.add_trials(completed)
        importances = optuna.importance.get_param_importances(
            study,
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed),
            params=varying,
        )
    finally:
        optuna.logging.set_verbosity(level)
    result.importances = {name: float(value) for name, value in importances.items()}
    return result
