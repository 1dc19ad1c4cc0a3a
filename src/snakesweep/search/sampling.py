"""Expanding a search space into trial parameter sets: pure and deterministic.

Random sample ``i`` depends only on ``(seed, i)`` and the parameter definitions,
never on ``n_trials``, so growing a sweep keeps the trials it already had.

Conditional parameters (``when``, :mod:`snakesweep.search.conditions`) each draw from
their own stream, ``(seed, i, name)``; the unconditional ones share the ``(seed, i)``
stream in name order, as they always have (so the trials and ids of sweeps without
conditions are the same bit for bit). Hence adding, removing or changing a conditional
parameter changes no other parameter's value: the trials where its condition is false
keep their values and their ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from snakesweep.search.conditions import is_active, parent_first
from snakesweep.search.space import Parameter

#: Significant digits kept for sampled floats: readable ids and leaderboards,
#: and values that survive a round trip through text unchanged.
SIGNIFICANT_DIGITS = 6


#: Kinds drawn at random (a ``choice`` is a grid axis under ``strategy: grid``).
SAMPLED_KINDS = ("choice", "uniform", "loguniform", "int")


def grid_points(
    params: Sequence[Parameter], known: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The valid combinations of the grid axes, in the order their values are listed.

    Without conditions, the Cartesian product (the last axis by name varies fastest).
    An axis whose condition is false is left out of a combination, so only valid
    combinations are planned, each once. ``known`` gives the values of the other
    parameters (fixed and sampled) that conditions may name; by default the fixed values.
    """
    known = {p.name: p.value for p in params if p.kind == "fixed"} if known is None else known
    return [point for point, _ in _walk(parent_first(params), known)]


def sample(params: Sequence[Parameter], seed: int, index: int) -> dict[str, Any]:
    """Draw random sample ``index`` of the sampled (non-axis, non-fixed) parameters.

    Every given parameter is drawn, conditions aside: a conditional one comes from its
    own stream, so whether it is drawn, used or dropped moves no other value.
    """
    rng = np.random.default_rng([seed, index])
    drawn: dict[str, Any] = {}
    for p in sorted(params, key=lambda q: q.name):
        if p.kind not in SAMPLED_KINDS:
            continue
        if p.when:
            own = np.random.default_rng([seed, index, stream_key(p.name)])
            drawn[p.name] = _draw(own, p)
        else:
            drawn[p.name] = _draw(rng, p)
    return drawn


def stream_key(name: str) -> int:
    """A conditional parameter's stream number: from its name, the same in every process."""
    digest = hashlib.sha256(f"snakesweep-stream\n{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def expand(
    params: Sequence[Parameter], strategy: str, n_trials: int, seed: int
) -> list[dict[str, Any]]:
    """All trial parameter sets of a sweep: grid points × random samples, plus fixed values,
    each without the parameters whose condition is false.

    Order: for each random sample index, every grid point; so the first trials
    stay first when ``n_trials`` grows.
    """
    fixed = {p.name: p.value for p in params if p.kind == "fixed"}
    order = parent_first(params)
    sampled = [p for p in params if p.kind in SAMPLED_KINDS]
    n_samples = n_trials if strategy == "random" else 1
    trials = []
    for index in range(n_samples):
        drawn = sample(sampled, seed, index) if sampled else {}
        for point, present in _walk(order, {**fixed, **drawn}):
            values = {**fixed, **point, **drawn}
            trials.append({k: v for k, v in values.items() if k in present})
    return trials


def _walk(
    order: Sequence[Parameter], known: Mapping[str, Any]
) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each valid grid point, with every parameter the trial has (parents first in ``order``).

    Yields ``(axis values, present parameters)``. An axis branches over its values; a
    known (fixed or sampled) parameter takes its value; one whose condition is false, or
    that nothing gives a value, is absent.
    """

    def walk(i: int, point: dict[str, Any], present: dict[str, Any]) -> Iterator:
        if i == len(order):
            yield point, present
            return
        p = order[i]
        if not is_active(p, present):
            yield from walk(i + 1, point, present)
        elif p.is_axis:
            for value in p.values:
                yield from walk(i + 1, {**point, p.name: value}, {**present, p.name: value})
        elif p.name in known:
            yield from walk(i + 1, point, {**present, p.name: known[p.name]})
        else:
            yield from walk(i + 1, point, present)

    yield from walk(0, {}, {})


def _draw(rng: np.random.Generator, p: Parameter) -> Any:
    if p.kind == "choice":
        return p.values[int(rng.integers(len(p.values)))]
    if p.kind == "uniform":
        return round_significant(float(rng.uniform(p.low, p.high)))
    if p.kind == "loguniform":
        return round_significant(math.exp(rng.uniform(math.log(p.low), math.log(p.high))))
    if p.kind == "int":
        return _sample_int(rng, p)
    raise ValueError(f"parameter {p.name!r} of kind {p.kind!r} is not sampled")


def _sample_int(rng: np.random.Generator, p: Parameter) -> int:
    low, high = int(p.low), int(p.high)
    if not p.log:
        return int(rng.integers(low, high + 1))
    # Log-uniform over [low, high + 1), floored: each integer gets the mass of its interval.
    value = math.exp(rng.uniform(math.log(low), math.log(high + 1)))
    return min(high, max(low, int(math.floor(value))))


def round_significant(value: float) -> float:
    """``value`` kept to :data:`SIGNIFICANT_DIGITS` significant digits."""
    if value == 0:
        return 0.0
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")
