"""A class on a Ray cluster: N simulated students start runs through the same job API the pages use
(JobManager with a Ray address: submit, view() polled about once a second as the page's fragment does,
touch), against a local simulated cluster (`ray.cluster_utils.Cluster`, --nodes nodes of 1 CPU each).

Prints, per student: time to the first sample grid (or 2D picture), time queued for a CPU of the
cluster, the longest interval between two new pictures while training, steps per minute of training;
then the page latency (p50 / p95 of view() calls) and this server's RSS (the server keeps only views).

Ray binds its services to the machine's address, so this script runs itself inside a network namespace
that has only loopback (`unshare -n`, as root) when it is not in one already:

    .venv/bin/python benchmarks/ray_classroom.py --students 8 --seconds 20
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def rerun_in_namespace() -> int:
    script = 'ip link set lo up && exec "$0" "$@"'
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.call(["unshare", "-n", "sh", "-c", script, sys.executable, *sys.argv], env=env)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Student:
    """One simulated student's tab: starts a run at `delay`, polls its view once a second until it ends."""

    def __init__(self, index: int, delay: float):
        self.index, self.delay = index, delay
        self.pressed = self.first_grid = self.queued_seconds = None
        self.longest_gap = 0.0
        self.latencies: list[float] = []
        self.steps = 0
        self.train_seconds = 0.0
        self.node = ""
        self.end = ""

    def run(self, manager, config, preset: str) -> None:
        time.sleep(self.delay)
        self.pressed = time.monotonic()
        job = manager.submit(f"student-{self.index}", config, preset=preset)
        queued_since, last_picture, last_step = None, None, -1
        while True:
            started = time.monotonic()
            view = job.view()
            job.touch()
            now = time.monotonic()
            self.latencies.append(now - started)
            if view.state.value == "queued":
                queued_since = queued_since or now
            elif queued_since is not None and self.queued_seconds is None:
                self.queued_seconds = now - queued_since
            if view.latest is not None and view.latest_step != last_step:
                if self.first_grid is None:
                    self.first_grid = now - self.pressed
                elif view.state.value == "running" and last_picture is not None:
                    self.longest_gap = max(self.longest_gap, now - last_picture)
                last_picture, last_step = now, view.latest_step
            if not view.active:
                self.steps, self.train_seconds, self.end = view.step, view.train_seconds, view.message
                self.node = getattr(job, "node", {}).get("address", "") + " " + getattr(job, "node", {}).get("node", "")[:8]
                return
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--window", type=float, default=10.0, help="students press Start within this many seconds")
    parser.add_argument("--preset", default="ring8")
    parser.add_argument("--seconds", type=float, default=20.0, help="each run's training budget")
    parser.add_argument("--nodes", type=int, default=2, help="simulated nodes, 1 CPU each")
    args = parser.parse_args()
    if not loopback_only():
        return rerun_in_namespace()

    import ray
    from ray.cluster_utils import Cluster

    from gan_core import get_preset
    from gan_core.cluster import connect
    from gan_core.live import JobManager
    from throughput import machine_line

    print(machine_line())
    t0 = time.monotonic()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    connect(cluster.address)
    print(f"simulated cluster of {args.nodes} nodes x 1 CPU up in {time.monotonic() - t0:.1f} s; "
          f"{args.students} students start {args.preset} ({args.seconds:g} s budget) within {args.window:g} s")
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"ray-classroom-{os.getpid()}"
    manager = JobManager(root=root, ray_address=cluster.address, session_timeout=600)
    config = get_preset(args.preset).config(seconds=args.seconds, steps=0)
    rss_before = rss_mb()
    students = [Student(i, args.window * i / max(1, args.students - 1)) for i in range(args.students)]
    peak = [rss_before]

    def watch_rss() -> None:
        while any(t.is_alive() for t in threads):
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.5)

    threads = [threading.Thread(target=s.run, args=(manager, config, args.preset), daemon=True) for s in students]
    for t in threads:
        t.start()
    watcher = threading.Thread(target=watch_rss, daemon=True)
    watcher.start()
    for t in threads:
        t.join()
    manager.shutdown(timeout=60)
    ray.shutdown()
    cluster.shutdown()

    print("\n| student | node | first grid (s) | queued (s) | longest refresh gap (s) | steps/min | end |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in students:
        per_min = 60 * s.steps / s.train_seconds if s.train_seconds else 0.0
        print(f"| {s.index} | {s.node} | {s.first_grid or float('nan'):.1f} | {s.queued_seconds or 0.0:.1f} | "
              f"{s.longest_gap:.1f} | {per_min:,.0f} | {s.end} |")
    latencies = sorted(x for s in students for x in s.latencies)
    firsts = [s.first_grid for s in students if s.first_grid is not None]
    queued = [s.queued_seconds or 0.0 for s in students]
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"\nfirst grid: median {statistics.median(firsts):.1f} s, max {max(firsts):.1f} s; queued: median "
          f"{statistics.median(queued):.1f} s, max {max(queued):.1f} s; longest refresh gap "
          f"{max(s.longest_gap for s in students):.1f} s")
    print(f"page latency (view()): p50 {statistics.median(latencies) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms over "
          f"{len(latencies)} polls; server RSS {rss_before:.0f} MB before, peak {peak[0]:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
