"""Does watching slow training? In-app steps/s with a real browser attached against the CLI's, same preset,
same machine, measured the same way for both: the growth of the run's metrics.csv (one line per step,
flushed every second) over a window of wall time after a warm-up.

    python benchmarks/watching.py                       # ring8 and mnist-dcgan, 3 rounds
    python benchmarks/watching.py --presets ring8 --rounds 2 --window 20

Each round, alternating so that the machine's other load hits all of them alike:
  cli        `python -m gan_core train --preset P` (no browser)
  app        `streamlit run playground.py`, one Chromium tab (Playwright) presses Start and watches
  +watching  the same, plus a second tab of the same session watching the same run
  +queued    the same, plus a tab of another session whose run waits in the queue (GAN_MAX_ADMITTED=1)
Prints the medians, the ratios app / cli and each extra tab's cost, and the CPU seconds per second of the
Streamlit process and of the worker during the window. Targets (issue 9): app >= 0.9x cli, an extra tab
costs a running job <= 5%.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STEP_METRIC = "[data-testid=stMetric]:has-text('Step') [data-testid=stMetricValue]"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    """All descendants of a process."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split("\n")
    tree: dict[int, list[int]] = {}
    for line in out:
        if line.strip():
            p, pp = map(int, line.split())
            tree.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for c in tree.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def browser_cpu_seconds() -> float:
    """CPU seconds of this script's descendants that are not the app server's (Playwright and Chromium)."""
    return sum(cpu_seconds(p) for p in children(os.getpid()) if "chrom" in _comm(p) or "node" in _comm(p))


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip().lower()
    except OSError:
        return ""


def rate_of(csv: Path, warmup: float, window: float,
            server: Optional[int] = None) -> tuple[float, float, float, float]:
    """Steps/s over `window` s after `warmup` s (metrics.csv growth); CPU/s of the server, of its workers and
    of the browser (Chromium and Playwright's driver, which run on the same machine here)."""
    time.sleep(warmup)
    n0, t0 = lines(csv), time.monotonic()
    s0 = cpu_seconds(server) if server else 0.0
    w0 = {p: cpu_seconds(p) for p in children(server)} if server else {}
    b0 = browser_cpu_seconds() if server else 0.0
    time.sleep(window)
    n1, t1 = lines(csv), time.monotonic()
    s1 = cpu_seconds(server) if server else 0.0
    w1 = sum(cpu_seconds(p) - w0.get(p, 0.0) for p in children(server)) if server else 0.0
    b1 = browser_cpu_seconds() if server else 0.0
    span = t1 - t0
    return (n1 - n0) / span, (s1 - s0) / span, w1 / span, (b1 - b0) / span


def cli_rate(preset: str, out: Path, warmup: float, window: float) -> float:
    proc = subprocess.Popen([sys.executable, "-m", "gan_core", "train", "--preset", preset, "--seconds",
                             str(int(warmup + window + 30)), "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while lines(out / "metrics.csv") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        return rate_of(out / "metrics.csv", warmup, window)[0]
    finally:
        proc.terminate()
        proc.wait(60)


def newest_run(runs: Path, before: set[str]) -> Path:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [p for p in runs.iterdir() if p.is_dir() and p.name not in before and (p / "metrics.csv").exists()]
        if new:
            return new[0]
        time.sleep(0.2)
    raise RuntimeError("the app's run folder did not appear")


class App:
    """The Streamlit server and a headless Chromium."""

    def __init__(self, base: Path):
        self.runs = base / "runs"
        port = self._free_port()
        env = {**os.environ, "GAN_RUNS_DIR": str(self.runs), "GAN_DATA_DIR": str(base / "data"),
               "GAN_MAX_ADMITTED": "1", "GAN_SESSION_TIMEOUT": "60"}
        self.log = open(base / "streamlit.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "playground.py"), "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((base / "streamlit.log").read_text()[-2000:])
            time.sleep(0.3)
        from playwright.sync_api import sync_playwright

        self._pw = sync_playwright().start()
        chromium = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
        self.browser = self._pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def start(self, context, preset: str):
        page = context.new_page()
        page.goto(f"{self.url}/train?preset={preset}", timeout=120_000)
        page.get_by_role("button", name="Start", exact=True).click(timeout=120_000)
        return page

    def measure(self, preset: str, extra: str, warmup: float, window: float) -> tuple[float, float, float, float]:
        before = {p.name for p in self.runs.iterdir()} if self.runs.exists() else set()
        context = self.browser.new_context(viewport={"width": 1400, "height": 1000})
        other = None
        try:
            page = self.start(context, preset)
            page.locator(STEP_METRIC).first.wait_for(timeout=120_000)
            run = newest_run(self.runs, before)
            if extra == "watching":
                second = context.new_page()  # same cookie: the same session, watching the same run
                second.goto(f"{self.url}/train", timeout=120_000)
                second.locator(STEP_METRIC).first.wait_for(timeout=120_000)
            elif extra == "queued":
                other = self.browser.new_context(viewport={"width": 1400, "height": 1000})
                queued = self.start(other, preset)
                queued.get_by_text("Queued, position 1").wait_for(timeout=120_000)
            result = rate_of(run / "metrics.csv", warmup, window, self.proc.pid)
            if other is not None:
                queued.get_by_role("button", name="Stop").first.click()
                queued.get_by_text("stopped before it started").first.wait_for(timeout=60_000)
            page.get_by_role("button", name="Stop").first.click()
            page.get_by_text("Saved as").first.wait_for(timeout=120_000)
            return result
        finally:
            if other is not None:
                other.close()
            context.close()

    def close(self) -> None:
        self.browser.close()
        self._pw.stop()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="ring8,mnist-dcgan")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--only", default="cli,app,+watching,+queued", help="the conditions to run (comma-separated)")
    args = parser.parse_args()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average before: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        app = App(Path(tmp))
        try:
            for preset in args.presets.split(","):
                results: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in ("cli", "app", "+watching", "+queued")}
                for r in range(args.rounds):
                    runs: dict[str, Callable[[], tuple[float, float, float, float]]] = {
                        "cli": lambda: (cli_rate(preset, Path(tmp) / f"cli-{preset}-{r}", args.warmup, args.window),
                                        0.0, 0.0, 0.0),
                        "app": lambda: app.measure(preset, "", args.warmup, args.window),
                        "+watching": lambda: app.measure(preset, "watching", args.warmup, args.window),
                        "+queued": lambda: app.measure(preset, "queued", args.warmup, args.window),
                    }
                    for name, run in [(n, f) for n, f in runs.items() if n in args.only.split(",")]:
                        results[name].append(run())
                        steps, server, workers, browser = results[name][-1]
                        print(f"{preset} round {r + 1} {name}: {steps:.1f} steps/s (server {server:.2f} CPU/s, "
                              f"workers {workers:.2f}, browser {browser:.2f})", flush=True)
                results = {k: v for k, v in results.items() if v}
                med = {k: statistics.median(v[0] for v in vals) for k, vals in results.items()}
                cli = med.get("cli", float("nan"))
                print(f"\n| {preset} | steps/s (median of {args.rounds}) | x CLI | vs app alone | server CPU/s "
                      f"| worker CPU/s | browser CPU/s |")
                print("| --- | --- | --- | --- | --- | --- | --- |")
                for k, vals in results.items():
                    cost = f"{med[k] / med['app'] - 1:+.1%}" if k.startswith("+") and "app" in med else ""
                    cpu = " | ".join(f"{statistics.median(v[i] for v in vals):.2f}" if k != "cli" else ""
                                     for i in (1, 2, 3))
                    print(f"| {k} | {med[k]:.1f} | {med[k] / cli:.2f} | {cost} | {cpu} |")
                print(flush=True)
        finally:
            app.close()
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
