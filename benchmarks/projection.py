"""How fast and how close "draw a digit, find it in latent space" is: project real MNIST test digits
onto the bundled pretrained generators (gan_core.projection.project with its defaults) and print the
median time and final distance, with the machine named.

    python benchmarks/projection.py                    # 20 test digits, both pretrained generators
    python benchmarks/projection.py --digits 50 --threads 2

Digits come from the MNIST test split in ../shared/datasets/MNIST/raw (or --mnist-raw); without it,
from the bundled 5k training subset (the line says which).
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core.data import MNIST_5K_FILE  # noqa: E402
from gan_core.evaluator import load_evaluator  # noqa: E402
from gan_core.generator import load_generator  # noqa: E402
from gan_core.paths import ASSETS_DIR, PROJECT_ROOT  # noqa: E402
from gan_core.projection import RESTARTS, STEPS, project  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import cpu_model  # noqa: E402

DEFAULT_RAW = PROJECT_ROOT.parent / "shared" / "datasets" / "MNIST" / "raw"


def test_digits(raw: Path, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """The first n MNIST test digits (uint8 images, labels) and where they came from."""
    images, labels = raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz"
    if images.is_file() and labels.is_file():
        x = np.frombuffer(gzip.open(images).read(), np.uint8, offset=16).reshape(-1, 28, 28)
        y = np.frombuffer(gzip.open(labels).read(), np.uint8, offset=8)
        return x[:n], y[:n], f"the first {n} MNIST test digits"
    data = np.load(MNIST_5K_FILE)
    picks = np.random.default_rng(0).choice(len(data["labels"]), n, replace=False)
    return data["images"][picks], data["labels"][picks], f"{n} digits of the bundled 5k training subset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's server uses its default)")
    parser.add_argument("--mnist-raw", type=Path, default=DEFAULT_RAW)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels, source = test_digits(args.mnist_raw, args.digits)
    evaluator = load_evaluator("mnist")
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()}, {args.threads} torch thread(s)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {where}; load average {load:.1f} at the start; {platform.system()}, Python {platform.python_version()}, torch {torch.__version__}; "
          f"{STEPS} steps, {RESTARTS} restarts; {source}")
    print("| generator | median s | min s | max s | median CPU s | median distance | median pixel error | class right | classifier reads the projection as the digit |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for name in ("mnist-dcgan", "mnist-cdcgan"):
        generator = load_generator(ASSETS_DIR / "pretrained" / name, device=args.device)
        seconds, cpu, distances, pixels, right, reads = [], [], [], [], 0, 0
        for i, (image, label) in enumerate(zip(images, labels)):
            target = torch.from_numpy(image.astype(np.float32) / 127.5 - 1).unsqueeze(0)
            started, cpu_started = time.perf_counter(), time.process_time()
            found = project(generator, target, seed=i)
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - cpu_started)  # what the projection costs a busy machine's cores
            distances.append(found.distance)
            pixels.append(found.pixel_error)
            right += found.label == int(label)
            with torch.no_grad():
                reads += int(evaluator(found.image.unsqueeze(0)).argmax()) == int(label)
        n = len(seconds)
        klass = f"{right}/{n}" if generator.num_classes else "n/a"
        print(f"| {name} | {statistics.median(seconds):.2f} | {min(seconds):.2f} | {max(seconds):.2f} | {statistics.median(cpu):.2f} | "
              f"{statistics.median(distances):.3f} | {statistics.median(pixels):.1%} | {klass} | {reads}/{n} |", flush=True)


if __name__ == "__main__":
    main()
