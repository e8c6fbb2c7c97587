"""Real-browser fixtures: one Streamlit server for the session (own runs folder, one training slot)
and Debian's headless Chromium driven by Playwright. Skipped only when no Chromium is installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_utils import (CHROMIUM_ARGS, CRASHES, assert_no_crash, chromium_path, new_app_page, start_app_server,
                           stop_app_server)

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TEACHER_KEY = "e2e-teacher-key"  # the server has a teacher key, so its class view exists


def make_tiny_runs(folder: Path) -> None:
    """Two small saved runs (plain and conditional DCGAN) for the explorer pages, made in-process through
    RunWriter, as the CLI and the app make theirs (checkpoint, metrics.csv, samples, timeline)."""
    from gan_core import get_preset
    from gan_core.runner import RunWriter
    from gan_core.trainer import Trainer

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small models: one thread is fastest, and the machine is shared
    for preset in ("mnist-dcgan", "mnist-cdcgan"):
        trainer = Trainer(get_preset(preset).config(g_width=16, d_width=16, batch_size=16))
        writer = RunWriter(trainer, folder / f"e2e-{preset}", checkpoint_seconds=0)
        for _ in range(8):
            writer.record(trainer.step())
        writer.checkpoint({"owner": "", "name": f"e2e-{preset}", "status": "finished"})
        writer.close()
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def app_url(app_server):
    """The URL of the app under test."""
    return app_server[0]


@pytest.fixture(scope="session")
def app_runs_dir(app_server):
    """The runs folder of the app under test (what a student could download from it)."""
    return app_server[1]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """Start `streamlit run playground.py` on a free port; yield (its URL, its runs folder); stop it afterwards."""
    if chromium_path() is None:
        pytest.skip("no Chromium found (/usr/bin/chromium or chromium on PATH): install Debian's chromium to run the browser tests")
    base = tmp_path_factory.mktemp("e2e")
    runs = base / "runs"
    make_tiny_runs(runs)
    env = {"GAN_RUNS_DIR": str(runs), "GAN_DATA_DIR": str(base / "data"), "GAN_MAX_JOBS": "1", "GAN_MAX_ADMITTED": "1",
           "GAN_SESSION_TIMEOUT": "60", "GAN_METRICS_SECONDS": "3", "GAN_TEACHER_KEY": TEACHER_KEY}
    try:
        proc, url = start_app_server(env, base / "streamlit.log")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield url, runs
    stop_app_server(proc)


@pytest.fixture(scope="session")
def browser(app_url):
    """Headless Chromium for the session."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context (a new app session) and page; fails if the app crashed in it."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = new_app_page(context)
    yield page
    context.close()
    assert_no_crash(page)
    CRASHES.pop(page, None)


@pytest.fixture(scope="session")
def screenshots():
    """The folder for review screenshots (git-ignored); its path is printed."""
    SCREENSHOTS.mkdir(exist_ok=True)
    print(f"\nscreenshots: {SCREENSHOTS}")
    return SCREENSHOTS
