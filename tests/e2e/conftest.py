"""Real-browser fixtures: one Streamlit server for the session (own runs folder, one training slot)
and Debian's headless Chromium driven by Playwright. Skipped only when no Chromium is installed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_utils import CRASHES, assert_no_crash, new_app_page

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TEACHER_KEY = "e2e-teacher-key"  # the server has a teacher key, so its class view exists
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """Debian's Chromium (Playwright cannot download its own browser here)."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    port = free_port()
    env = {**os.environ, "GAN_RUNS_DIR": str(runs), "GAN_DATA_DIR": str(base / "data"), "GAN_MAX_JOBS": "1",
           "GAN_SESSION_TIMEOUT": "60", "GAN_METRICS_SECONDS": "3", "GAN_TEACHER_KEY": TEACHER_KEY}
    log = open(base / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "playground.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],  # a source edit during the tests must not reload the app under them
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start: {(base / 'streamlit.log').read_text()[-2000:]}")
        time.sleep(0.3)
    yield url, runs
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


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
