"""Fixtures shared by every test: isolated data and run folders."""

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Every test gets its own data cache and runs folder, so nothing touches ~/.cache or ./runs."""
    base = tmp_path_factory.mktemp("gan")
    monkeypatch.setenv("GAN_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("GAN_RUNS_DIR", str(base / "runs"))
    return base




@pytest.fixture
def manager(tmp_path):
    """A job manager with one training slot, first come first served, jobs in threads (the tests inject
    trainer factories) and quick live-view cadences; shut down (threads joined) after. The fair scheduler and
    the worker processes have their own tests (test_scheduler.py, test_worker.py)."""
    import threading

    from gan_core.live import JobManager

    m = JobManager(max_jobs=1, root=tmp_path / "runs", view_seconds=0.1, metrics_seconds=0.5, checkpoint_seconds=0.3,
                   scheduling="queue", workers="thread")
    yield m
    m.shutdown(timeout=30)
    assert not [t for t in threading.enumerate() if t.name.startswith("gan-job")], "a job thread outlived shutdown"


@pytest.fixture
def one_torch_thread():
    """Torch at one thread for the test (small models are fastest so, and the machine is shared); restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
