"""Shared fixtures: a temporary run store and a store trained on the smoke preset."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Two cores here: keep torch from oversubscribing when pytest and a server share the machine.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
# App tests see a page's unexpected errors as exceptions (ui.guard shows them as one line otherwise).
os.environ.setdefault("AKP_RAISE_ERRORS", "1")
# No background run-time calibration in app tests (tests/test_timing_calibration.py turns it on where it is tested).
os.environ.setdefault("AKP_CALIBRATE", "0")


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """A JobManager sets torch's process-wide thread count: give every test the count it started with."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def store(tmp_path):
    """An empty run store under the test's temporary folder."""
    from akp.store import RunStore

    return RunStore(tmp_path / "home")


@pytest.fixture
def tmp_home(tmp_path, monkeypatch) -> Path:
    """An empty run-store home, also exported as $AKP_HOME."""
    home = tmp_path / "akp-home"
    monkeypatch.setenv("AKP_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory):
    """A run store holding one finished experiment of the ``smoke`` preset: (store, experiment_id)."""
    from akp.experiment import load_preset
    from akp.runner import execute_run
    from akp.store import RunStore

    store = RunStore(tmp_path_factory.mktemp("smoke-store"))
    experiment_id = store.create_experiment(load_preset("smoke"))
    for run in store.runs(experiment_id):
        execute_run(store, run["run_id"])
    return store, experiment_id


@pytest.fixture(scope="session")
def smoke3_store(tmp_path_factory):
    """The ``smoke`` preset with 3 seeds (6 runs): enough runs per family for PERMDISP."""
    from akp.experiment import load_preset
    from akp.runner import execute_run
    from akp.store import RunStore

    store = RunStore(tmp_path_factory.mktemp("smoke3-store"))
    experiment_id = store.create_experiment(load_preset("smoke").with_overrides(seeds=3))
    for run in store.runs(experiment_id):
        execute_run(store, run["run_id"])
    return store, experiment_id


@pytest.fixture(scope="session")
def smoke6_store(tmp_path_factory):
    """The ``smoke`` preset with 6 seeds (12 runs): enough runs per family for a verdict (6 each)."""
    from akp.experiment import load_preset
    from akp.runner import execute_run
    from akp.store import RunStore

    store = RunStore(tmp_path_factory.mktemp("smoke6-store"))
    experiment_id = store.create_experiment(load_preset("smoke").with_overrides(seeds=6))
    for run in store.runs(experiment_id):
        execute_run(store, run["run_id"])
    return store, experiment_id
