"""A sweep plan built from a validated config: which trials exist and how to train them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.search.pbt import PbtPlan, member_ids, parse_pbt
from snakesweep.search.pruning import hyperband_brackets, rung_budgets
from snakesweep.search.rounds import RoundMaker, round_sizes, settings_changes
from snakesweep.search.samplers import sampler_for
from snakesweep.search.sampling import expand
from snakesweep.search.space import ConfigError, Parameter, parse_parameters
from snakesweep.search.trial_id import trial_id
from snakesweep.store import contract
from snakesweep.store.round_file import ROUNDS_DIR, read_rounds

PRUNING_METHODS = ("none", "sha", "hyperband", "asha")
#: Pruning methods a model-based strategy runs with: a round waits for all its trials, so the
#: synchronous cohorts of sha and hyperband would be a second, competing notion of a round.
ROUND_PRUNING = ("none", "asha")
#: Trials suggested together when ``round_size`` is not given: small enough that a sweep
#: learns often (quality follows the number of rounds), large enough to keep 4 workers busy.
DEFAULT_ROUND_SIZE = 4


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
    strategy: str = "random"
    #: A model-based strategy's rounds (each round is one bracket); None for grid and random.
    rounds: RoundPlan | None = None

    @property
    def trial_ids(self) -> list[str]:
        return list(self.trials)

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / contract.TRIALS_DIR / trial_id


@dataclass(frozen=True)
class RoundPlan:
    """The rounds of a model-based sweep as far as they are known when the workflow is parsed."""

    maker: RoundMaker
    #: The size of every planned round (``snakesweep.search.rounds.round_sizes``).
    sizes: tuple[int, ...]
    #: Round number -> round content, for the rounds known now: those with a round file
    #: (``written``) and round 0, which needs no records and is made at parse time.
    known: dict[int, dict[str, Any]] = field(repr=False)
    written: frozenset[int] = frozenset()


def round_maker(config: Mapping[str, Any]) -> RoundMaker:
    """What every round of a model-based sweep is made with, from its config (no file read).

    Raises :class:`ConfigError` naming the key at fault.
    """
    strategy = config.get("strategy", "random")
    spec = sampler_for(strategy)
    if spec is None:
        raise ConfigError(f"strategy: {strategy!r} has no rounds")
    unknown = spec.unknown(config.get(strategy))
    if unknown:
        raise ConfigError(
            f"{strategy}: unknown key(s) {unknown}; allowed keys: {sorted(spec.defaults)}"
        )
    params = parse_parameters(config.get("parameters") or {}, strategy)
    if not params:
        raise ConfigError("parameters: the search space is empty; define at least one parameter")
    if all(p.kind == "fixed" for p in params):
        raise ConfigError(
            f"parameters: every parameter is fixed; strategy {strategy!r} needs at least one "
            "to search (kind choice, uniform, loguniform or int)"
        )
    pruning = dict(config.get("pruning") or {})
    method = pruning.get("method", "none")
    if method not in ROUND_PRUNING:
        raise ConfigError(
            f"pruning.method: {method!r} is not allowed with strategy {strategy!r}; use one of "
            f"{list(ROUND_PRUNING)} (a round already waits for all its trials, so sha's and "
            "hyperband's rungs would compete with the rounds; asha prunes inside a round)"
        )
    epochs = int(config.get("epochs", 8))
    eta, min_t = int(pruning.get("eta", 3)), int(pruning.get("min_t", 1))
    rungs = tuple(rung_budgets(min_t, epochs, eta)) if method == "asha" else ()
    options = spec.options(config.get(strategy))
    if "group" in options and options["group"] is None:
        options["group"] = bool(options.get("multivariate")) and any(p.when for p in params)
    settings = {
        "strategy": strategy,
        strategy: options,
        "seed": int(config.get("seed", 0)),
        "metric": config["metric"],
        "mode": config["mode"],
        "epochs": epochs,
        "parameters": [_parameter_setting(p) for p in params],
        "pruning": {"method": method}
        if method == "none"
        else {
            "method": method,
            "eta": eta,
            "min_t": min_t,
            "min_peers": int(pruning.get("min_peers", 3)),
        },
    }
    return RoundMaker(
        space=tuple(params),
        epochs=epochs,
        metric=config["metric"],
        mode=config["mode"],
        seed=int(config.get("seed", 0)),
        sampler=strategy,
        options=options,
        rung_budgets=rungs,
        settings=settings,
    )


def _parameter_setting(p: Parameter) -> dict[str, Any]:
    """A parameter as a round file records it; a float range's bounds as floats, so that
    writing ``low: 0`` or ``low: 0.0`` is the same setting."""
    setting = asdict(p)
    if p.kind in ("uniform", "loguniform"):
        setting.update(low=float(p.low), high=float(p.high))
    return setting


def plan_rounds(config: Mapping[str, Any], root: Path, n_trials: int) -> RoundPlan:
    """The rounds of a model-based sweep: the written ones as they are, then new ones.

    A written round made with other search settings is refused (it is never rewritten, and
    later rounds would learn from trials of another search).
    """
    maker = round_maker(config)
    round_size = config.get("round_size", DEFAULT_ROUND_SIZE)
    if isinstance(round_size, bool) or not isinstance(round_size, int) or round_size < 1:
        raise ConfigError(f"round_size: must be an integer >= 1, got {round_size!r}")
    on_disk = read_rounds(root)
    sizes = round_sizes(n_trials, round_size, {k: int(r["size"]) for k, r in on_disk.items()})
    written = {k: r for k, r in on_disk.items() if k < len(sizes)}
    for k, content in written.items():
        changed = settings_changes(content.get("settings") or {}, maker.settings)
        if changed:
            raise ConfigError(
                f"{', '.join(changed)}: differ from the settings round {k} was made with "
                f"({root / ROUNDS_DIR}/round-{k}.json); a written round is never rewritten. "
                "Restore them, give the sweep a new name (sweep:), or delete "
                f"{root / ROUNDS_DIR} to start the search over"
            )
    known = dict(written)
    if 0 not in known:
        # As it will read back from its file, so that a rule's params never differ between
        # the run that wrote the file and the next (Snakemake compares them).
        known[0] = json.loads(json.dumps(maker.make(0, sizes[0], []), sort_keys=True))
    return RoundPlan(maker=maker, sizes=sizes, known=known, written=frozenset(written))


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
    root = Path(config.get("results_dir", "results")) / config.get("sweep", "demo")
    if sampler_for(strategy) is not None:
        if config.get("pbt") is not None:
            raise ConfigError(
                f"strategy: {strategy!r} cannot be combined with pbt; PBT samples its members "
                "once, with strategy 'random' or 'grid'"
            )
        return _model_based_sweep(config, root, n_trials)
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
    plan = parse_pbt(block, params, epochs=epochs, seed=seed, pruning=method)
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


def _model_based_sweep(config: Mapping[str, Any], root: Path, n_trials: int) -> Sweep:
    """A sweep whose trials a sampler suggests round by round: each round is one bracket of
    one rung (``epochs``), holding the trials of the round once they are known."""
    plan = plan_rounds(config, root, n_trials)
    maker = plan.maker
    trials: dict[str, dict[str, Any]] = {}
    brackets = []
    for k in range(len(plan.sizes)):
        entries = plan.known[k]["trials"] if k in plan.known else []
        for entry in entries:
            trials.setdefault(entry["trial_id"], dict(entry["params"]))
        ids = tuple(entry["trial_id"] for entry in entries)
        brackets.append(Bracket(k, (maker.epochs,), ids))
    pruning = dict(config.get("pruning") or {})
    return Sweep(
        name=config.get("sweep", "demo"),
        root=root,
        metric=config["metric"],
        mode=config["mode"],
        epochs=maker.epochs,
        parameters=maker.space,
        trials=trials,
        pruning=pruning.get("method", "none"),
        eta=int(pruning.get("eta", 3)),
        brackets=tuple(brackets),
        rung_budgets=maker.rung_budgets,
        strategy=maker.sampler,
        rounds=plan,
    )


def plan_note(sweep: Sweep, config: Mapping[str, Any]) -> str | None:
    """What the sweep plans when it is not simply ``n_trials`` (Hyperband, PBT, rounds), and why.

    Hyperband's brackets fix the number of trials from ``epochs``, ``pruning.min_t`` and
    ``pruning.eta``; ``n_trials`` does not enter, so the plan is said out loud at dry-run.
    A model-based sweep lists only the rounds known now: the others are suggested from the
    results of the rounds before them.
    """
    if sweep.pbt is not None and sweep.pbt.schedule is None:
        return (
            f"snakesweep: pbt trains {len(sweep.trials)} members in {sweep.pbt.generations} "
            f"generations of {sweep.pbt.interval} epoch(s); `snakemake -n` lists generation 0, "
            "each later one is planned from the decision before it (results/"
            f"{sweep.name}/generations/)"
        )
    if sweep.rounds is not None:
        return rounds_note(sweep)
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


def rounds_note(sweep: Sweep) -> str:
    """What a dry run of a model-based sweep shows, and why it shows no more."""
    plan = sweep.rounds
    assert plan is not None
    sizes = plan.sizes
    known = sorted(plan.known)
    later = [k for k in range(len(sizes)) if k not in plan.known]
    text = (
        f"snakesweep: strategy {sweep.strategy!r} plans {sum(sizes)} trials in {len(sizes)} "
        f"round(s) of {'/'.join(str(s) for s in sizes)}; the trials of round(s) "
        f"{_ranges(known)} are listed"
    )
    if later:
        text += (
            f"; round(s) {_ranges(later)} follow: each is suggested by Optuna's sampler from the "
            "results of every round before it (a checkpoint writes "
            f"{sweep.root / ROUNDS_DIR}/round-<k>.json), so its trials cannot be listed yet"
        )
    return text


def _ranges(numbers: list[int]) -> str:
    if not numbers:
        return "none"
    if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 2:
        return f"{numbers[0]}-{numbers[-1]}"
    return ", ".join(str(n) for n in numbers)
