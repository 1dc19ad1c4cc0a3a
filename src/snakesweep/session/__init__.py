"""What runs inside a user's training script: :class:`TrialSession` and its parts.

``from snakesweep.session import TrialSession`` is the public entry point; it imports torch
and warms MKL's vector-math kernels (``kernel_warmup``) before the script's first tensor math.
The parts (``checkpoint``, ``deadline``, ``ranks``, ...) import without torch's session, so the
package loads :class:`TrialSession` on first use.
"""

from typing import Any

__all__ = ["TrialSession"]


def __getattr__(name: str) -> Any:
    if name == "TrialSession":
        from snakesweep.session.trial_session import TrialSession

        return TrialSession
    raise AttributeError(f"module 'snakesweep.session' has no attribute {name!r}")
