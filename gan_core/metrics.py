"""Offline quality metrics: FCD, mode coverage and class control for images; coverage for 2D toys.

Image metrics use a small CNN classifier (the "evaluator", see gan_core.evaluator) bundled as
safetensors in `assets/`, plus the mean and covariance of its 128-d features on the real test split
(`assets/<dataset>_test_stats.safetensors`), so nothing is downloaded here.

Conventions: images are float tensors in [-1, 1] of shape (N, C, H, W) (grey (N, H, W) is
accepted too); 2D points are float tensors (N, 2). Tensors may live on any device: the
evaluator runs on the device of its input.

FCD values depend on the sample count, so they are only compared at a fixed n (1,000 for
live trends, 5,000 for benchmarks) and next to `fcd_floor(n)`: the FCD of n real images.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import evaluator as _evaluator_module
from .data import MNIST_5K_FILE, load_mnist_5k
from .errors import DataUnavailable, EvaluatorError
from .evaluator import (EVALUATOR_FORMAT, FEATURE_DIM, FLOOR_SEED, NO_EVALUATOR_MESSAGE, STATS_FORMAT,  # noqa: F401
                        Evaluator, ReferenceStats, evaluator_key, evaluator_paths, has_evaluator, load_evaluator,
                        load_reference_stats, read_asset, require_key, save_asset, train_command)
LIVE_FCD_N = 1_000
BENCHMARK_FCD_N = 5_000
COVERAGE_THRESHOLD = 0.02
CLASS_CONTROL_PER_CLASS = 1_000
TOY_N_SAMPLES = 2_500
HQ_STDS = 3.0
_BATCH = 100  # measured: larger batches are slower on a 2-core CPU (cache misses)
_floors: dict[tuple[str, int], float] = {}
_floors_lock = threading.RLock()


def clear_caches() -> None:
    """Forget loaded evaluators, reference stats and FCD floors (after retraining, in tests)."""
    _evaluator_module.clear_caches()
    with _floors_lock:
        _floors.clear()

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
    key = require_key(dataset)
    with _floors_lock:
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
    _, meta = read_asset(evaluator_paths(key)[1], key, STATS_FORMAT)
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


# Below this share of samples near a mode, the samples are mostly a cloud between the modes, whatever the
# mode count says (one nearby sample covers a mode: a wide enough cloud covers them all).
DIFFUSE_HQ_FRACTION = 0.5


def coverage_text(modes_covered: int, n_modes: int, hq_fraction: float) -> str:
    """The mode count always with its quality share: '8 of 8 modes, 6% of samples near a mode'."""
    return f"{modes_covered} of {n_modes} modes, {hq_fraction:.0%} of samples near a mode"


def is_diffuse(hq_fraction: float) -> bool:
    """Whether most samples are near no mode (see DIFFUSE_HQ_FRACTION): a mode count then reads as success
    for a diffuse cloud."""
    return hq_fraction < DIFFUSE_HQ_FRACTION


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


COLLAPSE_HQ_SHARE = 0.5  # a generator whose samples mostly sit on modes has converged: if on few, it collapsed
COLLAPSE_MIN_STEP = 200  # before this, even a sharp generator may still be spreading


def collapse_reason(covered: Sequence[int], hq_fraction: Sequence[float], step: int, threshold: int,
                    warmup_steps: int) -> str:
    """Why the latest coverage pass counts as mode collapse ("" when it does not): "fell" (coverage dropped
    below `threshold` after having reached it), "sharp" (2D toys: below it while most samples, at least
    COLLAPSE_HQ_SHARE, sit close to a mode: G has converged onto a few modes; from COLLAPSE_MIN_STEP on) or
    "late" (still below it after `warmup_steps`). `hq_fraction` is empty for images."""
    if not covered or covered[-1] >= threshold:
        return ""
    if max(covered) >= threshold:
        return "fell"
    if hq_fraction and hq_fraction[-1] >= COLLAPSE_HQ_SHARE and step >= COLLAPSE_MIN_STEP:
        return "sharp"
    return "late" if step >= warmup_steps else ""


def collapse_index(covered: Sequence[int], hq_fraction: Sequence[float], steps: Sequence[int], threshold: int,
                   warmup_steps: int = 1500) -> int | None:
    """The first pass of a coverage series that counts as mode collapse (see `collapse_reason`), or None."""
    for i in range(len(covered)):
        if collapse_reason(covered[:i + 1], hq_fraction[:i + 1], steps[i], threshold, warmup_steps):
            return i
    return None


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
