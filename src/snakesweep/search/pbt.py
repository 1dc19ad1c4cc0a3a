"""Population based training (Jaderberg et al. 2017) as synchronous generations: pure rules.

A population of ``n_trials`` members trains ``interval`` epochs per generation. After each
generation the members are ranked (failed and diverged ones last); the bottom ``quantile`` is
replaced by copies of the top ``quantile`` (exploit) whose ``mutate`` parameters are perturbed
(explore). Everything here is a pure function of the records, the config and the seed, so the
same sweep makes the same decisions in any process, on any machine, in any order of finishing.
The workflow (``workflow/rules/pbt.smk``) turns each decision into the next generation's jobs;
:mod:`snakesweep.job.pbt_clone` copies the checkpoints. See docs/pbt.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from snakesweep.search.sampling import SIGNIFICANT_DIGITS, sample
from snakesweep.search.space import ConfigError, Parameter
from snakesweep.search.trial_id import trial_id

#: Defaults of the ``pbt`` block's keys (also in the schema, pinned by tests/test_defaults.py).
DEFAULT_QUANTILE = 0.25
DEFAULT_RESAMPLE_PROBABILITY = 0.25
#: A continuous value is multiplied by one of these when it is perturbed.
PERTURB_FACTORS = (0.8, 1.2)
#: Kinds whose values a generation may change.
MUTABLE_KINDS = ("choice", "grid", "uniform", "loguniform", "int")
#: Keeps the mutation stream apart from the sampling stream of the same seed.
_STREAM = 0x5BB7
#: Record statuses of a member that finished its generation with a usable metric.
GOOD = ("completed",)


@dataclass(frozen=True)
class PbtPlan:
    """The ``pbt`` block of a sweep, checked."""

    interval: int
    generations: int
    quantile: float
    resample_probability: float
    mutate: tuple[str, ...]
    seed: int
    #: Replay (best.yaml): the mutated values of generations 1, 2, ...; no ranking, no cloning.
    schedule: tuple[dict[str, Any], ...] | None = None

    @property
    def budgets(self) -> tuple[int, ...]:
        """The epoch at which each generation ends (a member's budget for that segment)."""
        return tuple(self.interval * (g + 1) for g in range(self.generations))

    def generation_of(self, budget: int) -> int:
        """The generation whose segment trains a member up to ``budget`` epochs."""
        if budget % self.interval or not 0 < budget <= self.interval * self.generations:
            raise ValueError(f"{budget} epochs is not the end of a PBT generation")
        return budget // self.interval - 1

    def identity(self) -> dict[str, Any]:
        """What shapes a member's history besides its own start values (part of its id)."""
        return {
            "interval": self.interval,
            "quantile": self.quantile,
            "resample_probability": self.resample_probability,
            "mutate": list(self.mutate),
            "seed": self.seed,
            "schedule": list(self.schedule) if self.schedule is not None else None,
        }


def parse_pbt(
    block: Mapping[str, Any],
    parameters: Sequence[Parameter],
    *,
    epochs: int,
    seed: int,
    pruning: str,
) -> PbtPlan:
    """Check the ``pbt`` block against the rest of the config; raise :class:`ConfigError`."""
    if pruning != "none":
        raise ConfigError(
            f"pruning.method: {pruning!r} cannot be combined with pbt (PBT replaces the worst "
            "members instead of stopping them); use method 'none' or remove the pbt block"
        )
    interval = block.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise ConfigError(
            f"pbt.interval: must be an integer >= 1 (epochs per generation), got {interval!r}"
        )
    if epochs % interval:
        raise ConfigError(
            f"pbt.interval: epochs ({epochs}) must be a multiple of interval ({interval}) so that "
            f"every generation trains the same number of epochs; e.g. epochs: "
            f"{max(interval, epochs - epochs % interval)} or {epochs - epochs % interval + interval}"
        )
    generations = epochs // interval
    schedule = block.get("schedule")
    if generations < 2 and schedule is None:
        raise ConfigError(
            f"pbt.interval: {interval} with epochs {epochs} makes one generation, so nothing is "
            "ever exploited; use an interval of at most half of epochs"
        )
    quantile = block.get("quantile", DEFAULT_QUANTILE)
    if (
        isinstance(quantile, bool)
        or not isinstance(quantile, (int, float))
        or not 0 < quantile <= 0.5
    ):
        raise ConfigError(
            f"pbt.quantile: must be a number > 0 and <= 0.5 (the share of members replaced; the "
            f"same share are the parents), got {quantile!r}"
        )
    resample = block.get("resample_probability", DEFAULT_RESAMPLE_PROBABILITY)
    if (
        isinstance(resample, bool)
        or not isinstance(resample, (int, float))
        or not 0 <= resample <= 1
    ):
        raise ConfigError(f"pbt.resample_probability: must be a number in [0, 1], got {resample!r}")
    mutate = block.get("mutate")
    by_name = {p.name: p for p in parameters}
    if not isinstance(mutate, list) or not mutate:
        raise ConfigError(
            f"pbt.mutate: must be a non-empty list of parameter names, got {mutate!r}; "
            f"the parameters are {sorted(by_name)}"
        )
    if len(set(map(str, mutate))) != len(mutate):
        raise ConfigError(f"pbt.mutate: lists a parameter twice: {mutate!r}")
    for name in mutate:
        if name not in by_name:
            raise ConfigError(
                f"pbt.mutate: {name!r} is not a parameter; the parameters are {sorted(by_name)}"
            )
        if by_name[name].kind not in MUTABLE_KINDS and schedule is None:
            raise ConfigError(
                f"pbt.mutate: {name!r} is of kind {by_name[name].kind!r}, which never changes; "
                f"mutate parameters of kind {list(MUTABLE_KINDS)}"
            )
    return PbtPlan(
        interval=interval,
        generations=generations,
        quantile=float(quantile),
        resample_probability=float(resample),
        mutate=tuple(sorted(mutate)),
        seed=seed,
        schedule=_parse_schedule(schedule, generations, mutate) if schedule is not None else None,
    )


def _parse_schedule(schedule: Any, generations: int, mutate: Sequence[str]) -> tuple[dict, ...]:
    if not isinstance(schedule, list) or len(schedule) != generations - 1:
        raise ConfigError(
            f"pbt.schedule: must list the mutated values of generations 1..{generations - 1} "
            f"({generations - 1} mappings), got {schedule!r}"
        )
    for index, entry in enumerate(schedule):
        if not isinstance(entry, Mapping) or set(entry) != set(mutate):
            raise ConfigError(
                f"pbt.schedule[{index}]: must map exactly the mutate parameters {sorted(mutate)} "
                f"to values, got {entry!r}"
            )
    return tuple(dict(entry) for entry in schedule)


def member_ids(members: Sequence[Mapping[str, Any]], plan: PbtPlan) -> list[str]:
    """Member ids: a hash of a member's start values, its population and the PBT settings.

    Every member's history depends on the whole population (who it is ranked against, who it
    is cloned from) and on the settings, so changing any of them makes new folders instead of
    continuing folders trained under other rules.
    """
    base = sorted(trial_id(m) for m in members)
    shared = {"population": base, **plan.identity()}
    return [trial_id({**m, "__pbt__": shared}) for m in members]


# -- ranking ---------------------------------------------------------------------------------------
def usable(record: Mapping[str, Any]) -> bool:
    """A member that finished its generation with a finite metric."""
    final = record.get("final")
    return record.get("status") in GOOD and isinstance(final, (int, float)) and math.isfinite(final)


def rank_members(records: Sequence[Mapping[str, Any]], mode: str) -> list[Mapping[str, Any]]:
    """Best first; ties by trial id; failed, diverged and metric-less members always last."""
    good = [r for r in records if usable(r)]
    bad = [r for r in records if not usable(r)]
    sign = -1.0 if mode == "max" else 1.0
    good.sort(key=lambda r: (sign * float(r["final"]), r["trial_id"]))
    bad.sort(key=lambda r: r["trial_id"])
    return good + bad


# -- explore ---------------------------------------------------------------------------------------
def perturb(
    param: Parameter, value: Any, rng: np.random.Generator, resample_probability: float
) -> tuple[Any, str]:
    """A new value of one parameter and how it was made; always inside the parameter's range."""
    if rng.random() < resample_probability:
        if param.kind in ("choice", "grid"):
            new = param.values[int(rng.integers(len(param.values)))]
        else:  # the sampler's own draw (rounding, log scale), from a seed of this generator
            new = sample([param], int(rng.integers(2**31)), 0)[param.name]
        return new, "resampled"
    if param.kind in ("choice", "grid"):
        index = _index_of(param.values, value)
        step = -1 if rng.random() < 0.5 else 1
        if index + step < 0 or index + step >= len(param.values):
            step = -step
        index = min(max(index + step, 0), len(param.values) - 1)
        return param.values[index], "neighbour"
    if param.kind == "int":
        step = -1 if rng.random() < 0.5 else 1
        new = int(value) + step
        if not param.low <= new <= param.high:
            new = int(value) - step
        return int(min(max(new, param.low), param.high)), "neighbour"
    factor = PERTURB_FACTORS[int(rng.integers(len(PERTURB_FACTORS)))]
    new = min(max(float(f"{float(value) * factor:.{SIGNIFICANT_DIGITS}g}"), param.low), param.high)
    return new, f"x{factor:g}"


def _index_of(values: Sequence[Any], value: Any) -> int:
    for index, candidate in enumerate(values):
        if type(candidate) is type(value) and candidate == value:
            return index
    return 0


def explore(
    params: Mapping[str, Any],
    parameters: Sequence[Parameter],
    mutate: Sequence[str],
    rng: np.random.Generator,
    resample_probability: float,
) -> tuple[dict[str, Any], list[str]]:
    """The parent's parameters with each ``mutate`` parameter perturbed, and what changed."""
    by_name = {p.name: p for p in parameters}
    new = dict(params)
    changes = []
    for name in sorted(mutate):
        value, how = perturb(by_name[name], params[name], rng, resample_probability)
        new[name] = value
        changes.append(f"{name} {params[name]!r} -> {value!r} ({how})")
    return new, changes


# -- the decision after a generation ---------------------------------------------------------------
def generation_decision(
    records: Sequence[Mapping[str, Any]],
    generation: int,
    plan: PbtPlan,
    parameters: Sequence[Parameter],
    metric: str,
    mode: str,
) -> dict[str, Any]:
    """Who continues from whose checkpoint, with which parameters, after ``generation``.

    ``records`` are the members' result records at the generation's end (their ``params``:
    what each trained this generation with). The bottom ``floor(quantile * n)`` members (at
    least one), and every failed or diverged member, are replaced by a copy of one of the top
    ones, drawn with a generator seeded by ``(seed, generation)``; the rest are kept as they are.
    """
    ranked = rank_members(records, mode)
    n = len(ranked)
    k = max(1, math.floor(plan.quantile * n))
    good = [r for r in ranked if usable(r)]
    parents = good[:k]
    bottom = {r["trial_id"] for r in ranked[n - k :]} | {
        r["trial_id"] for r in ranked if not usable(r)
    }
    rng = np.random.default_rng([plan.seed, _STREAM, generation])
    position = {r["trial_id"]: i + 1 for i, r in enumerate(ranked)}
    members = []
    for record in sorted(records, key=lambda r: r["trial_id"]):
        tid = record["trial_id"]
        params = _plain_params(record)
        where = f"rank {position[tid]} of {n}"
        score = (
            f"{metric}={record['final']!r}"
            if usable(record)
            else f"{record.get('status')}: {record.get('error') or 'no finite ' + metric}"
        )
        if tid not in bottom or not parents or tid in {p["trial_id"] for p in parents}:
            why = f"{where} ({score}): kept"
            if tid in bottom and not parents:
                why += "; no member finished this generation with a finite metric to copy"
            members.append({"member": tid, "parent": tid, "params": params, "why": why})
            continue
        parent = parents[int(rng.integers(len(parents)))]
        new, changes = explore(
            _plain_params(parent), parameters, plan.mutate, rng, plan.resample_probability
        )
        members.append(
            {
                "member": tid,
                "parent": parent["trial_id"],
                "params": new,
                "why": (
                    f"{where} ({score}): replaced by a copy of {parent['trial_id']} "
                    f"(rank {position[parent['trial_id']]}, {metric}={parent['final']!r}); "
                    + "; ".join(changes)
                ),
            }
        )
    return {
        "generation": generation,
        "epochs": [generation * plan.interval + 1, (generation + 1) * plan.interval],
        "metric": metric,
        "mode": mode,
        "ranking": [r["trial_id"] for r in ranked],
        "members": members,
    }


def _plain_params(record: Mapping[str, Any]) -> dict[str, Any]:
    return dict(record["params"])


# -- lineage and replay ----------------------------------------------------------------------------
def lineage_after(
    previous: Sequence[Mapping[str, Any]], decision: Mapping[str, Any], member: str
) -> list[dict[str, Any]]:
    """A member's lineage once ``decision`` is made: one entry per generation it trains.

    ``previous`` is its lineage so far (generation 0 .. g); the entry for g+1 names the trial
    whose checkpoint it starts from and the parameters it trains with.
    """
    generation = int(decision["generation"]) + 1
    entry = next(m for m in decision["members"] if m["member"] == member)
    kept = [dict(e) for e in previous if e["generation"] < generation]
    kept.append({"generation": generation, "parent": entry["parent"], "params": entry["params"]})
    return kept


def first_lineage(member: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Generation 0: every member starts from scratch with its sampled values."""
    return [{"generation": 0, "parent": member, "params": dict(params)}]


def ancestry(
    lineages: Mapping[str, Sequence[Mapping[str, Any]]], member: str, generations: int
) -> list[tuple[str, dict[str, Any]]]:
    """The (trial whose folder trained it, parameters) of each generation of ``member``'s model.

    Walks back from the last generation: a generation a member started from its parent's
    checkpoint continues the parent's model, whose earlier generations are the parent's.
    """
    chain: list[tuple[str, dict[str, Any]]] = []
    current = member
    for generation in reversed(range(generations)):
        entry = next(e for e in lineages[current] if e["generation"] == generation)
        chain.append((current, dict(entry["params"])))
        current = entry["parent"]
    chain.reverse()
    return chain


def replay_schedule(
    chain: Sequence[tuple[str, Mapping[str, Any]]], mutate: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The start values and the per-generation schedule that retrain ``chain`` from scratch."""
    start = dict(chain[0][1])
    schedule = [{name: params[name] for name in sorted(mutate)} for _, params in chain[1:]]
    return start, schedule


def scheduled_params(start: Mapping[str, Any], plan: PbtPlan, generation: int) -> dict[str, Any]:
    """Replay: a trial's parameters in ``generation`` (its start values, then the schedule's)."""
    if generation == 0 or plan.schedule is None:
        return dict(start)
    return {**start, **plan.schedule[generation - 1]}
