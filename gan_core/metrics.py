"""Offline quality metrics: FCD, mode coverage and class control for images; coverage for 2D toys.

Image metrics use a small CNN classifier (the "evaluator") bundled as safetensors in `assets/`,
trained by `benchmarks/train_evaluator.py`, plus the mean and covariance of its 128-d features
on the real test split (`assets/<dataset>_test_stats.safetensors`), so nothing is downloaded here.

Conventions: images are float tensors in [-1, 1] of shape (N, C, H, W) (grey (N, H, W) is
accepted too); 2D points are float tensors (N, 2). Tensors may live on any device: the
evaluator runs on the device of its input.

FCD values depend on the sample count, so they are only compared at a fixed n (1,000 for
live trends, 5,000 for benchmarks) and next to `fcd_floor(n)`: the FCD of n real images.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor, nn

from .data import MNIST_5K_FILE, load_mnist_5k
from .errors import DataUnavailable, EvaluatorError
from .paths import ASSETS_DIR, PROJECT_ROOT

NO_EVALUATOR_MESSAGE = "no evaluator for this dataset"
LIVE_FCD_N = 1_000
BENCHMARK_FCD_N = 5_000
COVERAGE_THRESHOLD = 0.02
CLASS_CONTROL_PER_CLASS = 1_000
TOY_N_SAMPLES = 2_500
HQ_STDS = 3.0

EVALUATOR_FORMAT = "gan-playground-evaluator/1"
STATS_FORMAT = "gan-playground-feature-stats/1"
FEATURE_DIM = 128
TRAIN_SCRIPT = "benchmarks/train_evaluator.py"
FLOOR_SEED = 1234

# Dataset names used by the app -> the evaluator that scores them (mnist-5k is a subset of mnist).
_EVALUATOR_FOR = {"mnist": "mnist", "mnist-5k": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar10"}
_BUNDLED = {"mnist"}
_BATCH = 100  # measured: larger batches are slower on a 2-core CPU (cache misses)

_lock = threading.RLock()
_evaluators: dict[tuple[str, str], Evaluator] = {}
_stats: dict[str, tuple[ReferenceStats, str]] = {}  # file -> (stats, evaluator checksum)
_floors: dict[tuple[str, int], float] = {}


# ---------------------------------------------------------------------------------------------
# The evaluator network


class Evaluator(nn.Module):
    """Small CNN classifier: conv 32 - conv 64 - 128-d feature layer - class logits.

    The layer sizes follow the input shape, so the same class serves 1x28x28 grey and
    3x32x32 colour datasets. Inputs are images in [-1, 1].
    """

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.input_shape = (int(channels), int(height), int(width))
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        self.dataset = ""
        self.data_sha256 = ""
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.drop_conv = nn.Dropout(0.25)
        self.fc = nn.Linear(64 * (height // 4) * (width // 4), feature_dim)
        self.drop_fc = nn.Dropout(0.4)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The (N, feature_dim) activations of the feature layer (after its ReLU)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(self.drop_conv(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.drop_fc(self.features(x)))


@dataclass(frozen=True)
class ReferenceStats:
    """Mean (D,) and covariance (D, D), float64, of evaluator features on the real test split."""

    mu: Tensor
    sigma: Tensor
    n: int
    dataset: str


# ---------------------------------------------------------------------------------------------
# Which datasets have an evaluator, and loading it


def evaluator_key(dataset_name: str) -> str | None:
    """The evaluator a dataset name maps to ("mnist-5k" -> "mnist"), or None if it has none."""
    return _EVALUATOR_FOR.get(dataset_name.strip().lower())


def evaluator_paths(dataset: str) -> tuple[Path, Path]:
    """(weights file, reference-stats file) in assets/ for an evaluator key such as "mnist"."""
    return ASSETS_DIR / f"{dataset}_evaluator.safetensors", ASSETS_DIR / f"{dataset}_test_stats.safetensors"


def train_command(dataset: str) -> str:
    """The command that (re)creates the evaluator files of a dataset."""
    return f"python {TRAIN_SCRIPT} --dataset {dataset}"


def has_evaluator(dataset_name: str) -> bool:
    """True if image metrics exist for this dataset: MNIST (bundled) or a trained one in assets/.

    The app shows NO_EVALUATOR_MESSAGE instead of metrics when this is False.
    """
    key = evaluator_key(dataset_name)
    if key is None:
        return False
    if key in _BUNDLED:
        return True  # a missing bundled file is a broken install, reported by load_evaluator
    return all(p.is_file() for p in evaluator_paths(key))


def load_evaluator(dataset: str = "mnist", path: str | Path | None = None,
                   device: str | torch.device | None = None) -> Evaluator:
    """The evaluator of a dataset (or the file at `path`), in eval mode, on `device` (CPU default).

    Cached per file and device, safe to call from several threads. Raises EvaluatorError with a
    one-line message if the dataset has no evaluator or the file is missing, corrupt or foreign.
    """
    file = Path(path) if path is not None else evaluator_paths(_require_key(dataset))[0]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cache_key = (str(file.resolve()), str(dev))
    with _lock:
        evaluator = _evaluators.get(cache_key)
        if evaluator is None:
            evaluator = _read_evaluator(file, evaluator_key(dataset) or dataset).to(dev)
            _evaluators[cache_key] = evaluator
    return evaluator


def load_reference_stats(dataset: str = "mnist", path: str | Path | None = None,
                         evaluator: Evaluator | None = None) -> ReferenceStats:
    """Feature mean and covariance of the real test split, checked against `evaluator` if given.

    Cached per file; raises EvaluatorError if the file is missing, damaged or was computed with
    a different evaluator than `evaluator`.
    """
    key = _require_key(dataset) if path is None else (evaluator_key(dataset) or dataset)
    file = Path(path) if path is not None else evaluator_paths(key)[1]
    with _lock:
        cached = _stats.get(str(file.resolve()))
        if cached is None:
            cached = _read_stats(file, key)
            _stats[str(file.resolve())] = cached
    stats, evaluator_sha = cached
    if evaluator is not None and evaluator.data_sha256 != evaluator_sha:
        raise EvaluatorError(_problem(file, key, "was computed with a different evaluator file"))
    return stats


def clear_caches() -> None:
    """Forget loaded evaluators, reference stats and floors (after retraining, in tests)."""
    with _lock:
        _evaluators.clear()
        _stats.clear()
        _floors.clear()


def _require_key(dataset: str) -> str:
    key = evaluator_key(dataset)
    if key is None or not has_evaluator(dataset):
        hint = f": train one with `{train_command(key)}`" if key else ""
        raise EvaluatorError(f"{NO_EVALUATOR_MESSAGE} ({dataset}){hint}")
    return key


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(file)


def _problem(file: Path, dataset: str, what: str) -> str:
    return f"metrics asset {_display(file)} {what}; re-create it with `{train_command(dataset)}`"


def save_asset(path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> str:
    """Write a safetensors asset whose header records the sha256 of its tensor data; return that hash.

    The header is written with sorted keys, so the same tensors and metadata always give the same
    bytes (and file sha256). Written to a temporary file first, then renamed.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    raw = save_safetensors_bytes(tensors)
    data = _data_section(raw)
    data_sha = hashlib.sha256(data).hexdigest()
    header = json.loads(raw[8:len(raw) - len(data)])
    header["__metadata__"] = {**metadata, "data_sha256": data_sha}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header so the data starts 8-byte aligned
    raw = len(text).to_bytes(8, "little") + text + data
    load_safetensors_bytes(raw)  # refuse to write anything safetensors itself cannot read
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return data_sha


def _data_section(raw: bytes) -> bytes:
    return raw[8 + int.from_bytes(raw[:8], "little"):]


def _read_safetensors(file: Path, dataset: str, fmt: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file whose data checksum matches its metadata."""
    if not file.is_file():
        raise EvaluatorError(_problem(file, dataset, "is missing"))
    raw = file.read_bytes()
    try:
        header_len = int.from_bytes(raw[:8], "little")
        if len(raw) < 8 or 8 + header_len > len(raw):
            raise ValueError("truncated header")
        header = json.loads(raw[8:8 + header_len])
        metadata = dict(header.get("__metadata__") or {})
        tensors = load_safetensors_bytes(raw)
    except Exception:  # any parse failure means the same thing to the user: a damaged file
        raise EvaluatorError(_problem(file, dataset, "is corrupt or truncated (not a readable safetensors file)")) from None
    if metadata.get("format") != fmt:
        raise EvaluatorError(_problem(file, dataset, f"is not a {fmt} file"))
    # The data section hash catches bit flips that still parse; it is stored in the header.
    if hashlib.sha256(_data_section(raw)).hexdigest() != metadata.get("data_sha256"):
        raise EvaluatorError(_problem(file, dataset, "does not match its checksum (damaged)"))
    return tensors, metadata


def _read_evaluator(file: Path, dataset: str) -> Evaluator:
    tensors, meta = _read_safetensors(file, dataset, EVALUATOR_FORMAT)
    dataset = meta.get("dataset", dataset)
    try:
        shape = tuple(int(v) for v in meta["input_shape"].split(","))
        evaluator = Evaluator(shape, int(meta["num_classes"]), int(meta["feature_dim"]))  # type: ignore[arg-type]
    except (KeyError, ValueError, TypeError):
        raise EvaluatorError(_problem(file, dataset, "has missing or invalid metadata")) from None
    expected = {k: tuple(v.shape) for k, v in evaluator.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found or any(t.dtype != torch.float32 for t in tensors.values()):
        raise EvaluatorError(_problem(file, dataset, "has unexpected tensor names or shapes"))
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise EvaluatorError(_problem(file, dataset, "contains non-finite weights"))
    evaluator.load_state_dict(tensors)
    evaluator.dataset = dataset
    evaluator.data_sha256 = meta["data_sha256"]
    evaluator.requires_grad_(False)
    return evaluator.eval()


def _read_stats(file: Path, dataset: str) -> tuple[ReferenceStats, str]:
    tensors, meta = _read_safetensors(file, dataset, STATS_FORMAT)
    mu, sigma = tensors.get("mu"), tensors.get("sigma")
    ok = (mu is not None and sigma is not None and set(tensors) == {"mu", "sigma"} and mu.dtype == torch.float64
          and sigma.dtype == torch.float64 and mu.ndim == 1 and tuple(sigma.shape) == (mu.shape[0], mu.shape[0]))
    if not ok or not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        raise EvaluatorError(_problem(file, dataset, "has unexpected tensor names, shapes or values"))
    stats = ReferenceStats(mu=mu, sigma=sigma, n=int(meta.get("n", 0)), dataset=meta.get("dataset", dataset))
    return stats, meta.get("evaluator_data_sha256", "")


# ---------------------------------------------------------------------------------------------
# Features and the Fréchet distance


def extract_features(images: Tensor, evaluator: Evaluator) -> tuple[Tensor, Tensor]:
    """(features (N, D) float32, logits (N, K) float32) on CPU, in one batched no-grad pass."""
    feats, logits = [], []
    device = next(evaluator.parameters()).device
    with torch.inference_mode():
        for chunk in _prepare(images, evaluator).split(_BATCH):
            f = evaluator.features(chunk.to(device))
            feats.append(f.float().cpu())
            logits.append(evaluator.head(f).float().cpu())
    return torch.cat(feats), torch.cat(logits)


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    x = features.detach().to("cpu", torch.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"feature_stats needs (N >= 2, D) features, got shape {tuple(x.shape)}")
    return x.mean(0), torch.cov(x.T)


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64, torch only.

    d² = |mu1 - mu2|² + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)), where tr(sqrt(S1 S2)) is the sum of
    the square roots of the eigenvalues of the symmetric matrix sqrt(S1) S2 sqrt(S1).
    """
    mu1, mu2 = (m.detach().to("cpu", torch.float64) for m in (mu1, mu2))
    s1, s2 = (_symmetric(s.detach().to("cpu", torch.float64)) for s in (sigma1, sigma2))
    root1 = _sqrtm_psd(s1)
    cross = torch.linalg.eigvalsh(_symmetric(root1 @ s2 @ root1)).clamp(min=0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2) - 2 * cross
    return max(float(value), 0.0)  # tiny negatives are rounding error


def _symmetric(m: Tensor) -> Tensor:
    return (m + m.T) / 2


def _sqrtm_psd(m: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix; negative eigenvalues (noise) -> 0."""
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def _prepare(images: Tensor, evaluator: Evaluator) -> Tensor:
    """Check the shape and clip to [-1, 1] (how samples are shown); NaN counts as mid-grey."""
    x = images.detach()
    if x.ndim == 3 and evaluator.input_shape[0] == 1:
        x = x.unsqueeze(1)
    if x.ndim != 4 or tuple(x.shape[1:]) != evaluator.input_shape:
        raise ValueError(f"the {evaluator.dataset or 'image'} evaluator needs images of shape "
                         f"(N, {', '.join(map(str, evaluator.input_shape))}), got {tuple(images.shape)}")
    return torch.nan_to_num(x.float(), nan=0.0).clamp(-1, 1)


def _evaluator_for(images: Tensor, dataset: str) -> Evaluator:
    device = images.device if images.device.type != "meta" else torch.device("cpu")
    return load_evaluator(dataset, device=device)


def _take(images: Tensor, n: int) -> Tensor:
    if n < 2:
        raise ValueError(f"FCD needs n >= 2 samples, got n={n}")
    if images.shape[0] < n:
        raise ValueError(f"FCD is computed at a fixed n={n} samples, but only {images.shape[0]} were given")
    return images[:n]


def _fcd_from_features(features: Tensor, dataset: str, evaluator: Evaluator) -> float:
    ref = load_reference_stats(dataset, evaluator=evaluator)
    mu, sigma = feature_stats(features)
    return frechet_distance(mu, sigma, ref.mu, ref.sigma)


def fcd(images: Tensor, n: int, dataset: str = "mnist") -> float:
    """Fréchet Classifier Distance of the first n images against the real test split.

    Lower is better; compare only values with the same n, and against `fcd_floor(n)`.
    """
    images = _take(images, n)
    evaluator = _evaluator_for(images, dataset)
    features, _ = extract_features(images, evaluator)
    return _fcd_from_features(features, dataset, evaluator)


def fcd_floor(n: int, dataset: str = "mnist") -> float:
    """FCD of n real training images (fixed-seed sample) against the reference: the best reachable.

    For MNIST the images come from the bundled mnist-5k set (n <= 5000); other datasets use the
    floors their training script stored. Cached per (dataset, n).
    """
    key = _require_key(dataset)
    with _lock:
        if (key, n) not in _floors:
            _floors[(key, n)] = _compute_floor(key, n)
        return _floors[(key, n)]


def _compute_floor(key: str, n: int) -> float:
    if key != "mnist":
        stored = _stored_floor(key, n)
        if stored is None:
            raise EvaluatorError(f"no FCD floor stored for {key} at n={n}; re-run `{train_command(key)}`")
        return stored
    images = real_training_images(n, seed=FLOOR_SEED)
    return fcd(images, n, key)


def _stored_floor(key: str, n: int) -> float | None:
    _, meta = _read_safetensors(evaluator_paths(key)[1], key, STATS_FORMAT)
    value = meta.get(f"fcd_floor_{n}")
    return float(value) if value is not None else None


def real_training_images(n: int, seed: int = FLOOR_SEED) -> Tensor:
    """n images of the bundled MNIST-5k training subset, sampled without replacement, in [-1, 1]."""
    images = _mnist_5k_images()
    if not 0 < n <= images.shape[0]:
        raise ValueError(f"n must be between 1 and {images.shape[0]} for mnist-5k, got {n}")
    order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(seed))
    return images[order[:n]]


def _mnist_5k_images() -> Tensor:
    try:
        raw, _ = load_mnist_5k(MNIST_5K_FILE)
    except DataUnavailable as exc:
        raise EvaluatorError(f"{exc} (needed for the FCD floor)") from None
    return raw.float() / 127.5 - 1.0


# ---------------------------------------------------------------------------------------------
# Mode coverage and class control


@dataclass(frozen=True)
class ModeCoverage:
    """Evaluator class histogram (shares summing to 1), classes with >= threshold share, KL(p || uniform)."""

    histogram: list[float]
    classes_covered: int
    kl_uniform: float


@dataclass(frozen=True)
class ClassControl:
    """Share of samples drawn for label k that the evaluator classifies as k, overall and per class."""

    accuracy: float
    per_class: list[float]


def coverage_from_predictions(predictions: Tensor, num_classes: int,
                              threshold: float = COVERAGE_THRESHOLD) -> ModeCoverage:
    """Mode coverage from predicted class indices (N,)."""
    counts = torch.bincount(predictions.detach().cpu().long(), minlength=num_classes).double()
    p = counts / counts.sum().clamp(min=1)
    nonzero = p[p > 0]
    kl = float((nonzero * nonzero.log()).sum() + math.log(num_classes))  # 0 log 0 = 0
    return ModeCoverage(histogram=p.tolist(), classes_covered=int((p >= threshold).sum()), kl_uniform=max(kl, 0.0))


def mode_coverage(images: Tensor, dataset: str = "mnist", threshold: float = COVERAGE_THRESHOLD) -> ModeCoverage:
    """Class histogram of generated images under the evaluator, with coverage and KL to uniform."""
    evaluator = _evaluator_for(images, dataset)
    _, logits = extract_features(images, evaluator)
    return coverage_from_predictions(logits.argmax(1), evaluator.num_classes, threshold)


def class_control_accuracy(sample_fn: Callable[[Tensor], Tensor], n_per_class: int = CLASS_CONTROL_PER_CLASS,
                           dataset: str = "mnist", batch_size: int = 500) -> ClassControl:
    """How well a conditional generator draws the class it is asked for.

    `sample_fn(labels)` takes a LongTensor of class labels (CPU) and returns one image per label.
    """
    evaluator = load_evaluator(dataset)
    hits = []
    for k in range(evaluator.num_classes):
        correct = 0
        for start in range(0, n_per_class, batch_size):
            labels = torch.full((min(batch_size, n_per_class - start),), k, dtype=torch.long)
            images = sample_fn(labels)
            if images.shape[0] != labels.shape[0]:
                raise ValueError(f"sample_fn returned {images.shape[0]} images for {labels.shape[0]} labels")
            _, logits = extract_features(images, _evaluator_for(images, dataset))
            correct += int((logits.argmax(1) == k).sum())
        hits.append(correct / n_per_class)
    return ClassControl(accuracy=sum(hits) / len(hits), per_class=hits)


# ---------------------------------------------------------------------------------------------
# Everything the live app shows, in one pass


def image_metrics(images: Tensor, n: int = LIVE_FCD_N, dataset: str = "mnist") -> dict[str, object]:
    """FCD at n (with its floor), class histogram, classes covered and KL to uniform of n images.

    One batched evaluator pass; the first n images are used. Keys: fcd, fcd_n, fcd_floor,
    class_histogram, classes_covered, kl_uniform.
    """
    images = _take(images, n)
    evaluator = _evaluator_for(images, dataset)
    features, logits = extract_features(images, evaluator)
    coverage = coverage_from_predictions(logits.argmax(1), evaluator.num_classes)
    return {
        "fcd": _fcd_from_features(features, dataset, evaluator),
        "fcd_n": n,
        "fcd_floor": fcd_floor(n, dataset),
        "class_histogram": coverage.histogram,
        "classes_covered": coverage.classes_covered,
        "kl_uniform": coverage.kl_uniform,
    }


# ---------------------------------------------------------------------------------------------
# 2D toys


@dataclass(frozen=True)
class ToyMetrics:
    """Modes with at least one high-quality sample, share of high-quality samples, HQ samples per mode."""

    modes_covered: int
    n_modes: int
    hq_fraction: float
    per_mode_counts: list[int]


def toy_metrics(points: Tensor, centres: Tensor, std: float) -> ToyMetrics:
    """Mode coverage of 2D samples around Gaussian mode centres (Unrolled GAN / VEEGAN / PacGAN).

    A sample is high quality if it lies within 3 std of its nearest centre; a mode is covered if
    it is the nearest centre of at least one high-quality sample. Use TOY_N_SAMPLES points.
    """
    pts, ctr = _as_points(points), _as_points(centres)
    dist, nearest = _nearest(pts, ctr)
    return _toy_result(dist <= HQ_STDS * std, nearest, ctr.shape[0])


def curve_metrics(points: Tensor, curve_points: Tensor, std: float, n_segments: int) -> ToyMetrics:
    """The toy metrics for a distribution along a curve (the spiral), which has no discrete modes.

    `curve_points` is a dense (M, 2) polyline. A sample is high quality if within 3 std of its
    nearest polyline point; the "modes" are n_segments pieces of equal arc length along the
    polyline, covered if one holds the nearest point of a high-quality sample.
    """
    pts, curve = _as_points(points), _as_points(curve_points)
    if not 1 <= n_segments <= curve.shape[0]:
        raise ValueError(f"n_segments must be between 1 and the number of curve points, got {n_segments}")
    dist, nearest = _nearest(pts, curve)
    arc = torch.cat([torch.zeros(1, dtype=curve.dtype), (curve[1:] - curve[:-1]).norm(dim=1).cumsum(0)])
    segment_of_point = (arc / arc[-1].clamp(min=1e-12) * n_segments).long().clamp(max=n_segments - 1)
    return _toy_result(dist <= HQ_STDS * std, segment_of_point[nearest], n_segments)


def _as_points(x: Tensor) -> Tensor:
    x = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, 2) tensor of points, got shape {tuple(x.shape)}")
    return x


def _nearest(points: Tensor, targets: Tensor, chunk: int = 1024) -> tuple[Tensor, Tensor]:
    """Distance to and index of the nearest target for each point, in chunks to bound memory."""
    dists, idx = [], []
    for part in points.split(chunk):
        d, i = torch.cdist(part, targets).min(dim=1)
        dists.append(d)
        idx.append(i)
    return torch.cat(dists), torch.cat(idx)


def _toy_result(hq: Tensor, mode: Tensor, n_modes: int) -> ToyMetrics:
    counts = torch.bincount(mode[hq], minlength=n_modes)
    return ToyMetrics(modes_covered=int((counts > 0).sum()), n_modes=n_modes,
                      hq_fraction=float(hq.double().mean()), per_mode_counts=counts.tolist())
