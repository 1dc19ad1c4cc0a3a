"""Expanding a search space into trial parameter sets: pure and deterministic.

Random sample ``i`` depends only on ``(seed, i)`` and the parameter definitions,
never on ``n_trials``, so growing a sweep keeps the trials it already had.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from snakesweep.search.space import Parameter

#: Significant digits kept for sampled floats: readable ids and leaderboards,
#: and values that survive a round trip through text unchanged.
SIGNIFICANT_DIGITS = 6


def grid_points(params: Sequence[Parameter]) -> list[dict[str, Any]]:
    """Cartesian product of the grid axes, in the order their values are listed."""
    axes = [p for p in params if p.is_axis]
    names = [p.name for p in axes]
    return [
        dict(zip(names, combo, strict=True))
        for combo in itertools.product(*(p.values for p in axes))
    ]


def sample(params: Sequence[Parameter], seed: int, index: int) -> dict[str, Any]:
    """Draw random sample ``index`` of the sampled (non-axis, non-fixed) parameters."""
    rng = np.random.default_rng([seed, index])
    drawn: dict[str, Any] = {}
    for p in sorted(params, key=lambda q: q.name):
        if p.kind == "choice":
            drawn[p.name] = p.values[int(rng.integers(len(p.values)))]
        elif p.kind == "uniform":
            drawn[p.name] = round_significant(float(rng.uniform(p.low, p.high)))
        elif p.kind == "loguniform":
            drawn[p.name] = round_significant(
                math.exp(rng.uniform(math.log(p.low), math.log(p.high)))
            )
        elif p.kind == "int":
            drawn[p.name] = _sample_int(rng, p)
    return drawn


def expand(
    params: Sequence[Parameter], strategy: str, n_trials: int, seed: int
) -> list[dict[str, Any]]:
    """All trial parameter sets of a sweep: grid points × random samples, plus fixed values.

    Order: for each random sample index, every grid point; so the first trials
    stay first when ``n_trials`` grows.
    """
    fixed = {p.name: p.value for p in params if p.kind == "fixed"}
    points = grid_points(params)
    sampled = [p for p in params if p.kind in ("choice", "uniform", "loguniform", "int")]
    n_samples = n_trials if strategy == "random" else 1
    trials = []
    for index in range(n_samples):
        drawn = sample(sampled, seed, index) if sampled else {}
        for point in points:
            trials.append({**fixed, **point, **drawn})
    return trials


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
