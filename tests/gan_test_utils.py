"""Test helpers: paths to the real data in ../shared, MNIST-format files, tiny image data."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """Write uint8 images (N, H, W) in MNIST's gzipped IDX format (magic 2051)."""
    n, h, w = images.shape
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """Write uint8 labels (N,) in MNIST's gzipped IDX format (magic 2049)."""
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def make_fake_mnist_raw(root: Path, folder: str, n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Build ROOT/FOLDER/raw/train-*.gz like torchvision's download leaves them; returns (images, labels)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    write_idx_images(raw / "train-images-idx3-ubyte.gz", images)
    write_idx_labels(raw / "train-labels-idx1-ubyte.gz", labels)
    write_idx_images(raw / "t10k-images-idx3-ubyte.gz", images[:10])
    write_idx_labels(raw / "t10k-labels-idx1-ubyte.gz", labels[:10])
    return images, labels


def random_image_data(shape=(1, 28, 28), n=256, classes=10, seed=0):
    """An ImageData of random uint8 images (a stand-in for datasets that must be downloaded)."""
    from gan_core.data import ImageData

    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, classes, (n,), generator=gen)
    return ImageData("random", images, labels, tuple(str(i) for i in range(classes)), torch.device("cpu"))


def wait_until(predicate, timeout: float = 20.0, every: float = 0.02) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds pass; True if it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


TINY_TOY = dict(g_width=16, d_width=16, batch_size=32, z_dim=4)


def tiny(preset: str = "ring8", **changes):
    """A small, fast config of a preset."""
    from gan_core import get_preset

    extra = TINY_TOY if preset.startswith("ring8") else dict(g_width=8, d_width=8, batch_size=16)
    return get_preset(preset).config(**{**extra, **changes})
