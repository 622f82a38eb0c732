"""App test: the Design page launches through JobManager.launch; a refused launch is one line and writes nothing."""
from __future__ import annotations

from pathlib import Path

import pytest

import ui
from akp.store import RunStore
from tests.test_app_core import design


@pytest.fixture
def capped_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "store"
    monkeypatch.setenv("AKP_HOME", str(home))
    monkeypatch.setenv("AKP_MAX_RUNS_PER_USER", "3")  # the smoke preset has 4 runs
    yield home
    ui.shutdown_managers(home)


def test_design_launch_over_the_run_quota_is_one_line_and_creates_nothing(capped_home: Path) -> None:
    at = design()
    at.selectbox(key="design-preset").select("smoke").run()
    at.button(key="design-launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [ui.plain(e.value) for e in at.error]
    assert errors == ["Nothing was queued: quota.runs (AKP_MAX_RUNS_PER_USER): local has 0 queued or running runs "
                      "of at most 3; this experiment adds 4, 1 over; wait for some to finish, or use fewer "
                      "conditions or seeds (nothing was created)"], errors
    assert [t.value for t in at.title] != ["Runs"]  # stays on Design
    assert RunStore(capped_home).experiments() == []
    assert not (capped_home / "experiments").exists()
