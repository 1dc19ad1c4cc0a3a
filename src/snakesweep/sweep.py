"""A sweep plan built from a validated config: which trials exist and how to train them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.sampling import expand
from snakesweep.space import ConfigError, Parameter, parse_parameters
from snakesweep.trial_id import trial_id


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

    @property
    def trial_ids(self) -> list[str]:
        return list(self.trials)

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / "trials" / trial_id


def build_sweep(config: Mapping[str, Any]) -> Sweep:
    """Check what the schema cannot and expand the search space into trials.

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
    trials: dict[str, dict[str, Any]] = {}
    for values in expand(params, strategy, n_trials, int(config.get("seed", 0))):
        full = {**values, "epochs": epochs}
        trials.setdefault(trial_id(full), full)
    root = Path(config.get("results_dir", "results")) / config.get("sweep", "demo")
    return Sweep(
        name=config.get("sweep", "demo"),
        root=root,
        metric=config["metric"],
        mode=config["mode"],
        epochs=epochs,
        parameters=tuple(params),
        trials=trials,
    )
