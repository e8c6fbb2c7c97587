"""How long an ONNX export takes: the bundled pretrained mnist-dcgan generator by default.

    python benchmarks/export_onnx.py                  # 7 in-process exports + 3 CLI runs, 1 torch thread
    python benchmarks/export_onnx.py --run runs/mnist --repeats 11 --cli-repeats 0

Prints the machine, then: the first export in a fresh process (it imports the exporter: what the app's
first ONNX click costs), the median / min / max of the repeated in-process exports (later clicks on other
runs) in wall and CPU seconds (the CPU time barely moves with the machine's other load), the median wall
time of `python -m gan_core export RUN --format onnx --out X.onnx` (what a CLI user waits, Python
start-up and imports included), the file size, and the largest |ONNX - PyTorch| difference over a
batch of 64 in onnxruntime (a check that what was timed is right).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gan_core.export import export_run  # noqa: E402
from gan_core.generator import load_generator  # noqa: E402
from throughput import machine_line  # noqa: E402


def timed_export(run: Path) -> tuple[float, float, bytes]:
    """Wall and CPU seconds of one export_run (load the generator, trace, convert, serialise), and the model.
    The CPU time (this process, 1 torch thread) is what the export costs whatever else the machine runs."""
    wall, cpu = time.perf_counter(), time.process_time()
    model = export_run(run).model
    return time.perf_counter() - wall, time.process_time() - cpu, model


def cli_seconds(run: Path, threads: int) -> float:
    """Wall time of one `python -m gan_core export --format onnx` in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gan_core", "export", str(run), "--format", "onnx", "--out", f"{tmp}/g.onnx"],
                       check=True, capture_output=True, env=env)
        return time.perf_counter() - start


def max_difference(run: Path, model: bytes) -> float:
    """Largest |ONNX - PyTorch| over 64 samples (onnxruntime on the CPU)."""
    import onnxruntime as ort

    generator = load_generator(run, device="cpu")
    z = torch.randn(64, generator.config.z_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(64) % generator.num_classes if generator.num_classes else None
    feeds = {"z": z.numpy()} | ({"label": labels.numpy()} if labels is not None else {})
    got = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return float(abs(got - generator.sample(z=z, labels=labels).numpy()).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=REPO / "assets" / "pretrained" / "mnist-dcgan", help="run folder to export")
    parser.add_argument("--repeats", type=int, default=7, help="in-process exports after the first (median reported)")
    parser.add_argument("--cli-repeats", type=int, default=3, help="fresh-process CLI exports (median reported); 0 skips")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: what the app's server uses per job on 2 cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Machine: {machine_line()}")
    print(f"Run: {args.run}")
    first_wall, first_cpu, model = timed_export(args.run)
    walls, cpus = zip(*(timed_export(args.run)[:2] for _ in range(args.repeats)))
    print(f"first export in this process (imports the exporter): {first_wall:.2f} s wall, {first_cpu:.2f} s CPU")
    for what, values in (("wall", walls), ("CPU", cpus)):
        print(f"in-process export, {what} time, median of {len(values)}: {statistics.median(values):.2f} s "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    if args.cli_repeats > 0:
        cli = [cli_seconds(args.run, args.threads) for _ in range(args.cli_repeats)]
        print(f"CLI `export --format onnx`, fresh process, median of {len(cli)}: {statistics.median(cli):.2f} s "
              f"(min {min(cli):.2f}, max {max(cli):.2f})")
    print(f"model: {len(model) / 1e3:,.0f} kB; max |ONNX - PyTorch| over 64 samples: {max_difference(args.run, model):.1e}")


if __name__ == "__main__":
    main()
