"""The model-based samplers a sweep may name as its ``strategy``: Optuna's, never our own.

A sampler here is a name, its options with their defaults, and how to build the Optuna
sampler from them and a seed. The rounds (:mod:`snakesweep.search.rounds`) and the workflow
know nothing else about it, so adding Optuna's GPSampler is one more :class:`SamplerSpec`
(plus its block in the config schema), not a new pipeline.

Optuna is imported inside :meth:`SamplerSpec.build` only: a grid or random sweep never
pays for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler: the ``strategy`` name, its config block's options and their defaults."""

    name: str
    #: option -> default; the config block ``<name>:`` may set any of them, nothing else.
    defaults: Mapping[str, Any]
    #: (options, seed) -> an ``optuna.samplers.BaseSampler``.
    factory: Callable[[Mapping[str, Any], int], Any]

    def options(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The block's options with the defaults filled in (keys the block may not hold are
        the caller's to refuse: :meth:`unknown`)."""
        given = dict(given or {})
        return {key: given.get(key, default) for key, default in self.defaults.items()}

    def unknown(self, given: Mapping[str, Any] | None) -> list[str]:
        return sorted(set(given or {}) - set(self.defaults))

    def build(self, options: Mapping[str, Any], seed: int) -> Any:
        return self.factory(options, seed)


def _tpe(options: Mapping[str, Any], seed: int) -> Any:
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.samplers import TPESampler

    with warnings.catch_warnings():
        # ``group`` is marked experimental in Optuna 5.0; the round file pins the version.
        warnings.simplefilter("ignore", ExperimentalWarning)
        return _tpe_sampler(TPESampler, options, seed)


def _tpe_sampler(TPESampler: Any, options: Mapping[str, Any], seed: int) -> Any:
    return TPESampler(
        n_startup_trials=int(options["n_startup_trials"]),
        n_ei_candidates=int(options["n_ei_candidates"]),
        multivariate=bool(options["multivariate"]),
        # Conditional parameters (``when``): multivariate TPE models each group of parameters
        # that occur together, instead of falling back to one by one outside their intersection.
        group=bool(options["multivariate"]) and bool(options["group"]),
        constant_liar=bool(options["constant_liar"]),
        seed=seed,
    )


#: Optuna 5.0's own defaults for a single objective (``multivariate`` is None there, which
#: means True with one objective), written out so that the round file records them.
TPE = SamplerSpec(
    name="tpe",
    defaults={
        "n_startup_trials": 10,
        "n_ei_candidates": 24,
        "multivariate": True,
        # None: true when the space has conditional parameters (``when``) and multivariate is
        # on; the round file records what it became (:func:`snakesweep.search.sweep.round_maker`).
        "group": None,
        "constant_liar": True,
    },
    factory=_tpe,
)

#: strategy name -> sampler. The strategies not here (grid, random) are planned up front.
SAMPLERS: dict[str, SamplerSpec] = {TPE.name: TPE}


def sampler_for(strategy: str) -> SamplerSpec | None:
    """The model-based sampler of ``strategy``, or None for a strategy planned up front."""
    return SAMPLERS.get(strategy)
