"""Conditional parameters (``when``): which parameters a trial has, given the values chosen so far.

``momentum: {kind: uniform, low: 0.8, high: 0.99, when: {optimizer: sgd}}`` gives
``momentum`` only to the trials whose ``optimizer`` is ``sgd``; the others do not have
it at all (not passed, not in the trial id). A condition names a ``choice``, ``grid``
or ``fixed`` parameter and one value or a list of its values; several names must all
hold; conditions may chain (a parameter whose parent is absent is absent) but not loop.

Pure (no I/O, no randomness), so every planner asks the same two questions:

* :func:`parent_first` - an order of the parameters in which each comes after the
  parameters its condition names (name order otherwise);
* :func:`is_active` - whether a parameter exists, given the values chosen so far.

A define-by-run sampler (Optuna) walks ``parent_first(params)``, skips a parameter
for which ``is_active(p, chosen)`` is false and adds each value it suggests to
``chosen``; :func:`active_values` does the same walk over values drawn beforehand.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from snakesweep.search.errors import ConfigError

if TYPE_CHECKING:
    from snakesweep.search.space import Parameter

#: Kinds a condition may name: their values are listed, so "one of these values" means something.
PARENT_KINDS = ("choice", "grid", "fixed")

P = TypeVar("P", bound="Parameter")


@dataclass(frozen=True)
class Condition:
    """``parent`` must exist and hold one of ``values`` (as written in the config)."""

    parent: str
    values: tuple[Any, ...]

    def holds(self, chosen: Mapping[str, Any]) -> bool:
        return self.parent in chosen and any(
            same_value(chosen[self.parent], v) for v in self.values
        )


def same_value(a: Any, b: Any) -> bool:
    """Equal as config values: ``1`` equals ``1.0`` but ``true`` is not ``1`` (YAML keeps them apart)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def parse_when(key: str, raw: Any) -> tuple[Condition, ...]:
    """The conditions of ``key``'s ``when`` mapping, by parent name; checks only their shape.

    What the conditions name is checked by :func:`check_conditions`, once every
    parameter is known.
    """
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(
            f"{key}.when: must be a mapping of parameter name to a value or a list of values, "
            f"e.g. {{optimizer: sgd}}; got {raw!r}"
        )
    conditions = []
    for parent in sorted(raw, key=str):
        wanted = raw[parent]
        values = tuple(wanted) if isinstance(wanted, list) else (wanted,)
        if not values:
            raise ConfigError(
                f"{key}.when.{parent}: the list of values is empty; name at least one"
            )
        for value in values:
            if isinstance(value, (list, dict)):
                raise ConfigError(
                    f"{key}.when.{parent}: {value!r} is not a scalar (string, number, bool, null)"
                )
        conditions.append(Condition(str(parent), values))
    return tuple(conditions)


def check_conditions(params: Sequence[Parameter]) -> None:
    """Refuse a condition on an unknown or continuous parameter, on a value its parent
    cannot take, or one that loops; the message names the key (``parameters.X.when.Y``)."""
    by_name = {p.name: p for p in params}
    for p in params:
        for condition in p.when:
            key = f"parameters.{p.name}.when.{condition.parent}"
            parent = by_name.get(condition.parent)
            if parent is None:
                raise ConfigError(
                    f"{key}: there is no parameter {condition.parent!r}; "
                    f"a condition names one of {sorted(by_name)}"
                )
            if parent.kind not in PARENT_KINDS:
                raise ConfigError(
                    f"{key}: {condition.parent!r} is a {parent.kind!r} parameter; a condition "
                    f"can only name a parameter of kind {list(PARENT_KINDS)} (one whose values "
                    "are listed)"
                )
            allowed = (parent.value,) if parent.kind == "fixed" else parent.values
            for value in condition.values:
                if not any(same_value(value, a) for a in allowed):
                    raise ConfigError(
                        f"{key}: {value!r} is not a value {condition.parent!r} can take; "
                        f"its values are {list(allowed)}"
                    )
    cycle = find_cycle(params)
    if cycle:
        raise ConfigError(
            f"parameters.{cycle[0]}.when: the conditions loop ({' -> '.join(cycle)}); "
            "a parameter cannot depend, directly or through others, on itself"
        )


def find_cycle(params: Sequence[Parameter]) -> list[str]:
    """A loop of conditions as names (first repeated last), or ``[]``; the first by name."""
    parents = {p.name: [c.parent for c in p.when] for p in params}
    state: dict[str, str] = {}  # name -> "open" while on the path, "done" after

    def visit(name: str, path: list[str]) -> list[str]:
        if state.get(name) == "done" or name not in parents:
            return []
        if state.get(name) == "open":
            return path[path.index(name) :] + [name]
        state[name] = "open"
        for parent in parents[name]:
            found = visit(parent, [*path, name])
            if found:
                return found
        state[name] = "done"
        return []

    for name in sorted(parents):
        found = visit(name, [])
        if found:
            return found
    return []


def parent_first(params: Iterable[P]) -> list[P]:
    """The parameters in name order, except that each comes after those its condition names.

    Without conditions this is plain name order, the order every plan used before
    conditions existed. Assumes :func:`check_conditions` passed (no loop).
    """
    pending = sorted(params, key=lambda p: p.name)
    names = {p.name for p in pending}
    placed: set[str] = set()
    order: list[P] = []
    while pending:
        for i, p in enumerate(pending):
            if all(c.parent in placed or c.parent not in names for c in p.when):
                order.append(pending.pop(i))
                placed.add(p.name)
                break
        else:
            raise ConfigError(f"parameters: the conditions loop ({find_cycle(pending)})")
    return order


def is_active(param: Parameter, chosen: Mapping[str, Any]) -> bool:
    """Whether ``param`` exists in a trial whose parameters so far are ``chosen``.

    ``chosen`` holds only the parameters that exist, so a parameter whose parent is
    absent is absent too (chains). Ask in :func:`parent_first` order.
    """
    return all(condition.holds(chosen) for condition in param.when)


def active_values(params: Sequence[Parameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without the parameters whose condition is false, in ``values``' own order.

    Keys that are not parameters (``epochs``) are kept.
    """
    chosen: dict[str, Any] = {}
    for p in parent_first(params):
        if p.name in values and is_active(p, chosen):
            chosen[p.name] = values[p.name]
    names = {p.name for p in params}
    return {k: v for k, v in values.items() if k in chosen or k not in names}
