"""Model-based search in rounds: what a sampler suggests from the trials that finished.

A round is ``size`` trials suggested together (so they train side by side); round ``k`` is
made from the result records of every trial of rounds ``0 .. k-1``, all finished. Each
round builds an Optuna study in memory from those records, in (round, index) order, and
asks it ``size`` times: no Optuna storage, no database, no sampler state carried between
rounds. The same records, seed and settings give the same round, bit for bit, because
(measured with Optuna 5.0, /work/shared/FIELD-NOTES.md):

* trials are added in one fixed order (TPE sorts its good/bad sets by trial number);
* each round has its own seed, derived from the sweep's ``seed`` and the round number
  (one seed for every round repeats the random start-up configurations);
* the study holds finished trials only: with ``constant_liar`` a RUNNING trial changes what
  TPE suggests, so only the round's own asks are ever running.

Optuna is imported only by the functions that need it (a grid or random sweep never does).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from snakesweep.search.conditions import is_active, parent_first
from snakesweep.search.samplers import SAMPLERS
from snakesweep.search.sampling import round_significant
from snakesweep.search.space import Parameter
from snakesweep.search.trial_id import canonical_json, trial_id

#: Bumped if a round file's layout changes.
ROUND_FORMAT = 1
#: A suggestion that repeats a trial already planned is asked again, at most this many times
#: per trial of the round (a small categorical space may be exhausted).
MAX_ASKS_PER_TRIAL = 10
#: How a finished trial is told to the study: Optuna's trial states by name.
COMPLETE, PRUNED, FAIL = "COMPLETE", "PRUNED", "FAIL"


def round_sizes(n_trials: int, round_size: int, written: Mapping[int, int]) -> tuple[int, ...]:
    """The size of every round of a sweep of ``n_trials``: a written round keeps the size it
    was written with, the others hold ``round_size`` (the last one fewer).

    So raising ``n_trials`` adds rounds after the written ones and never changes those; a
    short last round that was written stays short (its file is never rewritten). Lowering
    ``n_trials`` into a written round keeps that round whole.
    """
    sizes: list[int] = []
    total = 0
    while total < n_trials:
        size = written.get(len(sizes), min(round_size, n_trials - total))
        sizes.append(size)
        total += size
    return tuple(sizes)


def round_seed(seed: int, k: int) -> int:
    """The sampler's seed in round ``k``: one 32-bit number from ``(seed, k)`` by NumPy's
    SeedSequence, so that no two rounds share a seed and no round depends on another's."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint32)[0])


@dataclass(frozen=True)
class Told:
    """A finished trial as the study is told it."""

    trial_id: str
    #: The searched parameters only (fixed values and ``epochs`` are not the sampler's).
    params: dict[str, Any]
    state: str
    value: float | None
    #: Epoch -> metric at each pruning rung the trial reached (empty without rungs).
    intermediate: dict[int, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "params": self.params,
            "state": self.state,
            "value": self.value,
            "intermediate": {str(k): v for k, v in sorted(self.intermediate.items())},
        }


def _finite(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def told_trial(
    record: Mapping[str, Any],
    searched: Sequence[str],
    metric: str,
    rung_budgets: Sequence[int] = (),
) -> Told:
    """How a trial's result record enters the study.

    * ``completed`` with a finite final metric: COMPLETE with that value;
    * ``pruned`` (ASHA): PRUNED with its metric at the rungs it reached (its last epoch if
      that is not a rung), which TPE ranks after every COMPLETE trial;
    * anything else (failed, diverged, pruned without a finite value): FAIL, which Optuna's
      TPE leaves out of its model and of the ``n_startup_trials`` count.
    """
    params = dict(record.get("params") or {})
    history = [row for row in record.get("history") or [] if "epoch" in row]
    at_epoch = {int(row["epoch"]): row.get(metric) for row in history}
    intermediate = {
        int(b): float(at_epoch[b]) for b in rung_budgets if b in at_epoch and _finite(at_epoch[b])
    }
    status = record.get("status")
    final = record.get("final")
    if status == "completed" and _finite(final):
        state, value = COMPLETE, float(final)
    elif status == "pruned":
        if not intermediate and history and _finite(history[-1].get(metric)):
            intermediate = {int(history[-1]["epoch"]): float(history[-1][metric])}
        state, value = (PRUNED, None) if intermediate else (FAIL, None)
    else:
        state, value = FAIL, None
    return Told(
        trial_id=str(record["trial_id"]),
        params={name: params[name] for name in searched if name in params},
        state=state,
        value=value,
        intermediate=intermediate,
    )


def records_digest(told: Sequence[Told]) -> str:
    """SHA-256 of what the study was told, in order: equal digests, equal studies."""
    text = canonical_json({"told": [t.as_json() for t in told]})
    return hashlib.sha256(text.encode()).hexdigest()


# -- Optuna: distributions, the study, the asks


def searched(space: Sequence[Parameter]) -> list[Parameter]:
    """The parameters a sampler picks, in the space's order (fixed ones are not asked)."""
    return [p for p in space if p.kind != "fixed"]


def distribution(p: Parameter) -> Any:
    """The Optuna distribution of one parameter (what ``trial.suggest_*`` would make)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if p.kind == "choice":
        return CategoricalDistribution(list(p.values))
    if p.kind in ("uniform", "loguniform"):
        return FloatDistribution(float(p.low), float(p.high), log=p.log)
    if p.kind == "int":
        return IntDistribution(int(p.low), int(p.high), log=p.log)
    raise ValueError(f"parameter {p.name!r} of kind {p.kind!r} is not searched by a sampler")


def ask_params(trial: Any, space: Sequence[Parameter]) -> dict[str, Any]:
    """Ask ``trial`` for each searched parameter that exists, one by one (define-by-run), in
    :func:`~snakesweep.search.conditions.parent_first` order (name order without conditions):
    a parameter whose ``when`` is false, given the values chosen before it, is not asked and
    the trial does not have it. Returns the chosen values, fixed ones included.

    Floats are kept to :data:`~snakesweep.search.sampling.SIGNIFICANT_DIGITS` significant
    digits, as random samples are: readable ids, and the value trained is the value told.
    """
    chosen: dict[str, Any] = {}
    for p in parent_first(space):
        if not is_active(p, chosen):
            continue
        if p.kind == "fixed":
            chosen[p.name] = p.value
        elif p.kind == "choice":
            chosen[p.name] = trial.suggest_categorical(p.name, list(p.values))
        elif p.kind == "int":
            chosen[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            value = trial.suggest_float(p.name, float(p.low), float(p.high), log=p.log)
            chosen[p.name] = min(float(p.high), max(float(p.low), round_significant(value)))
    return chosen


def build_study(space: Sequence[Parameter], told: Sequence[Told], mode: str, sampler: Any) -> Any:
    """An in-memory study holding ``told`` in order, numbered 0, 1, ..."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize" if mode == "min" else "maximize", sampler=sampler
    )
    dists = {p.name: distribution(p) for p in searched(space)}
    study.add_trials(
        [
            create_trial(
                state=TrialState[t.state],
                value=t.value,
                params={n: t.params[n] for n in dists if n in t.params},
                distributions={n: d for n, d in dists.items() if n in t.params},
                intermediate_values=dict(t.intermediate),
            )
            for t in told
        ]
    )
    return study


@dataclass(frozen=True)
class RoundMaker:
    """Everything a round depends on except its number and the records: made from the config
    (``snakesweep.search.sweep.round_maker``), the same at parse time and in the round's rule."""

    space: tuple[Parameter, ...]
    epochs: int
    metric: str
    mode: str
    seed: int
    sampler: str
    options: Mapping[str, Any]
    rung_budgets: tuple[int, ...]
    #: The search settings the rounds were planned with; a round file records them, and a
    #: config that changes them is refused (``settings_changes``).
    settings: Mapping[str, Any]

    def tell(self, records: Sequence[Mapping[str, Any]]) -> list[Told]:
        names = [p.name for p in searched(self.space)]
        return [told_trial(r, names, self.metric, self.rung_budgets) for r in records]

    def make(self, k: int, size: int, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Round ``k`` of ``size`` trials from the records of every earlier trial, in (round,
        index) order: the content of its round file.

        A suggestion that is already a trial (this round's or an earlier one's) is told FAIL
        and asked again, so a round holds distinct new trials; if a small space runs out,
        the round holds fewer (``duplicates`` counts the repeats).
        """
        import optuna
        from optuna.trial import TrialState

        told = self.tell(records)
        seed = round_seed(self.seed, k)
        study = build_study(
            self.space, told, self.mode, SAMPLERS[self.sampler].build(self.options, seed)
        )
        taken = {t.trial_id for t in told}
        trials: list[dict[str, Any]] = []
        duplicates = 0
        for _ in range(size * MAX_ASKS_PER_TRIAL):
            if len(trials) == size:
                break
            trial = study.ask()
            # Sorted keys: the parameters as they read back from the round file (JSON, sorted).
            full = dict(sorted({**ask_params(trial, self.space), "epochs": self.epochs}.items()))
            tid = trial_id(full)
            if tid in taken:
                study.tell(trial, state=TrialState.FAIL)
                duplicates += 1
                continue
            taken.add(tid)
            trials.append({"index": len(trials), "trial_id": tid, "params": full})
        states = {s: sum(t.state == s for t in told) for s in (COMPLETE, PRUNED, FAIL)}
        return {
            "format": ROUND_FORMAT,
            "round": k,
            "size": size,
            "seed": seed,
            "sampler": {"name": self.sampler, "options": dict(self.options)},
            "settings": dict(self.settings),
            "records": {"count": len(told), "states": states, "digest": records_digest(told)},
            "trials": trials,
            "duplicates": duplicates,
            "versions": {"optuna": optuna.__version__, "numpy": np.__version__},
        }


def settings_changes(written: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The settings keys whose value differs between a written round and the config now."""
    return [
        key
        for key in sorted(set(written) | set(now))
        if canonical_json({"v": written.get(key)}) != canonical_json({"v": now.get(key)})
    ]
