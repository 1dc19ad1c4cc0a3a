"""Stable trial ids: a hash of a trial's canonical parameters, never of its position."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

#: Bumped only if the canonical form changes; old results then stop matching.
ID_SCHEME = "snakesweep-trial-v1"
ID_LENGTH = 12


def canonical_json(params: Mapping[str, Any]) -> str:
    """Sorted keys, no whitespace, floats in shortest round-trip form: the one canonical JSON
    (trial ids hash it; provenance hashes the config with it after ``provenance.canonical``).

    ``1`` and ``1.0`` stay distinct (the training script receives different
    text), and NaN/inf are refused because they have no JSON form.
    """
    for name, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"parameter {name!r} is not finite: {value!r}")
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"), allow_nan=False)


def trial_id(params: Mapping[str, Any]) -> str:
    """Id of the trial that trains with exactly ``params`` (``epochs`` included)."""
    digest = hashlib.sha256(f"{ID_SCHEME}\n{canonical_json(params)}".encode()).hexdigest()
    return digest[:ID_LENGTH]
