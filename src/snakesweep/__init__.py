"""snakesweep: hyper-parameter sweeps of PyTorch training as a Snakemake workflow.

What a training script needs is importable from here without reading the
internals: :class:`~snakesweep.session.TrialSession` (metrics, results,
checkpoint/resume and deadlines) and the exit codes of the trial contract.
:func:`~snakesweep.report.tables.load` reads a sweep's results as pandas tables.
Both are imported on first use, so that the CLI and the workflow's rules do not
pay for importing torch or pandas.
"""

from typing import Any

from snakesweep.store.contract import EXIT_CONTINUE, EXIT_PRUNED

__all__ = ["EXIT_CONTINUE", "EXIT_PRUNED", "TrialSession", "__version__", "load"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "TrialSession":
        from snakesweep.session import TrialSession

        return TrialSession
    if name == "load":
        from snakesweep.report.tables import load

        return load
    raise AttributeError(f"module 'snakesweep' has no attribute {name!r}")
