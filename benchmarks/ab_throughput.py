"""A/B pair throughput vs a single run, through the app's real job backend (gan_core.live).

    python benchmarks/ab_throughput.py                          # ring8 and mnist-dcgan, 10 s windows, 5 rounds
    python benchmarks/ab_throughput.py --presets ring8 --seconds 5 --rounds 3

For each preset, in one process, rounds alternate (single first, then pair first, ...): a single job
of the preset, then an A/B pair whose two sides are that same preset (so the pair's cost is the
pair itself, not a difference in the configs). Each is measured over a window of `--seconds` of wall
time once it trains, with its live view and metrics on, as in the app: steps/s of the single run, of
side A and of side B. The table shows the medians, and each side's share of the single run's speed
(a fair pair gives each side about half: one slot, one thread, one step each in turn). Training uses
1 torch thread ($GAN_TORCH_THREADS=1), what the app's jobs use on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GAN_TORCH_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from throughput import OtherLoad, machine_line  # noqa: E402 - benchmarks/throughput.py, next to this file

from gan_core import get_preset  # noqa: E402
from gan_core.live import JobManager, JobState  # noqa: E402


def wait_training(steps_of, job, timeout: float = 120.0) -> None:
    """Until the job (or pair) is running and has taken a few steps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.state == JobState.RUNNING and min(steps_of()) >= 5:
            return
        if not job.state.active:
            raise RuntimeError(f"the job ended: {job.view().message}")
        time.sleep(0.05)
    raise RuntimeError("the job did not start training in time")


def measure(steps_of, job, seconds: float) -> tuple[list[float], float]:
    """Steps/s of each counter over `seconds` of wall time, and the other processes' load meanwhile."""
    wait_training(steps_of, job)
    time.sleep(1.0)  # warm-up: first view and metrics passes
    with OtherLoad() as other:
        t0, s0 = time.monotonic(), steps_of()
        time.sleep(seconds)
        t1, s1 = time.monotonic(), steps_of()
    job.stop()
    return [(b - a) / (t1 - t0) for a, b in zip(s0, s1)], other.value


def single(manager: JobManager, preset: str, seconds: float) -> tuple[list[float], float]:
    job = manager.submit("bench", get_preset(preset).config(seconds=0.0, steps=0), preset=preset)
    return measure(lambda: [job.view().step], job, seconds)


def pair(manager: JobManager, preset: str, seconds: float) -> tuple[list[float], float]:
    config = get_preset(preset).config(seconds=0.0, steps=0)
    job = manager.submit_pair("bench", config, config, preset_a=preset, preset_b=preset)
    return measure(lambda: [job.a.view().step, job.b.view().step], job, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["ring8", "mnist-dcgan"])
    parser.add_argument("--seconds", type=float, default=10.0, help="measuring window of each run (wall time)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{machine_line()}; the jobs train with {os.environ['GAN_TORCH_THREADS']} torch thread(s)")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        manager = JobManager(max_jobs=1, root=Path(root))
        try:
            for preset in args.presets:
                rates: dict[str, list[float]] = {"single": [], "A": [], "B": []}
                loads = []
                for r in range(args.rounds):
                    order = [single, pair] if r % 2 == 0 else [pair, single]
                    for run in order:
                        values, load = run(manager, preset, args.seconds)
                        loads.append(load)
                        for name, value in zip(["single"] if run is single else ["A", "B"], values):
                            rates[name].append(value)
                    print(f"  {preset} round {r + 1}: single {rates['single'][-1]:.1f}, A {rates['A'][-1]:.1f}, "
                          f"B {rates['B'][-1]:.1f} steps/s (other load {max(loads[-2:]):.2f} cores)", flush=True)
                rows.append((preset, {k: statistics.median(v) for k, v in rates.items()}, max(loads)))
        finally:
            manager.shutdown()
    print(f"\nmedians of {args.rounds} rounds, {args.seconds:g} s windows, live view and metrics on")
    print("| preset | single run, steps/s | pair side A, steps/s | pair side B, steps/s | each side vs single | "
          "pair total vs single | other load (cores, max) |")
    print("|---|---|---|---|---|---|---|")
    for preset, m, load in rows:
        print(f"| {preset} | {m['single']:,.1f} | {m['A']:,.1f} | {m['B']:,.1f} | "
              f"{m['A'] / m['single']:.0%} / {m['B'] / m['single']:.0%} | {(m['A'] + m['B']) / m['single']:.0%} | {load:.2f} |")


if __name__ == "__main__":
    main()
