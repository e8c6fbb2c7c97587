"""Fixtures shared by every test: isolated data and run folders."""

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own data cache and runs folder, so nothing touches ~/.cache or ./runs."""
    base = tmp_path_factory.mktemp("gan")
    monkeypatch.setenv("GAN_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("GAN_RUNS_DIR", str(base / "runs"))
    return base


