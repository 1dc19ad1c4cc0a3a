"""snakesweep: hyper-parameter sweeps of PyTorch training as a Snakemake workflow.

What a training script needs is importable from here without reading the
internals: :class:`~snakesweep.session.TrialSession` (metrics, results,
checkpoint/resume and deadlines) and the exit codes of the trial contract.
"""

from snakesweep.contract import EXIT_CONTINUE, EXIT_PRUNED

__all__ = ["EXIT_CONTINUE", "EXIT_PRUNED", "__version__"]
__version__ = "0.1.0"
