"""Search-space parameters: parsing the config and the checks a JSON schema cannot express."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from snakesweep.search.conditions import Condition, check_conditions, parse_when
from snakesweep.search.errors import ConfigError  # also imported from here by its users

#: Kinds a parameter may have, with the keys each one takes.
KINDS: dict[str, tuple[str, ...]] = {
    "choice": ("values",),
    "grid": ("values",),
    "uniform": ("low", "high"),
    "loguniform": ("low", "high"),
    "int": ("low", "high", "log"),
    "fixed": ("value",),
}
#: Strategies planned up front, and those whose trials a sampler suggests round by round
#: (``snakesweep.search.samplers.SAMPLERS`` holds their samplers).
PLANNED_STRATEGIES = ("grid", "random")
MODEL_BASED_STRATEGIES = ("tpe",)
STRATEGIES = PLANNED_STRATEGIES + MODEL_BASED_STRATEGIES
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Names the workflow passes itself; a parameter may not take them.
RESERVED_NAMES = ("epochs",)


@dataclass(frozen=True)
class Parameter:
    """One hyper-parameter of the search space."""

    name: str
    kind: str
    values: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    value: Any = None
    #: Conditions that must all hold for a trial to have this parameter (``when``); () = always.
    when: tuple[Condition, ...] = ()

    @property
    def is_axis(self) -> bool:
        """Whether the parameter is enumerated (a grid axis) rather than sampled."""
        return self.kind == "grid"


def parse_parameters(spec: Mapping[str, Mapping[str, Any]], strategy: str) -> list[Parameter]:
    """Turn the ``search.parameters`` mapping into :class:`Parameter` objects, sorted by name.

    Under the ``grid`` strategy every ``choice`` is a grid axis too, and sampled
    kinds are refused because a grid cannot enumerate them. Any kind may carry a
    ``when`` condition (:mod:`snakesweep.search.conditions`), checked once all are parsed.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: {strategy!r} is not allowed; use one of {list(STRATEGIES)}")
    params = []
    for name in sorted(spec):
        key = f"parameters.{name}"
        if not NAME_PATTERN.match(name):
            raise ConfigError(
                f"{key}: the name cannot be a command-line option or path component; "
                f"use letters, digits and '_' ({NAME_PATTERN.pattern})"
            )
        if name in RESERVED_NAMES:
            raise ConfigError(
                f"{key}: {name!r} is set by the top-level key `epochs` (the training budget; pruning rungs set it per rung); remove it from parameters"
            )
        entry = spec[name]
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{key}: must be a mapping with 'kind' (one of {list(KINDS)})")
        kind = entry.get("kind")
        if kind not in KINDS:
            raise ConfigError(f"{key}.kind: {kind!r} is not allowed; use one of {list(KINDS)}")
        unknown = sorted(set(entry) - {"kind", "when", *KINDS[kind]})
        if unknown:
            raise ConfigError(
                f"{key}: unknown key(s) {unknown} for kind {kind!r}; "
                f"allowed: {[*KINDS[kind], 'when']}"
            )
        param = _parse_one(name, kind, entry, key, strategy)
        if "when" in entry:
            param = replace(param, when=parse_when(key, entry["when"]))
        params.append(param)
    check_conditions(params)
    return params


def _parse_one(
    name: str, kind: str, entry: Mapping[str, Any], key: str, strategy: str
) -> Parameter:
    if kind in ("choice", "grid"):
        values = entry.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{key}.values: must be a non-empty list of scalars")
        for v in values:
            if isinstance(v, (list, dict)):
                raise ConfigError(
                    f"{key}.values: {v!r} is not a scalar (string, number, bool, null)"
                )
        if len({_scalar_key(v) for v in values}) != len(values):
            raise ConfigError(f"{key}.values: contains duplicates: {values!r}")
        if kind == "grid" and strategy in MODEL_BASED_STRATEGIES:
            raise ConfigError(
                f"{key}.kind: 'grid' is not allowed with strategy {strategy!r}: its sampler "
                "picks every value from the trials before, so there is no axis to cross; use "
                "kind 'choice' to let it choose among these values, or strategy 'random' to "
                "cross them with random samples"
            )
        axis_kind = "grid" if strategy == "grid" else kind
        return Parameter(name, axis_kind, values=tuple(values))
    if kind == "fixed":
        if "value" not in entry:
            raise ConfigError(f"{key}.value: required for kind 'fixed'")
        value = entry["value"]
        if isinstance(value, (list, dict)):
            raise ConfigError(f"{key}.value: {value!r} is not a scalar")
        return Parameter(name, kind, value=value)
    if strategy == "grid":
        raise ConfigError(
            f"{key}.kind: {kind!r} cannot be enumerated by strategy 'grid'; "
            "use kind 'grid' or 'choice' with explicit values, or strategy 'random'"
        )
    for bound in ("low", "high"):
        if bound not in entry:
            raise ConfigError(f"{key}.{bound}: required for kind {kind!r}")
        if isinstance(entry[bound], bool) or not isinstance(entry[bound], (int, float)):
            raise ConfigError(f"{key}.{bound}: must be a number, got {entry[bound]!r}")
        if not math.isfinite(entry[bound]):
            raise ConfigError(f"{key}.{bound}: must be finite, got {entry[bound]!r}")
    low, high = entry["low"], entry["high"]
    if not low < high:
        raise ConfigError(f"{key}: low ({low}) must be smaller than high ({high})")
    log = bool(entry.get("log", False))
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise ConfigError(f"{key}: low and high must be integers for kind 'int'")
        low, high = int(low), int(high)
    if (kind == "loguniform" or log) and low <= 0:
        raise ConfigError(f"{key}.low: must be > 0 for a log scale, got {low}")
    return Parameter(name, kind, low=low, high=high, log=log or kind == "loguniform")


def _scalar_key(value: Any) -> tuple[str, Any]:
    # True == 1 in Python; keep them apart when checking for duplicates.
    return (type(value).__name__, value)
