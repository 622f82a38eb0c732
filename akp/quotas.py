"""Launch limits of a shared instance: per-user quotas and the memory cap, read and checked once.

:meth:`akp.jobs.JobManager.launch` checks a new experiment against these limits
before it writes anything. The defaults suit a small shared server (2 cores, a
few GB of memory): one ``balanced`` experiment (48 runs) fits a user's run
quota with room for a small one beside it. Each limit can be changed with an
environment variable; a bad value raises :class:`LimitsError` naming the
variable, before anything is created or started.

======================================  ==============================  =======
Limit                                   Variable                        Default
======================================  ==============================  =======
queued + running runs of one user       ``AKP_MAX_RUNS_PER_USER``       64
experiments one user owns               ``AKP_MAX_EXPERIMENTS_PER_USER``  50
disk used by one user's experiments     ``AKP_MAX_DISK_MB_PER_USER``    2048
peak memory of building the dataset,    ``AKP_MAX_MEMORY_MB``           2048
or of training one run
======================================  ==============================  =======
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from akp.errors import AKPError

__all__ = ["LIMIT_SETTINGS", "LaunchLimits", "LaunchRefused", "LimitsError", "resolve_limits"]

MB = 1024 * 1024

#: field -> (environment variable, default, largest allowed value).
LIMIT_SETTINGS: dict[str, tuple[str, int, int]] = {
    "max_runs_per_user": ("AKP_MAX_RUNS_PER_USER", 64, 100_000),
    "max_experiments_per_user": ("AKP_MAX_EXPERIMENTS_PER_USER", 50, 100_000),
    "max_disk_mb_per_user": ("AKP_MAX_DISK_MB_PER_USER", 2048, 10_000_000),
    "max_memory_mb": ("AKP_MAX_MEMORY_MB", 2048, 10_000_000),
}


class LimitsError(AKPError):
    """A limit setting is not a positive integer in range; ``field`` is its environment variable."""


class LaunchRefused(AKPError):
    """A launch would exceed a limit; nothing was written.

    ``field`` names the limit: ``quota.runs``, ``quota.experiments``, ``quota.disk``,
    ``memory.dataset``, ``memory.run`` or ``queue``; the message says by how much.
    """


@dataclass(frozen=True)
class LaunchLimits:
    """Per-user quotas and the memory cap that a launch must fit.

    Attributes
    ----------
    max_runs_per_user : int
        Queued plus running runs of one user, this experiment's included.
    max_experiments_per_user : int
        Experiments one user owns, this one included.
    max_disk_mb_per_user : int
        MiB on disk of one user's experiments (probe sets, representations,
        checkpoints) plus this experiment's estimate.
    max_memory_mb : int
        MiB that building the dataset, or training one run, may peak at
        (:mod:`akp.memory` estimates both).
    """

    max_runs_per_user: int = LIMIT_SETTINGS["max_runs_per_user"][1]
    max_experiments_per_user: int = LIMIT_SETTINGS["max_experiments_per_user"][1]
    max_disk_mb_per_user: int = LIMIT_SETTINGS["max_disk_mb_per_user"][1]
    max_memory_mb: int = LIMIT_SETTINGS["max_memory_mb"][1]

    def check(self) -> "LaunchLimits":
        """Raise :class:`LimitsError` naming the first bad limit; return self when all are good."""
        for name, (env, _, hi) in LIMIT_SETTINGS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise LimitsError.at(env, f"must be an integer from 1 to {hi}, got {value!r}")
        return self


def resolve_limits(environ: Mapping[str, str] | None = None, **explicit: int) -> LaunchLimits:
    """The launch limits: explicit values, else the environment, else the defaults.

    Parameters
    ----------
    environ : mapping, optional
        Default ``os.environ``; read: the variables of :data:`LIMIT_SETTINGS`.
    **explicit : int
        Values that win over the environment, by field name (e.g. ``max_runs_per_user=4``).

    Returns
    -------
    LaunchLimits

    Raises
    ------
    LimitsError
        A variable is not an integer, or a limit is out of range; ``field`` names the variable.
    TypeError
        An unknown field in ``explicit``.
    """
    env = os.environ if environ is None else environ
    unknown = set(explicit) - set(LIMIT_SETTINGS)
    if unknown:
        raise TypeError(f"unknown limits: {', '.join(sorted(unknown))}; known: {', '.join(LIMIT_SETTINGS)}")
    values: dict[str, int] = {}
    for name, (var, default, _) in LIMIT_SETTINGS.items():
        if name in explicit:
            values[name] = explicit[name]
            continue
        text = (env.get(var) or "").strip()
        if not text:
            values[name] = default
            continue
        if len(text) > 12 or not text.lstrip("+-").isdigit():
            raise LimitsError.at(var, f"must be a positive integer, got {text[:40]!r}")
        values[name] = int(text)
    return LaunchLimits(**values).check()
