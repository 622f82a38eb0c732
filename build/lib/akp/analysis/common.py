"""What every analysis module shares: the error class, the family names, JSON conversion."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from akp.errors import AKPError

__all__ = ["FAMILIES", "AnalysisError", "check_integer", "is_finite_number", "jsonable"]

FAMILIES = ("happy", "unhappy")


class AnalysisError(AKPError):
    """Invalid input to an analysis function; ``field`` names the argument, the message what is allowed."""


def is_finite_number(value: Any) -> bool:
    """True for a finite int or float (numpy scalars included); False for None, non-numbers, NaN and inf."""
    return value is not None and isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def check_integer(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int if it is an integer (not a bool) >= ``minimum``; else AnalysisError on ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise AnalysisError.at(name, f"must be an integer >= {minimum}, got {value!r}")
    return int(value)


def jsonable(obj: Any) -> Any:
    """Arrays to lists, numpy scalars to Python, NaN/inf to None, tuples to lists."""
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj
