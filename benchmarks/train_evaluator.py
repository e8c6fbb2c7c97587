"""Train the evaluator CNN behind gan_core.metrics and write its assets.

    python benchmarks/train_evaluator.py --dataset mnist --seed 0

MNIST: trains on the bundled assets/mnist_train_5k.npz (with small random shifts, rotations and
scalings), measures accuracy on the real MNIST test split and stores the mean and covariance of
the evaluator's features on that split. The test split is read from --data-dir (default
../shared/datasets next to the repo if present, else the engine's download folder), as
torchvision's raw IDX files (MNIST/raw/t10k-*-ubyte[.gz]).

Fashion-MNIST and CIFAR-10: trains on the torchvision train split found in --data-dir (add
--download to let torchvision fetch it) and also stores FCD floors for n = 1000 and 5000.

Writes assets/<dataset>_evaluator.safetensors and assets/<dataset>_test_stats.safetensors and
records the command, seed, checksums and accuracy in a section of assets/README.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gan_core import metrics  # noqa: E402
from gan_core.paths import ASSETS_DIR, data_cache_dir  # noqa: E402

SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
DATASETS = ("mnist", "fashion-mnist", "cifar10")
FLOOR_NS = (1_000, 5_000)


class DataMissing(Exception):
    """The data needed for training or testing is not on disk."""


# ---------------------------------------------------------------------------------------------
# Data


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not, as a uint8 array."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(shape):
        raise ValueError(f"{path} is truncated: expected {math.prod(shape)} values, found {data.size}")
    return data.reshape(shape).copy()  # frombuffer views are read-only


def find_idx(folder: Path, stem: str) -> Path | None:
    """The IDX file `stem` in `folder`, plain or gzipped, if present."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def mnist_test_split(data_dir: Path) -> tuple[Tensor, Tensor]:
    """The 10,000-image MNIST test split as ([-1, 1] images (N, 1, 28, 28), labels) from raw IDX files."""
    raw = data_dir / "MNIST" / "raw"
    images, labels = find_idx(raw, "t10k-images-idx3-ubyte"), find_idx(raw, "t10k-labels-idx1-ubyte")
    if images is None or labels is None:
        raise DataMissing(f"MNIST test split not found: expected t10k-images-idx3-ubyte[.gz] and "
                          f"t10k-labels-idx1-ubyte[.gz] in {raw} (pass --data-dir)")
    return to_unit_range(read_idx(images)), torch.from_numpy(read_idx(labels).astype(np.int64))


def to_unit_range(images: np.ndarray) -> Tensor:
    """uint8 images (N, H, W) or (N, H, W, C) -> float (N, C, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 127.5 - 1.0
    return x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def mnist_5k() -> tuple[Tensor, Tensor]:
    """The bundled MNIST-5k training subset."""
    with np.load(metrics.MNIST_5K_FILE) as data:
        return to_unit_range(data["images"]), torch.from_numpy(data["labels"].astype(np.int64))


def torchvision_split(dataset: str, data_dir: Path, train: bool, download: bool) -> tuple[Tensor, Tensor]:
    """Fashion-MNIST or CIFAR-10 train/test split through torchvision."""
    from torchvision import datasets

    cls = {"fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[dataset]
    try:
        ds = cls(str(data_dir), train=train, download=download)
    except Exception as exc:  # torchvision raises RuntimeError/URLError/OSError depending on the failure
        how = "download failed" if download else "not found (add --download to fetch it)"
        raise DataMissing(f"{dataset} {'train' if train else 'test'} split {how} in {data_dir}: {exc}") from None
    data = ds.data.numpy() if isinstance(ds.data, Tensor) else np.asarray(ds.data)
    return to_unit_range(data), torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)


def load_splits(dataset: str, data_dir: Path, download: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, test images, test labels) for a dataset."""
    if dataset == "mnist":
        return (*mnist_5k(), *mnist_test_split(data_dir))
    return (*torchvision_split(dataset, data_dir, True, download), *torchvision_split(dataset, data_dir, False, download))


# ---------------------------------------------------------------------------------------------
# Training


def augment(x: Tensor, gen: torch.Generator, colour: bool) -> Tensor:
    """Random shifts of up to 2 px, rotations up to 10 degrees, scaling 0.9-1.1 (and flips for colour)."""
    n, _, h, w = x.shape
    angle = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * 2 * 2 / torch.tensor([w, h])  # 2 px in grid units
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if colour:
        out = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
        flip = torch.rand(n, generator=gen) < 0.5
        return torch.where(flip[:, None, None, None], out.flip(3), out)
    # Shifting x + 1 with zero padding fills the border with the black (-1) background.
    return F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1


def train(model: metrics.Evaluator, x: Tensor, y: Tensor, epochs: int, batch_size: int, lr: float,
          gen: torch.Generator, colour: bool) -> None:
    """Adam with a cosine learning-rate schedule, cross-entropy, augmented mini-batches."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * math.ceil(x.shape[0] / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(x.shape[0], generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for idx in order.split(batch_size):
            logits = model(augment(x[idx], gen, colour))
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += idx.numel()
            correct += int((logits.argmax(1) == y[idx]).sum())
            loss_sum += float(loss.detach()) * idx.numel()
        print(f"epoch {epoch + 1:3d}/{epochs}  loss {loss_sum / total:.4f}  train acc {correct / total:.4f}", flush=True)
    model.eval()


def accuracy(model: metrics.Evaluator, x: Tensor, y: Tensor) -> float:
    """Share of images classified as their label."""
    _, logits = metrics.extract_features(x, model)
    return float((logits.argmax(1) == y).double().mean())


# ---------------------------------------------------------------------------------------------
# Writing the assets


def write_assets(dataset: str, model: metrics.Evaluator, test_acc: float, test_x: Tensor,
                 train_x: Tensor, info: dict[str, str]) -> tuple[Path, Path]:
    """Save the evaluator and the test-split feature statistics (plus floors for non-MNIST)."""
    weights_path, stats_path = metrics.evaluator_paths(dataset)
    meta = {"format": metrics.EVALUATOR_FORMAT, "dataset": dataset, "num_classes": str(model.num_classes),
            "input_shape": ",".join(map(str, model.input_shape)), "feature_dim": str(model.feature_dim),
            "test_accuracy": f"{test_acc:.4f}", **info}
    evaluator_sha = metrics.save_asset(weights_path, model.state_dict(), meta)

    features, _ = metrics.extract_features(test_x, model)
    mu, sigma = metrics.feature_stats(features)
    stats_meta = {"format": metrics.STATS_FORMAT, "dataset": dataset, "split": "test", "n": str(test_x.shape[0]),
                  "evaluator_data_sha256": evaluator_sha, **info}
    if dataset != "mnist":  # MNIST floors are computed at run time from the bundled mnist-5k set
        gen = torch.Generator().manual_seed(metrics.FLOOR_SEED)
        for n in usable_floor_ns(train_x.shape[0]):
            sample = train_x[torch.randperm(train_x.shape[0], generator=gen)[:n]]
            f, _ = metrics.extract_features(sample, model)
            stats_meta[f"fcd_floor_{n}"] = repr(metrics.frechet_distance(*metrics.feature_stats(f), mu, sigma))
    metrics.save_asset(stats_path, {"mu": mu, "sigma": sigma}, stats_meta)
    return weights_path, stats_path


def usable_floor_ns(n_train: int) -> tuple[int, ...]:
    """The floor sample counts that the training set is large enough for."""
    return tuple(n for n in FLOOR_NS if n <= n_train)


def shown(path: Path) -> str:
    """A path relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def sha256_of(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def update_readme(dataset: str, command: str, seed: int, test_acc: float, n_test: int, files: tuple[Path, Path],
                  details: str, floors: dict[int, float]) -> None:
    """Write (or replace) this dataset's section of assets/README.md, keeping everything else."""
    readme = ASSETS_DIR / "README.md"
    start, end = f"<!-- evaluator:{dataset}:start -->", f"<!-- evaluator:{dataset}:end -->"
    rows = "\n".join(f"| `{p.name}` | {p.stat().st_size:,} | `{sha256_of(p)}` |" for p in files)
    section = f"""{start}
## {dataset} evaluator (quality metrics)

Made by the training script, run from the repository root:

    {command}

Seed {seed}. {details}

| file | bytes | sha256 |
| --- | --- | --- |
{rows}

- Evaluator accuracy on the real {dataset} test split ({n_test:,} images): **{100 * test_acc:.2f}%**.
- `{files[1].name}`: float64 mean (128) and covariance (128x128) of the evaluator's 128-d features
  on that test split: the FCD reference, so FCD needs no download.
- FCD floor (FCD of n real training images, seed {metrics.FLOOR_SEED}, against that reference):
  {", ".join(f"n={n:,}: {v:.2f}" for n, v in floors.items())}.
- Each file's header also stores the sha256 of its tensor data, checked when `gan_core.metrics`
  loads it; the stats file names the evaluator it was computed with. Check the whole files with
  `sha256sum assets/{dataset}_*.safetensors`. A rerun on other hardware or another torch version
  may give slightly different bytes: commit both files together.
{end}"""
    text = readme.read_text() if readme.is_file() else "# Bundled assets\n"
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    readme.write_text(text)


# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the test split (and, except for mnist, the train split) lives; "
                        "default: ../shared/datasets for mnist if present, else the engine's download folder")
    p.add_argument("--download", action="store_true", help="let torchvision download fashion-mnist / cifar10")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="default: 30 for mnist (5k images), 10 otherwise")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def default_data_dir(dataset: str) -> Path:
    """../shared/datasets for MNIST when it exists (this workplace), else the engine's download folder."""
    return SHARED_DATASETS if dataset == "mnist" and SHARED_DATASETS.is_dir() else data_cache_dir()


def main(argv: list[str] | None = None) -> int:
    """Train, evaluate, write the assets and the README section; 0 on success, 2 if data is missing."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    epochs = args.epochs or (30 if args.dataset == "mnist" else 10)
    data_dir = args.data_dir or default_data_dir(args.dataset)
    try:
        train_x, train_y, test_x, test_y = load_splits(args.dataset, data_dir, args.download)
    except DataMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    num_classes = int(train_y.max()) + 1
    model = metrics.Evaluator(tuple(train_x.shape[1:]), num_classes)
    colour = train_x.shape[1] == 3
    print(f"{args.dataset}: {train_x.shape[0]} train / {test_x.shape[0]} test images {tuple(train_x.shape[1:])}, "
          f"{epochs} epochs, {torch.get_num_threads()} threads", flush=True)
    began = time.perf_counter()
    train(model, train_x, train_y, epochs, args.batch_size, args.lr, gen, colour)
    minutes = (time.perf_counter() - began) / 60
    test_acc = accuracy(model, test_x, test_y)
    print(f"test accuracy on the real {args.dataset} test split ({test_x.shape[0]} images): {100 * test_acc:.2f}%")

    command = shlex.join(["python", "benchmarks/train_evaluator.py", *argv])
    info = {"seed": str(args.seed), "epochs": str(epochs), "command": command, "torch": torch.__version__}
    files = write_assets(args.dataset, model, test_acc, test_x, train_x, info)
    metrics.clear_caches()
    evaluator = metrics.load_evaluator(args.dataset)  # the written files must load cleanly
    metrics.load_reference_stats(args.dataset, evaluator=evaluator)
    floors = {n: metrics.fcd_floor(n, args.dataset) for n in usable_floor_ns(train_x.shape[0])}
    print("FCD floors (real training images vs reference): " + ", ".join(f"n={n}: {v:.2f}" for n, v in floors.items()))
    source = "the bundled assets/mnist_train_5k.npz" if args.dataset == "mnist" else f"the {args.dataset} train split"
    details = (f"Trained on {source} ({train_x.shape[0]:,} images) for {epochs} epochs, batch {args.batch_size}, "
               f"Adam one-cycle max lr {args.lr}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
               f"{minutes:.1f} min. Architecture: conv 32 - conv 64 - 128-d feature layer - {num_classes} logits; "
               f"augmentation: random shifts (2 px), rotations (10 deg), scaling (10%){', flips' if colour else ''}.")
    update_readme(args.dataset, command, args.seed, test_acc, test_x.shape[0], files, details, floors)
    for path in files:
        print(f"wrote {shown(path)}  {path.stat().st_size:,} bytes  sha256 {sha256_of(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
