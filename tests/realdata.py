"""Where the real test data lives (../shared/data beside the repo), and how tests reach it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data(name: str) -> Path:
    """Path of real test data in ../shared/data; skip where absent, but fail under CI."""
    path = SHARED_DATA / name
    if not path.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{path} is missing, and CI must run the real-data tests")
        pytest.skip(f"{path} is absent (real test data lives in ../shared/data beside the repo)")
    return path
