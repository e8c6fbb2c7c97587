"""Dataset registry: 2D toys made on the fly, bundled MNIST-5k, torchvision downloads, image folders.

Every dataset yields float tensors in [-1, 1] (and integer labels where it has them). Image data
lives on the training device as one uint8 tensor and is batched by random indexing, so the hot
loop has no per-sample Python transforms.
"""

from __future__ import annotations

import gzip
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .errors import DataUnavailable
from .paths import ASSETS_DIR, data_cache_dir

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
MNIST_5K_FILE = ASSETS_DIR / "mnist_train_5k.npz"
FOLDER_IMAGE_LIMIT = 50_000


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is, before loading it."""

    name: str
    kind: str  # "points" or "image"
    labelled: bool
    source: str  # "generated", "bundled", "download" or "folder"
    description: str
    shape: tuple[int, ...] = ()  # (2,) or (C, H, W); folders decide at load time
    class_names: tuple[str, ...] = ()
    download_mb: int = 0


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec("ring8", "points", False, "generated", "ring of 8 Gaussians", (2,)),
        DatasetSpec("grid25", "points", False, "generated", "5x5 grid of 25 Gaussians", (2,)),
        DatasetSpec("spiral", "points", False, "generated", "noisy spiral", (2,)),
        DatasetSpec("mnist-5k", "image", True, "bundled", "5,000 MNIST training digits bundled in assets/ (offline)", (1, 28, 28), MNIST_CLASSES),
        DatasetSpec("mnist", "image", True, "download", "full MNIST, 60,000 digits (downloaded once)", (1, 28, 28), MNIST_CLASSES, 10),
        DatasetSpec("fashion-mnist", "image", True, "download", "Fashion-MNIST, 60,000 clothes images (downloaded once)", (1, 28, 28), FASHION_CLASSES, 30),
        DatasetSpec("cifar10", "image", True, "download", "CIFAR-10, 50,000 colour 32x32 images (downloaded once)", (3, 32, 32), CIFAR10_CLASSES, 170),
        DatasetSpec("folder", "image", True, "folder", "your own folder of images (subfolders become classes)"),
    ]
}


class ToyData:
    """A 2D distribution sampled on the fly; knows its exact mode centres (or curve) for metrics."""

    kind = "points"
    shape = (2,)
    num_classes = 0
    class_names: tuple[str, ...] = ()
    labels = None

    def __init__(self, name: str, device: torch.device):
        self.name = name
        self.device = device
        self.centres: Optional[Tensor] = None  # (K, 2) for mixtures
        self.curve: Optional[Tensor] = None  # (M, 2) dense polyline for the spiral
        if name == "ring8":
            angles = torch.arange(8, dtype=torch.float32) * (2 * math.pi / 8)
            self.centres = 0.8 * torch.stack([angles.cos(), angles.sin()], dim=1)
            self.std = 0.04
        elif name == "grid25":
            ticks = torch.linspace(-0.8, 0.8, 5)
            self.centres = torch.cartesian_prod(ticks, ticks)
            self.std = 0.03
        elif name == "spiral":
            self.curve = _spiral(torch.linspace(0, 1, 1000))
            self.std = 0.02
        else:
            raise DataUnavailable(f"unknown 2D dataset {name!r}")
        self._centres_dev = None if self.centres is None else self.centres.to(device)

    def __len__(self) -> int:
        return 0  # infinite

    def batch(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, None]:
        """n fresh points in [-1, 1]^2 (labels: None)."""
        noise = torch.randn(n, 2, device=self.device, generator=generator) * self.std
        if self._centres_dev is not None:
            idx = torch.randint(len(self._centres_dev), (n,), device=self.device, generator=generator)
            return self._centres_dev[idx] + noise, None
        t = torch.rand(n, device=self.device, generator=generator)
        return _spiral(t) + noise, None

    def sample_real(self, n: int, seed: int = 0) -> tuple[Tensor, None]:
        """n points from a fixed seed (for reference plots and metrics)."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        return self.batch(n, gen)


def _spiral(t: Tensor) -> Tensor:
    """Points on an Archimedean spiral for t in [0, 1], inside the unit square."""
    angle = 3.0 * math.pi * t
    radius = 0.1 + 0.75 * t
    return torch.stack([radius * angle.cos(), radius * angle.sin()], dim=-1)


class ImageData:
    """Images as one uint8 (N, C, H, W) tensor on the device, plus optional int64 labels."""

    kind = "image"

    def __init__(self, name: str, images: Tensor, labels: Optional[Tensor], class_names: tuple[str, ...], device: torch.device):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise DataUnavailable(f"{name}: expected uint8 images of shape (N, C, H, W), got {tuple(images.shape)} {images.dtype}")
        if len(images) == 0:
            raise DataUnavailable(f"{name}: the dataset has no images")
        self.name = name
        self.device = device
        self.images = images.to(device)
        self.labels = labels.to(device=device, dtype=torch.long) if labels is not None else None
        self.class_names = class_names if self.labels is not None else ()
        self.num_classes = len(self.class_names)
        self.shape = tuple(images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, n: int, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Optional[Tensor]]:
        """n random images in [-1, 1] (float32) and their labels (or None)."""
        idx = torch.randint(len(self.images), (n,), device=self.device, generator=generator)
        x = self.images[idx].float().div_(127.5).sub_(1.0)
        return x, (self.labels[idx] if self.labels is not None else None)

    def sample_real(self, n: int, seed: int = 0) -> tuple[Tensor, Optional[Tensor]]:
        """n images chosen with a fixed seed (for reference grids and metrics)."""
        gen = torch.Generator(device=self.device).manual_seed(seed)
        return self.batch(n, gen)


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry for `name` (DataUnavailable if unknown)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataUnavailable(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}") from None


def load_dataset(name: str, device: torch.device | str = "cpu", data_dir: str = "", image_size: int = 0,
                 channels: int = 0, download: bool = True) -> ToyData | ImageData:
    """Load dataset `name` onto `device`. Raises DataUnavailable with what to do when it can't."""
    device = torch.device(device)
    spec = dataset_spec(name)
    if spec.kind == "points":
        return ToyData(name, device)
    if name == "mnist-5k":
        images, labels = load_mnist_5k()
        return ImageData(name, images, labels, MNIST_CLASSES, device)
    if name == "folder":
        images, labels, classes = load_image_folder(data_dir, image_size or 28, channels or (1 if not image_size or image_size == 28 else 3))
        return ImageData(name, images, labels, classes, device)
    images, labels = load_torchvision(name, Path(data_dir) if data_dir else data_cache_dir(), download=download)
    return ImageData(name, images, labels, spec.class_names, device)


def load_mnist_5k(path: Path = MNIST_5K_FILE) -> tuple[Tensor, Tensor]:
    """The bundled 5,000-digit MNIST subset as uint8 (5000, 1, 28, 28) images and labels."""
    if not path.exists():
        raise DataUnavailable(f"bundled dataset file {path} is missing: restore it with `git checkout -- assets/`")
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataUnavailable(f"bundled dataset file {path} is corrupt ({exc}): restore it with `git checkout -- assets/`") from None
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DataUnavailable(f"bundled dataset file {path} has unexpected contents {images.shape} {images.dtype}")
    return torch.from_numpy(images).unsqueeze(1).contiguous(), torch.from_numpy(labels.astype(np.int64))


_TV_FOLDERS = {"mnist": ("MNIST", ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]),
               "fashion-mnist": ("FashionMNIST", ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]),
               "cifar10": ("cifar-10-batches-py", ["cifar-10-python.tar.gz (unpacked: data_batch_1 ... data_batch_5)"])}


def load_torchvision(name: str, root: Path, download: bool = True, train: bool = True) -> tuple[Tensor, Tensor]:
    """MNIST / Fashion-MNIST / CIFAR-10 (train or test split), downloading into `root` with torchvision if needed.

    MNIST-format files are read directly (gzipped or not), so a user can drop the four official
    .gz files into ROOT/MNIST/raw by hand. CIFAR-10's files are pickles: torchvision checks each
    file's MD5 against the official release before unpickling it, so only the genuine data loads."""
    if name in ("mnist", "fashion-mnist"):
        found = _read_idx_split(root / _TV_FOLDERS[name][0] / "raw", train)
        if found is not None:
            return found
    from torchvision import datasets  # imported lazily: slow to import and not needed for toys

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST, "cifar10": datasets.CIFAR10}[name]
    try:
        ds = cls(str(root), train=train, download=False)
    except RuntimeError:  # torchvision's "Dataset not found"
        if not download:
            raise DataUnavailable(_missing_message(name, root, "not downloaded yet")) from None
        try:
            ds = cls(str(root), train=train, download=True)
        except Exception as exc:  # URLError, HTTPError, socket errors, checksum errors...
            raise DataUnavailable(_missing_message(name, root, f"download failed: {_short(exc)}")) from None
    except Exception as exc:  # corrupt files
        raise DataUnavailable(_missing_message(name, root, f"could not read the files: {_short(exc)}")) from None
    if name == "cifar10":
        images = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return images, torch.as_tensor(ds.targets, dtype=torch.long)
    return ds.data.unsqueeze(1).contiguous(), ds.targets.long()


def _read_idx_split(raw: Path, train: bool) -> Optional[tuple[Tensor, Tensor]]:
    """Images (N, 1, 28, 28) and labels from MNIST-format IDX files in `raw`, or None if absent."""
    prefix = "train" if train else "t10k"
    paths = []
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        candidates = [raw / f"{prefix}-{kind}", raw / f"{prefix}-{kind}.gz"]
        existing = [c for c in candidates if c.exists()]
        if not existing:
            return None
        paths.append(existing[0])
    images, labels = _read_idx(paths[0]), _read_idx(paths[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataUnavailable(f"{raw}: image and label files do not match ({images.shape} vs {labels.shape})")
    return torch.from_numpy(images).unsqueeze(1).contiguous(), torch.from_numpy(labels.astype(np.int64))


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (MNIST's format), gzipped or not."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        magic, ndim = int.from_bytes(raw[0:3], "big"), raw[3]
        if magic != 0x08 or not 1 <= ndim <= 3:
            raise ValueError("not an IDX file of unsigned bytes")
        dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(dims).copy()
    except (OSError, EOFError, ValueError, gzip.BadGzipFile) as exc:
        raise DataUnavailable(f"{path} is corrupt ({_short(exc)}): delete it so it downloads again") from None


def _missing_message(name: str, root: Path, why: str) -> str:
    folder, files = _TV_FOLDERS[name]
    where = root / folder / ("raw" if name != "cifar10" else "")
    return (f"dataset '{name}' is not available ({why}). With internet it downloads by itself on first use; "
            f"offline, put {', '.join(files)} in {where} (or set GAN_DATA_DIR), or use the bundled dataset mnist-5k")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def load_image_folder(folder: str, size: int, channels: int) -> tuple[Tensor, Optional[Tensor], tuple[str, ...]]:
    """All images under `folder` resized (shorter side) and centre-cropped to size x size, as uint8.

    Subfolders become classes (torchvision ImageFolder layout); a flat folder of images is one class.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets.folder import IMG_EXTENSIONS
    from torchvision.transforms import v2

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataUnavailable(f"image folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise DataUnavailable(f"image folder {root} has no images ({', '.join(IMG_EXTENSIONS[:4])} ...)")
    files = files[:FOLDER_IMAGE_LIMIT]
    classes = sorted({p.parent.relative_to(root).as_posix() for p in files})
    class_index = {c: i for i, c in enumerate(classes)}
    transform = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for path in files:
        try:
            with Image.open(path) as img:
                array = np.asarray(img.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as exc:
            raise DataUnavailable(f"{path} is not a readable image ({_short(exc)}): remove it from the folder") from None
        tensor = torch.from_numpy(array.copy())
        tensor = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)
        images.append(transform(tensor))
        labels.append(class_index[path.parent.relative_to(root).as_posix()])
    label_tensor = torch.tensor(labels) if len(classes) > 1 else None
    return torch.stack(images), label_tensor, tuple(classes) if len(classes) > 1 else ()
