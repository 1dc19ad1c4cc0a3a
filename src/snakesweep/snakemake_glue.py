"""The few calls the Snakefile makes into snakesweep, with errors in Snakemake's terms."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from snakemake.exceptions import WorkflowError

from snakesweep.config_check import check_config
from snakesweep.space import ConfigError


def check_sweep_config(config: Mapping[str, Any], schema_path: str | os.PathLike) -> None:
    """Fail the parse (so before any job or results folder exists) with readable config errors."""
    try:
        check_config(config, schema_path)
    except ConfigError as error:
        raise WorkflowError(str(error)) from None
