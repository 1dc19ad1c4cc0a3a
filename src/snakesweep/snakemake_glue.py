"""The few calls the Snakefile makes into snakesweep, with errors in Snakemake's terms."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from snakesweep.config_check import check_config
from snakesweep.space import ConfigError


def check_sweep_config(config: Mapping[str, Any], schema_path: str | os.PathLike) -> None:
    """Fail the parse (so before any job or results folder exists) with readable config errors.

    The message alone goes to stderr and the process exits 1: a ``WorkflowError`` raised here
    would add Snakemake's traceback lines (Snakefile, this module) that tell a user nothing.
    """
    try:
        check_config(config, schema_path)
    except ConfigError as error:
        print(str(error), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
