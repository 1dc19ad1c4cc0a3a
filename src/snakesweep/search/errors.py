"""The error of a sweep config that cannot run, shared by every check of the plan.

Its own module so that the space, its conditions and the sweep can all raise it
without importing each other in a circle; ``snakesweep.search.space.ConfigError``
is the same class.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A sweep config that cannot run; the message names the key and what is allowed."""
