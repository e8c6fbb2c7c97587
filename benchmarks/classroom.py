"""A classroom on one server: N students press Start within a window and watch their runs, through the same
job API the pages use (no browser). Prints, per student and in total: time to the first sample grid of a
trained step, the view's refresh interval, steps per minute, the wait in the queue, the page latency (one
`view()` plus the work the Train page does with it: the loss and verdict figures and decoding the grid, or
the 2D lab figure), and the memory of the server (this process) and of the worker processes.

    python benchmarks/classroom.py                              # 20 students, mnist-dcgan then ring8
    python benchmarks/classroom.py --students 5 --window 10 --watch 60 --presets ring8

The job backend is one small class (`LocalBackend`: the embedded JobManager with worker processes); another
backend (a cluster) only has to offer the same five methods. Targets (issue 9): first grid <= 30 s for
every student, refresh <= 5 s, page latency p95 < 2 s, no queue wait > 2 min; the RSS bound is printed.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from gan_core import get_preset  # noqa: E402
from gan_core.app import charts  # noqa: E402  (plotly only, no Streamlit: the figures a page builds)
from gan_core.live import JobManager, JobState  # noqa: E402
from gan_core.live.verdict import score_scale  # noqa: E402

PAGE_POLL_SECONDS = 1.0  # faster than the Train page polls (dashboard.POLL_SECONDS, 2 s): a harder load


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MB (PSS shares the pages it shares with others; 0, 0 if it is gone)."""
    try:
        rss = pss = 0.0
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) / 1024
        return rss, pss
    except OSError:
        return 0.0, 0.0


class LocalBackend:
    """The app's embedded job backend: one JobManager, each run in a worker process."""

    name = "local"

    def __init__(self, root: Path):
        self.manager = JobManager(root=root)

    def submit(self, session: str, preset: str) -> Any:
        """Start `preset` for `session` as the Train page's Start button does."""
        return self.manager.submit(session, get_preset(preset).config(), preset=preset)

    def touch(self, session: str) -> None:
        """The page's heartbeat."""
        self.manager.touch(session)

    def worker_pids(self) -> list[int]:
        """The worker processes alive now."""
        with self.manager._lock:
            jobs = list(self.manager._running)
        return [j.worker_pid for j in jobs if j.worker_pid]

    def describe(self) -> str:
        m = self.manager
        return f"{m.scheduling} mode, {m.max_jobs} slot(s), at most {m.max_admitted} admitted, quantum {m.quantum_seconds} s"

    def shutdown(self) -> None:
        self.manager.shutdown(timeout=60)


@dataclass
class Student:
    name: str
    start_at: float
    submitted: float = 0.0
    admitted: Optional[float] = None
    first_grid: Optional[float] = None
    refreshes: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    steps: list[tuple[float, int]] = field(default_factory=list)
    error: str = ""


def page_work(view: Any) -> None:
    """What the Train page does with one view: the charts and the picture."""
    charts.loss_figure(view.history)
    charts.scores_figure(view.history, score_scale(view.config["loss"]))
    if view.kind == "points" and view.lab is not None:
        charts.lab_figure(view.lab)
    elif isinstance(view.latest, bytes):
        Image.open(io.BytesIO(view.latest)).load()


def student(backend: LocalBackend, s: Student, preset: str, t0: float, end: float) -> None:
    time.sleep(max(0.0, t0 + s.start_at - time.monotonic()))
    s.submitted = time.monotonic()
    try:
        job = backend.submit(s.name, preset)
    except Exception as exc:  # a refused run is a result too
        s.error = f"{type(exc).__name__}: {exc}"
        return
    shown_step = None
    last_change = None
    while time.monotonic() < end:
        started = time.monotonic()
        backend.touch(s.name)
        view = job.view()
        page_work(view)
        now = time.monotonic()
        s.latencies.append(now - started)
        if s.admitted is None and view.state != JobState.QUEUED:
            s.admitted = now
        if view.state == JobState.RUNNING:
            s.steps.append((now, view.step))
        if view.latest is not None and view.latest_step > 0:
            if s.first_grid is None:
                s.first_grid = now
            if view.latest_step != shown_step:
                if last_change is not None:
                    s.refreshes.append(now - last_change)
                shown_step, last_change = view.latest_step, now
        if not view.state.active:
            s.error = view.message
            break
        time.sleep(max(0.0, PAGE_POLL_SECONDS - (time.monotonic() - started)))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run_class(preset: str, students: int, window: float, watch: float, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        backend = LocalBackend(Path(tmp))
        print(f"\n## {preset}: {students} students starting within {window:.0f} s, watched {watch:.0f} s after the last "
              f"start ({backend.describe()})", flush=True)
        people = [Student(f"student-{i:02d}", rng.uniform(0, window)) for i in range(students)]
        t0 = time.monotonic()
        end = t0 + window + watch
        threads = [threading.Thread(target=student, args=(backend, s, preset, t0, end), daemon=True) for s in people]
        for t in threads:
            t.start()
        server, workers = [], []
        while any(t.is_alive() for t in threads):
            server.append(rss_mb(os.getpid()))
            pids = backend.worker_pids()
            if pids:
                sizes = [rss_mb(p) for p in pids]
                workers.append((len(pids), max(r for r, _ in sizes), sum(p for _, p in sizes)))
            time.sleep(2.0)
        backend.shutdown()
    print("| student | queue wait s | first grid s | refresh p50 / max s | steps/min | page p50 / p95 ms | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in people:
        wait = (s.admitted - s.submitted) if s.admitted else float("nan")
        first = (s.first_grid - s.submitted) if s.first_grid else float("nan")
        rate = float("nan")
        if len(s.steps) >= 2:
            (ta, na), (tb, nb) = s.steps[0], s.steps[-1]
            rate = 60 * (nb - na) / max(tb - ta, 1e-9)
        print(f"| {s.name} | {wait:.1f} | {first:.1f} | {percentile(s.refreshes, 0.5):.1f} / "
              f"{max(s.refreshes, default=float('nan')):.1f} | {rate:,.0f} | {1000 * percentile(s.latencies, 0.5):.0f} / "
              f"{1000 * percentile(s.latencies, 0.95):.0f} | {s.error[:60]} |")
    firsts = [s.first_grid - s.submitted for s in people if s.first_grid]
    waits = [s.admitted - s.submitted for s in people if s.admitted]
    refresh = [r for s in people for r in s.refreshes]
    lat = [x for s in people for x in s.latencies]
    summary = {
        "students with a first grid": f"{len(firsts)}/{students}",
        "first grid s (max)": max(firsts, default=float("nan")),
        "refresh s (p50 / p95 / max)": (percentile(refresh, 0.5), percentile(refresh, 0.95), max(refresh, default=float("nan"))),
        "queue wait s (max)": max(waits, default=float("nan")),
        "page latency ms (p50 / p95)": (1000 * percentile(lat, 0.5), 1000 * percentile(lat, 0.95)),
        "server RSS MB (max)": max(r for r, _ in server),
        "workers (max alive, max RSS MB each, max total PSS MB)": (
            max((w[0] for w in workers), default=0), max((w[1] for w in workers), default=0.0),
            max((w[2] for w in workers), default=0.0)),
    }
    print()
    for key, value in summary.items():
        text = ", ".join(f"{v:.1f}" for v in value) if isinstance(value, tuple) else (
            f"{value:.1f}" if isinstance(value, float) else str(value))
        print(f"- {key}: {text}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--window", type=float, default=30.0, help="seconds within which every student presses Start")
    parser.add_argument("--watch", type=float, default=90.0, help="seconds every page keeps watching after the last start")
    parser.add_argument("--presets", default="mnist-dcgan,ring8")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; load average before: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for preset in args.presets.split(","):
        run_class(preset.strip(), args.students, args.window, args.watch, args.seed)
    print(f"\nload average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
