"""A sweep plan built from a validated config: which trials exist and how to train them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.search.pbt import PbtPlan, member_ids, parse_pbt
from snakesweep.search.pruning import hyperband_brackets, rung_budgets
from snakesweep.search.sampling import expand
from snakesweep.search.space import ConfigError, Parameter, parse_parameters
from snakesweep.search.trial_id import trial_id
from snakesweep.store import contract

PRUNING_METHODS = ("none", "sha", "hyperband", "asha")


@dataclass(frozen=True)
class Bracket:
    """A cohort of trials that is pruned together, rung by rung (one bracket unless Hyperband)."""

    index: int
    budgets: tuple[int, ...]
    trial_ids: tuple[str, ...]


@dataclass(frozen=True)
class Sweep:
    """Everything the rules need to know about a sweep, computed once at parse time."""

    name: str
    root: Path
    metric: str
    mode: str
    epochs: int
    parameters: tuple[Parameter, ...]
    #: trial_id -> full parameter set passed to the training script (epochs included)
    trials: dict[str, dict[str, Any]] = field(repr=False)
    pruning: str = "none"
    eta: int = 3
    #: Synchronous rungs (none, sha, hyperband); one bracket holding every trial otherwise.
    brackets: tuple[Bracket, ...] = ()
    #: Epoch budgets at which a trial is compared with its peers (all methods but none).
    rung_budgets: tuple[int, ...] = ()
    #: Population based training (the ``pbt`` block), or None (docs/pbt.md).
    pbt: PbtPlan | None = None

    @property
    def trial_ids(self) -> list[str]:
        return list(self.trials)

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / contract.TRIALS_DIR / trial_id


def build_sweep(config: Mapping[str, Any]) -> Sweep:
    """Check what the schema cannot and expand the search space into trials.

    The workflow passes a config with the schema's defaults filled in; the
    ``config.get(key, default)`` fallbacks below repeat them for library callers and
    are pinned to the schema by ``tests/test_defaults.py``.

    Raises :class:`ConfigError` naming the key at fault.
    """
    if config.get("mode") not in ("min", "max"):
        raise ConfigError(f"mode: {config.get('mode')!r} is not allowed; use 'min' or 'max'")
    if not config.get("metric"):
        raise ConfigError("metric: required; name the metric your training script reports")
    n_trials = config.get("n_trials", 8)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"n_trials: must be an integer >= 1, got {n_trials!r}")
    strategy = config.get("strategy", "random")
    params = parse_parameters(config.get("parameters") or {}, strategy)
    if not params:
        raise ConfigError("parameters: the search space is empty; define at least one parameter")
    epochs = int(config.get("epochs", 8))
    seed = int(config.get("seed", 0))
    pruning = dict(config.get("pruning") or {})
    method = pruning.get("method", "none")
    eta, min_t = int(pruning.get("eta", 3)), int(pruning.get("min_t", 1))
    if method not in PRUNING_METHODS:
        raise ConfigError(
            f"pruning.method: {method!r} is not allowed; use one of {list(PRUNING_METHODS)}"
        )
    if method != "none":
        if eta < 2:
            raise ConfigError(f"pruning.eta: must be >= 2, got {eta}")
        if not 0 < min_t <= epochs:
            raise ConfigError(
                f"pruning.min_t: must be > 0 and <= epochs (the largest budget, max_t = {epochs}), got {min_t}"
            )
    if method == "hyperband":
        if strategy != "random":
            raise ConfigError(
                "pruning.method: 'hyperband' samples its own brackets; use strategy 'random'"
            )
        plan = hyperband_brackets(min_t, epochs, eta)
        samples = expand(params, strategy, sum(b.n_trials for b in plan), seed)
        per_bracket = []
        for b in plan:
            chunk, samples = samples[: b.n_trials], samples[b.n_trials :]
            per_bracket.append((b.budgets, chunk))
    else:
        budgets = tuple(rung_budgets(min_t, epochs, eta)) if method == "sha" else (epochs,)
        per_bracket = [(budgets, expand(params, strategy, n_trials, seed))]
    trials: dict[str, dict[str, Any]] = {}
    brackets = []
    for index, (budgets, values_list) in enumerate(per_bracket):
        ids = []
        for values in values_list:
            full = {**values, "epochs": epochs}
            tid = trial_id(full)
            trials.setdefault(tid, full)
            if tid not in ids:
                ids.append(tid)
        brackets.append(Bracket(index, tuple(budgets), tuple(ids)))
    pbt = None
    if config.get("pbt") is not None:
        pbt, trials, brackets = _population(config, params, epochs, seed, method, trials)
    rungs: tuple[int, ...] = ()
    if method in ("sha", "asha"):
        rungs = tuple(rung_budgets(min_t, epochs, eta))
    elif method == "hyperband":
        rungs = tuple(sorted({b for bracket in brackets for b in bracket.budgets}))
    root = Path(config.get("results_dir", "results")) / config.get("sweep", "demo")
    return Sweep(
        name=config.get("sweep", "demo"),
        root=root,
        metric=config["metric"],
        mode=config["mode"],
        epochs=epochs,
        parameters=tuple(params),
        trials=trials,
        pruning=method,
        eta=eta,
        brackets=tuple(brackets),
        rung_budgets=rungs,
        pbt=pbt,
    )


def _population(
    config: Mapping[str, Any],
    params: list[Parameter],
    epochs: int,
    seed: int,
    method: str,
    trials: dict[str, dict[str, Any]],
) -> tuple[PbtPlan, dict[str, dict[str, Any]], list[Bracket]]:
    """PBT: the trials are the population's members, named by :func:`member_ids`."""
    block = config["pbt"]
    if not isinstance(block, Mapping):
        raise ConfigError(
            f"pbt: must be a mapping with at least 'interval' and 'mutate', got {block!r}"
        )
    plan = parse_pbt(
        block, params, epochs=epochs, seed=seed, pruning=method, pack=int(config.get("pack", 1))
    )
    strategy = config.get("strategy", "random")
    if strategy not in ("random", "grid"):
        raise ConfigError(
            f"strategy: {strategy!r} cannot be combined with pbt; PBT samples its members once, "
            "with strategy 'random' or 'grid'"
        )
    members = list(trials.values())
    if plan.schedule is None and len(members) < 2:
        raise ConfigError(
            f"n_trials: PBT needs a population of at least 2 members, the config makes {len(members)}"
        )
    if plan.schedule is not None and len(members) != 1:
        raise ConfigError(
            f"pbt.schedule: replays one member's schedule; the config makes {len(members)} trials "
            "(make every parameter fixed, as best.yaml does)"
        )
    renamed = dict(zip(member_ids(members, plan), members, strict=True))
    return plan, renamed, [Bracket(0, (epochs,), tuple(renamed))]


def plan_note(sweep: Sweep, config: Mapping[str, Any]) -> str | None:
    """What the sweep plans when it is not simply ``n_trials`` (Hyperband, PBT), and why.

    Hyperband's brackets fix the number of trials from ``epochs``, ``pruning.min_t`` and
    ``pruning.eta``; ``n_trials`` does not enter, so the plan is said out loud at dry-run.
    """
    if sweep.pbt is not None and sweep.pbt.schedule is None:
        return (
            f"snakesweep: pbt trains {len(sweep.trials)} members in {sweep.pbt.generations} "
            f"generations of {sweep.pbt.interval} epoch(s); `snakemake -n` lists generation 0, "
            "each later one is planned from the decision before it (results/"
            f"{sweep.name}/generations/)"
        )
    if sweep.pruning != "hyperband":
        return None
    pruning = config.get("pruning", {})
    sizes = " + ".join(str(len(b.trial_ids)) for b in sweep.brackets)
    return (
        f"snakesweep: pruning.method 'hyperband' plans {len(sweep.trials)} trials in "
        f"{len(sweep.brackets)} brackets ({sizes}), fixed by epochs={sweep.epochs}, "
        f"pruning.min_t={pruning.get('min_t', 1)} and pruning.eta={sweep.eta}; "
        f"n_trials ({config.get('n_trials', 8)}) is not used by hyperband"
    )
