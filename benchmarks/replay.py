"""Replay rendering time: how long the Runs / Train page waits for a run's replay (read and check
timeline.safetensors, sample the fixed noise with every snapshot, draw the labelled frames, encode the GIF),
and, apart, encoding the same frames as the MP4 download (with PyAV installed).

    python benchmarks/replay.py                          # mnist-cdcgan, mnist-dcgan, mnist-mlp, ring8 at full size
    python benchmarks/replay.py --runs runs/mnist        # saved runs instead
    python benchmarks/replay.py --repeats 9

Each preset is first trained for --steps steps through RunWriter (the path the CLI and the app use),
which leaves the full 16 snapshots; that training is not timed. Prints the median and the range of
--repeats renderings (CPU seconds of this process, and the wall-clock median), the frames, the
timeline's and the GIF's sizes, the machine and its load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gan_core import get_preset  # noqa: E402
from gan_core.replay import mp4_available, replay_frames, replay_gif, replay_mp4  # noqa: E402
from gan_core.runner import RunWriter  # noqa: E402
from gan_core.timeline import TIMELINE_FILE  # noqa: E402
from gan_core.trainer import Trainer  # noqa: E402
from quality import machine  # noqa: E402

PRESETS = ("mnist-cdcgan", "mnist-dcgan", "mnist-mlp", "ring8")


def train_run(preset: str, folder: Path, steps: int) -> Path:
    """A run of `preset` trained `steps` steps through RunWriter (so with its timeline)."""
    trainer = Trainer(get_preset(preset).config(seed=0))
    writer = RunWriter(trainer, folder, checkpoint_seconds=0)
    for _ in range(steps):
        writer.record(trainer.step())
    writer.checkpoint({"status": "finished"})
    writer.close()
    return folder


def time_replay(run: Path, repeats: int) -> dict:
    """Median and range of rendering the replay of `run` (frames, then GIF) over `repeats` runs, in wall-clock
    seconds and in CPU seconds of this process (with 1 thread the two agree on an idle machine; on a
    shared, loaded one the CPU seconds are the cost and the wall clock includes waiting for a core)."""
    wall, cpu, frames_cpu, mp4_cpu, mp4_bytes = [], [], [], [], 0
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        frames = replay_frames(run)
        drawn_cpu = time.process_time()
        data = replay_gif(frames)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        frames_cpu.append(drawn_cpu - started_cpu)
        if mp4_available():  # the MP4 is encoded from the same frames, only when the user asks for it
            encode_started = time.process_time()
            mp4_bytes = len(replay_mp4(frames))
            mp4_cpu.append(time.process_time() - encode_started)
    return {"frames": len(frames), "cpu": statistics.median(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu),
            "wall": statistics.median(wall), "frames_cpu": statistics.median(frames_cpu),
            "gif_cpu": statistics.median(c - f for c, f in zip(cpu, frames_cpu)),
            "timeline_mb": (run / TIMELINE_FILE).stat().st_size / 1e6, "gif_mb": len(data) / 1e6,
            "mp4_cpu": statistics.median(mp4_cpu) if mp4_cpu else float("nan"), "mp4_mb": mp4_bytes / 1e6}


def report(run: Path, repeats: int) -> None:
    """Time the replay of `run` and print its table row."""
    r = time_replay(run, repeats)
    print(f"| {run.name} | {r['frames']} | {r['cpu']:.2f} | {r['cpu_min']:.2f}-{r['cpu_max']:.2f} | {r['wall']:.2f} | "
          f"{r['frames_cpu']:.2f} | {r['gif_cpu']:.2f} | {r['timeline_mb']:.1f} | {r['gif_mb']:.2f} | "
          f"{r['mp4_cpu']:.2f} | {r['mp4_mb']:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="*", type=Path, help="saved run folders (default: train the presets)")
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--steps", type=int, default=300, help="training steps per preset (300 leave 16 snapshots)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's jobs use 1 on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| run | frames | replay CPU s (median) | range | wall s (median) | frames CPU s | GIF CPU s | timeline MB | GIF MB | MP4 CPU s | MP4 MB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.runs:
            for run in args.runs:
                report(run, args.repeats)
        else:
            for preset in args.presets:
                report(train_run(preset, Path(tmp) / preset, args.steps), args.repeats)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{args.repeats} renderings each; machine: {machine()}; load average {load} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
