"""Helpers shared by the browser tests, their fixtures and the browser benchmarks: the app server, Debian's
Chromium, and pages that record JavaScript crashes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

CRASHES: dict = {}  # page -> its uncaught JavaScript errors


def new_app_page(context):
    """A page that records uncaught JavaScript errors: a Streamlit front-end crash leaves a blank page,
    and `assert_no_crash` then names the error instead of a test timing out on a missing element."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    CRASHES[page] = errors
    return page


def assert_no_crash(page) -> None:
    """Fail if the page's JavaScript raised an uncaught error."""
    errors = CRASHES.get(page, [])
    assert not errors, f"the app crashed in the browser: {errors}"


def chromium_path() -> str | None:
    """Debian's Chromium (Playwright cannot download its own browser here)."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app_server(env: dict[str, str], log_path: Path, timeout: float = 90.0) -> tuple[subprocess.Popen, str]:
    """`streamlit run playground.py` on a free loopback port with `env` added to this process's environment;
    returns (the process, its URL) once it answers its health check. Raises RuntimeError with the log's tail
    when it does not start."""
    port = free_port()
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(REPO / "playground.py"), "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],  # a source edit during the tests must not reload the app under them
        cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child keeps its own handle
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"streamlit did not start: {Path(log_path).read_text()[-2000:]}")
        time.sleep(0.3)


def stop_app_server(proc: subprocess.Popen) -> None:
    """Terminate the server (kill it if it does not end within 20 s)."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
