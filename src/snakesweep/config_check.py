"""Config errors a person can act on: the key at fault, what it holds, what is allowed.

Snakemake's ``validate`` reports the first schema error with the whole schema
fragment; this check runs first and turns the same schema into one line per
problem, then adds what a schema cannot say (low < high, grid-able kinds).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import jsonschema
import yaml

from snakesweep.cluster.layout import layout_problems
from snakesweep.search.space import ConfigError
from snakesweep.search.sweep import build_sweep


def load_schema(path: str | os.PathLike) -> dict[str, Any]:
    with open(path) as f:
        return yaml.safe_load(f)


def check_config(config: Mapping[str, Any], schema_path: str | os.PathLike) -> None:
    """Raise :class:`ConfigError` listing every problem in ``config``; return quietly if none."""
    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
    messages = []
    for error in errors:
        for leaf in _leaves(error):
            message = describe(leaf)
            if message not in messages:
                messages.append(message)
    if messages:
        raise ConfigError("\n  ".join(["invalid sweep config:", *messages]))
    try:
        build_sweep(config)  # the checks a schema cannot express
    except ConfigError as error:
        messages.append(str(error))
    messages += layout_problems(config)
    messages += script_problems(config)
    messages += warm_module_problems(config)
    if messages:
        raise ConfigError("\n  ".join(["invalid sweep config:", *messages]))


def script_problems(config: Mapping[str, Any]) -> list[str]:
    """The training script must exist and be readable now, not fail inside every trial later.

    A relative path is taken from the directory snakemake runs in, as the trial's command does.
    """
    script = config.get("script", "scripts/train.py")
    where = os.path.abspath(script)
    if not os.path.exists(script):
        return [f"script: {script!r} does not exist (looked for {where})"]
    if not os.path.isfile(script):
        return [f"script: {script!r} is not a file ({where})"]
    if not os.access(script, os.R_OK):
        return [f"script: {script!r} is not readable ({where})"]
    return []


def warm_module_problems(config: Mapping[str, Any]) -> list[str]:
    """Each of ``warm_modules`` must be found now (its top package, without importing it): a
    typo would otherwise only show as a warm-start refusal in every trial's log."""
    problems = []
    for name in config.get("warm_modules") or []:
        top = name.split(".")[0]
        if importlib.util.find_spec(top) is None:
            problems.append(
                f"warm_modules: {name!r} cannot be imported (no module {top!r} in this Python)"
            )
    return problems


def _leaves(error: jsonschema.ValidationError) -> list[jsonschema.ValidationError]:
    """The most specific errors under an ``allOf``/``if-then`` wrapper."""
    if error.context:
        return [leaf for sub in error.context for leaf in _leaves(sub)]
    return [error]


def key_of(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def describe(error: jsonschema.ValidationError) -> str:
    """One line: ``key: problem; what is allowed``."""
    key = key_of(error)
    value = error.instance
    kind = error.validator
    if kind == "enum":
        return f"{key}: {value!r} is not allowed; use one of {error.validator_value}"
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed)) if isinstance(value, Mapping) else []
        return f"{key}: unknown key(s) {unknown}; allowed keys: {allowed}"
    if kind == "required":
        return f"{key}: missing required key {error.message.split(' ')[0]}"
    if kind == "type" and list(error.absolute_path)[:3:2] == ["parameters", "when"]:
        return (
            f"{key}: {value!r} is not allowed; a condition maps a parameter name to a value "
            "or a list of values, e.g. `when: {optimizer: [sgd, rmsprop]}`"
        )
    if kind == "type":
        return f"{key}: {value!r} is not of type {error.validator_value}"
    if kind in ("minimum", "exclusiveMinimum"):
        return f"{key}: must be >= {error.validator_value}, got {value!r}"
    if kind in ("maximum", "exclusiveMaximum"):
        return f"{key}: must be <= {error.validator_value}, got {value!r}"
    if kind == "minItems":
        return f"{key}: must have at least {error.validator_value} item(s), got {value!r}"
    if kind == "minProperties":
        return f"{key}: must not be empty"
    if kind == "pattern" and error.path != error.relative_path:
        return f"{key}: {value!r} does not match {error.validator_value}"
    if kind == "pattern":
        where = (
            f"{key}: name {value!r}"
            if error.relative_schema_path[0] == "propertyNames"
            else f"{key}: {value!r}"
        )
        return (
            f"{where} is not allowed; it must match {error.validator_value} "
            "(letters, digits and '_': it becomes a command-line option and a path component)"
            if "parameters" in key
            else f"{where} does not match {error.validator_value}"
        )
    return f"{key}: {error.message}"


def continuation_retries_problem(retries: int, max_continuations: int) -> str | None:
    """What to change when Snakemake's ``retries`` is below ``checkpoint.max_continuations``.

    A trial continues after a time limit or preemption by exiting 75, which
    Snakemake sees as a failure and retries: with fewer retries than continuations a
    long trial is given up by Snakemake (its state saved) before snakesweep's own cap.
    """
    if retries >= max_continuations:
        return None
    return (
        f"retries is {retries} but checkpoint.max_continuations is {max_continuations}: "
        f"Snakemake would give up on a trial after {retries} continuation(s). Set "
        f"`retries: {max_continuations}` (or more) in your profile or pass "
        f"--retries {max_continuations}, or lower checkpoint.max_continuations to {retries}"
    )
