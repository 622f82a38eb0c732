"""Shared fixtures of the browser tests: Chromium, and a server over a store with two trained experiments."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.server import ServerError, chromium, streamlit_server, train_experiments


def missing(reason: str) -> None:
    """Skip, or fail under ``AKP_REQUIRE_BROWSER=1`` (CI), when the browser cannot run."""
    if os.environ.get("AKP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}, and AKP_REQUIRE_BROWSER=1 requires the browser tests")
    pytest.skip(reason)


@dataclass
class TrainedApp:
    """A running app over a store holding two finished experiments."""

    url: str
    alpha: str  # the smoke preset (fewer images): steady and sigmoid-shock, 2 seeds, 2 epochs
    beta: str   # steady only, a lower learning rate


def two_experiment_specs() -> list:
    """The specs the trained store holds: ``alpha`` (the smoke preset on 640 training images) and ``beta``
    (the same, steady only, lr 0.003)."""
    from akp.experiment import load_preset

    specs = []
    for name in ("alpha", "beta"):
        spec = load_preset("smoke")
        spec.name = name
        spec.dataset_options = {**spec.dataset_options, "n_train": 640}  # half the preset's: a faster fixture
        specs.append(spec)
    alpha, beta = specs
    beta.lr = 0.003
    beta.conditions = beta.conditions[:1]
    for spec in specs:
        spec.validate()
    return specs


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator:
    """Debian's Chromium through Playwright, shared by the session's browser tests."""
    try:
        with chromium() as browser:
            yield browser
    except (FileNotFoundError, ImportError) as exc:
        missing(str(exc))


@pytest.fixture(scope="session")
def trained_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedApp]:
    """``streamlit run app.py`` over a temporary store with the two experiments of :func:`two_experiment_specs`."""
    home = tmp_path_factory.mktemp("e2e-trained")
    alpha, beta = train_experiments(home, two_experiment_specs())
    try:
        with streamlit_server(home, tmp_path_factory.mktemp("e2e-trained-log") / "streamlit.log") as url:
            yield TrainedApp(url=url, alpha=alpha, beta=beta)
    except ServerError as exc:
        pytest.fail(str(exc))
