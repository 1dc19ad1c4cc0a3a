"""Promotion rules of multi-fidelity pruning: pure functions, no I/O.

Budgets are integer epochs. The workflow decides *when* to ask (a rung was
reached, a cohort finished); these functions only answer *who goes on*, so the
same inputs always give the same answer, whichever machine or retry asks.

* Successive halving (synchronous): :func:`rung_budgets`, :func:`promote`.
* Hyperband (Li et al., 2018): :func:`hyperband_brackets`.
* ASHA (asynchronous successive halving): :func:`asha_decision`.

A score that is ``None``, NaN or ±inf (a diverged or broken trial) is never
promoted, whatever the mode.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MODES = ("min", "max")


def _as_int(name: str, value: object) -> int:
    """``value`` as an int; bools and floats are refused so that ``eta=2.5`` cannot slip by."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def _check_eta(eta: object) -> int:
    eta = _as_int("eta", eta)
    if eta < 2:
        raise ValueError(f"eta must be >= 2, got {eta}")
    return eta


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return mode


def _check_budget_range(min_t: object, max_t: object) -> tuple[int, int]:
    min_t = _as_int("min_t", min_t)
    max_t = _as_int("max_t", max_t)
    if min_t <= 0:
        raise ValueError(f"min_t must be > 0, got {min_t}")
    if min_t > max_t:
        raise ValueError(f"min_t must be <= max_t, got min_t={min_t} > max_t={max_t}")
    return min_t, max_t


def rung_budgets(min_t: int, max_t: int, eta: int) -> list[int]:
    """Successive-halving rung budgets: ``min_t * eta**r`` below ``max_t``, then ``max_t``.

    The last rung is always exactly ``max_t`` so surviving trials train the full
    budget even when ``max_t / min_t`` is not a power of ``eta``: ``(1, 10, 3)``
    gives ``[1, 3, 9, 10]``. A geometric budget that would reach or pass ``max_t``
    is replaced by ``max_t``, so there are no duplicates and budgets strictly increase.
    """
    min_t, max_t = _check_budget_range(min_t, max_t)
    eta = _check_eta(eta)
    budgets = []
    budget = min_t
    while budget < max_t:
        budgets.append(budget)
        budget *= eta
    budgets.append(max_t)
    return budgets


def n_promoted(n: int, eta: int) -> int:
    """How many of ``n`` trials at a rung go on: ``ceil(n / eta)``.

    Rounding up keeps at least one survivor of any non-empty rung, so a sweep
    always ends with a trial trained to ``max_t``; an empty rung promotes none.
    """
    n = _as_int("n", n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    eta = _check_eta(eta)
    return -(-n // eta)


def is_valid_score(value: object) -> bool:
    """Whether ``value`` is a finite real number that may be ranked.

    ``None`` (no metric reported), NaN and ±inf (diverged) are not: ranking them
    would let a diverged run win in one of the two modes. Bools are refused too.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value))


def rank_trials(scores: Mapping[str, float | None], mode: str) -> list[str]:
    """Trial ids with a valid score, best first (lowest for ``'min'``, highest for ``'max'``).

    Ties are broken by trial id, ascending, so the order never depends on the
    order in which results happened to be collected.
    """
    sign = 1.0 if _check_mode(mode) == "min" else -1.0
    valid = [(sign * float(s), tid) for tid, s in scores.items() if is_valid_score(s)]
    return [tid for _, tid in sorted(valid)]


def promote(scores: Mapping[str, float | None], eta: int, mode: str) -> list[str]:
    """Synchronous successive halving at one rung: the ids that go on, best first.

    The quota is ``n_promoted(len(scores), eta)`` of the whole cohort, invalid
    trials included: a diverged trial takes its share of the rung but is never
    promoted, so fewer trials go on when too few have valid scores.
    """
    quota = n_promoted(len(scores), eta)
    return rank_trials(scores, mode)[:quota]


def rung_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """Each trial's score at a rung from its result record: only a trial that completed
    the rung's budget can go on (a pruned, diverged or failed one scores None)."""
    return {
        r["trial_id"]: r.get("final") if r.get("status") == "completed" else None for r in records
    }


def rung_decision(
    records: Sequence[Mapping[str, Any]],
    *,
    bracket: int,
    rung: int,
    budget: int,
    metric: str,
    mode: str,
    eta: int,
) -> dict[str, Any]:
    """The decision file of a synchronous rung (``contract.RUNG_DECISION_PATH``): scores, promoted, pruned."""
    scores = rung_scores(records)
    promoted = promote(scores, eta=eta, mode=mode)
    return {
        "bracket": bracket,
        "rung": rung,
        "budget": budget,
        "metric": metric,
        "mode": mode,
        "eta": eta,
        "scores": scores,
        "promoted": promoted,
        "pruned": sorted(set(scores) - set(promoted)),
    }


@dataclass(frozen=True)
class Bracket:
    """One Hyperband bracket: ``n_trials`` trials start at ``budgets[0]`` epochs.

    ``s`` is the bracket index of Li et al.: the number of halvings, so there
    are ``s + 1`` rungs and ``budgets[-1]`` is always ``max_t``.
    """

    s: int
    n_trials: int
    budgets: tuple[int, ...]


def _s_max(min_t: int, max_t: int, eta: int) -> int:
    """``floor(log_eta(max_t / min_t))`` in integers: float logs misround exact powers."""
    s = 0
    while min_t * eta ** (s + 1) <= max_t:
        s += 1
    return s


def _round_div(num: int, den: int) -> int:
    """``num / den`` rounded half up, in integers (``round`` would round half to even)."""
    return (2 * num + den) // (2 * den)


def hyperband_brackets(min_t: int, max_t: int, eta: int) -> list[Bracket]:
    """Hyperband brackets, most aggressive first (``s = s_max .. 0``).

    ``s_max = floor(log_eta(max_t / min_t))``; bracket ``s`` starts
    ``ceil((s_max + 1) / (s + 1) * eta**s)`` trials and has ``s + 1`` rungs
    ``max_t * eta**(i - s)`` (``i = 0..s``), rounded half up to whole epochs and
    at least ``min_t``. When ``max_t / min_t`` is a power of ``eta`` the rungs are
    exactly ``rung_budgets(budgets[0], max_t, eta)``; otherwise the rungs are
    scaled down from ``max_t`` (``(1, 10, 3)``, ``s=2``: ``[1, 3, 10]``), which keeps
    the ``s + 1`` rungs of the paper instead of adding a short extra one.
    """
    min_t, max_t = _check_budget_range(min_t, max_t)
    eta = _check_eta(eta)
    s_max = _s_max(min_t, max_t, eta)
    brackets = []
    for s in range(s_max, -1, -1):
        n_trials = -(-(s_max + 1) * eta**s // (s + 1))
        budgets = tuple(max(min_t, _round_div(max_t, eta ** (s - i))) for i in range(s + 1))
        brackets.append(Bracket(s=s, n_trials=n_trials, budgets=budgets))
    return brackets


def asha_decision(
    own: float | None,
    peers: Sequence[float | None],
    eta: int,
    mode: str,
    min_peers: int,
) -> bool:
    """ASHA at one rung: ``True`` if the trial should continue, ``False`` to prune it.

    ``peers`` are the scores other trials reported at this rung (the trial's own
    score is ``own`` and must not be repeated there). An invalid ``own`` stops.
    With fewer than ``min_peers`` valid scores (own included) the trial continues:
    pruning the worse of just two trials is mostly noise. Otherwise it continues
    iff it is within the top ``n_promoted(count, eta)`` valid scores; a trial tied
    with the cut-off score continues, since equal evidence cannot justify a prune.
    """
    eta = _check_eta(eta)
    sign = 1.0 if _check_mode(mode) == "min" else -1.0
    min_peers = _as_int("min_peers", min_peers)
    if min_peers < 1:
        raise ValueError(f"min_peers must be >= 1, got {min_peers}")
    if own is None or not is_valid_score(own):
        return False
    valid = sorted(sign * float(p) for p in [own, *peers] if is_valid_score(p))
    if len(valid) < min_peers:
        return True
    cutoff = valid[n_promoted(len(valid), eta) - 1]
    return sign * float(own) <= cutoff
