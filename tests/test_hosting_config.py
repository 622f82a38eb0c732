"""The shipped .streamlit/config.toml: the settings a shared instance needs, and caps that match the code."""
from __future__ import annotations

import tomllib
from pathlib import Path

from akp.datasets.uploads import MAX_UPLOAD_MB

CONFIG = Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml"


def test_config_hides_errors_deploy_and_statistics():
    cfg = tomllib.loads(CONFIG.read_text())
    assert cfg["client"]["showErrorDetails"] == "none"
    assert cfg["client"]["toolbarMode"] == "viewer"
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["server"]["fileWatcherType"] == "none"


def test_upload_cap_of_the_config_matches_the_code():
    assert tomllib.loads(CONFIG.read_text())["server"]["maxUploadSize"] == MAX_UPLOAD_MB


def test_streamlit_accepts_every_value():
    import streamlit.config as config

    cfg = tomllib.loads(CONFIG.read_text())
    for section, values in cfg.items():
        for key in values:
            assert f"{section}.{key}" in config._config_options_template
