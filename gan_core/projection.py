"""Find a drawing in latent space: turn a drawn or uploaded picture into an MNIST-style digit, then
optimise z (and, for a conditional generator, pick the class) so that G(z) looks like it.

The preprocessing follows how MNIST itself was made (LeCun et al.): the ink's bounding box is
scaled to fit a 20x20 box (aspect kept, anti-aliased), then placed in the 28x28 field so that its
centre of mass sits at the centre; white ink on black, in [-1, 1]. Projection is a few hundred Adam
steps on z from several random starts in one batch (one per class too, for a conditional run),
minimising a pixel loss plus a feature loss: the distance between the bundled MNIST classifier's
features (gan_core.evaluator), which cares about strokes and shapes more than exact pixel overlap.
"""

from __future__ import annotations

import copy
import io
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from .errors import EvaluatorError, ImageError
from .evaluator import Evaluator, evaluator_key, has_evaluator, load_evaluator
from .generator import Generator
from .uploads import IMAGE_SUFFIXES

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 4096 * 4096
MIN_UPLOAD_SIDE = 8
MAX_ASPECT = 3.0  # a digit's picture is roughly square; a long strip is not one digit
INK_LEVEL = 0.2  # a pixel is ink when it is this bright (0..1) above the background
MIN_INK_SHARE = 0.002  # less ink than this share of the picture is an empty drawing
MNIST_BOX = 20 / 28  # MNIST digits fit a 20x20 box inside their 28x28 field
FEATURE_WEIGHT = 1.0  # feature loss weight, relative to the pixel MSE (both about 0.1-1 at the start)
PRIOR_WEIGHT = 0.01  # keeps z near the Gaussian shell where the generator was trained
STEPS = 200
RESTARTS = 8
SCREEN_RESTARTS = 2  # conditional runs: random z per class while every class is tried
SCREEN_SHARE = 0.2  # ...for this share of the steps; then the best RESTARTS (class, z) pairs go on
LEARNING_RATE = 0.1

Progress = Callable[[float, float], None]  # (fraction done, best distance so far)


@dataclass(frozen=True)
class Projection:
    """The closest point of a generator to a target image.

    distance: the objective at the end (pixel MSE + FEATURE_WEIGHT x feature MSE, without the prior);
    pixel_error: mean absolute pixel difference on a 0..1 scale (0.05 = 5% of full brightness);
    label: the chosen class (conditional runs, else None); class_distances: best distance per class."""

    z: Tensor
    label: Optional[int]
    image: Tensor
    distance: float
    pixel_error: float
    uses_features: bool
    steps: int
    seconds: float
    class_distances: tuple[float, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# Pictures in: checked uploads and MNIST-style preprocessing


def read_upload(filename: str, data: bytes) -> Image.Image:
    """An uploaded picture as a PIL image, or ImageError with a one-line reason (not an image, too big,
    too small or far from square). Only the header is read before the size checks (no decompression bomb)."""
    size_mb = len(data) / 1e6
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImageError(f"{filename}: too big ({size_mb:.1f} MB); upload a picture under {MAX_UPLOAD_BYTES // 2**20} MB")
    kinds = ", ".join(s.lstrip(".").upper() for s in IMAGE_SUFFIXES)
    try:
        img = Image.open(io.BytesIO(data))
        width, height = img.size
    except Image.DecompressionBombError:
        raise ImageError(f"{filename}: refused, it declares an enormous picture") from None
    except Exception:  # PIL raises several types for foreign data; all mean the same here
        raise ImageError(f"{filename}: not a picture this app can read ({kinds})") from None
    if width * height > MAX_UPLOAD_PIXELS:
        raise ImageError(f"{filename}: too large ({width}x{height} px); at most {MAX_UPLOAD_PIXELS:,} pixels")
    if min(width, height) < MIN_UPLOAD_SIDE:
        raise ImageError(f"{filename}: too small ({width}x{height} px); at least {MIN_UPLOAD_SIDE} px on each side")
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageError(f"{filename}: {width}x{height} px is far from square; crop it to one digit "
                         f"(at most {MAX_ASPECT:.0f}:1)")
    try:
        img.load()
    except Exception:
        raise ImageError(f"{filename}: the picture is damaged or truncated") from None
    return img


def ink_array(img: Image.Image | np.ndarray) -> np.ndarray:
    """A picture as float ink in [0, 1] (H, W): bright strokes on a dark background, whatever the input.

    Transparent pictures use their opacity as ink; dark-on-light pictures (a digit on paper) are
    inverted; the background level is subtracted and the contrast stretched."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img = ImageOps.exif_transpose(img) if hasattr(img, "getexif") else img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        alpha = np.asarray(img.convert("RGBA"))[..., 3].astype(np.float32) / 255
        if alpha.min() < 0.5:  # a transparent background: the strokes are what is opaque
            return alpha
    grey = np.asarray(img.convert("L"), dtype=np.float32) / 255
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 0.5:
        grey = 1 - grey
        border = 1 - border
    background, top = float(np.median(border)), float(grey.max())
    if top - background < INK_LEVEL:
        return np.zeros_like(grey)
    return np.clip((grey - background) / (top - background), 0, 1)


def mnist_digit(img: Image.Image | np.ndarray, side: int = 28) -> Tensor:
    """A drawing or photo of a digit as an MNIST-style image (1, side, side) in [-1, 1]: its ink's
    bounding box scaled into a 20/28 box (aspect kept), centred by its centre of mass.
    Raises ImageError for an empty drawing."""
    ink = ink_array(img)
    mask = ink > INK_LEVEL
    if mask.sum() < max(3, MIN_INK_SHARE * ink.size):
        raise ImageError("the drawing is empty: draw a digit (or upload a picture of one) first")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    box = max(1, round(side * MNIST_BOX))
    scale = box / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    patch = np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
    patch = np.clip(patch, 0, 1)
    ys, xs = np.indices(patch.shape)
    total = patch.sum()
    cy, cx = (ys * patch).sum() / total, (xs * patch).sum() / total
    centre = (side - 1) / 2
    top = int(np.clip(round(centre - cy), 0, side - height))
    left = int(np.clip(round(centre - cx), 0, side - width))
    field_ = np.zeros((side, side), dtype=np.float32)
    field_[top:top + height, left:left + width] = patch
    return torch.from_numpy(field_).unsqueeze(0) * 2 - 1


# ---------------------------------------------------------------------------------------------
# Projection


def check_projectable(generator: Generator) -> None:
    """ImageError unless the generator draws grey images (the drawing is grey; 2D toys draw points)."""
    if generator.spec.kind == "points":
        raise ImageError("this run draws 2D points, not images: pick an image generator (e.g. mnist-dcgan)")
    if generator.sample_shape[0] != 1:
        raise ImageError(f"projection needs a grey-scale image generator; this run draws "
                         f"{'x'.join(map(str, generator.sample_shape))} colour images")


def feature_net(generator: Generator) -> Optional[Evaluator]:
    """The bundled classifier whose features serve as the perceptual loss for this generator's data
    (None when its dataset has none or the image shape differs: then the pixel loss works alone)."""
    dataset = generator.config.dataset
    if evaluator_key(dataset) is None or not has_evaluator(dataset):
        return None
    try:
        evaluator = load_evaluator(dataset)
    except EvaluatorError:
        return None
    return evaluator if evaluator.input_shape == tuple(generator.sample_shape) else None


def project(generator: Generator, target: Tensor, steps: int = STEPS, restarts: int = RESTARTS, seed: int = 0,
            progress: Optional[Progress] = None, lock: Optional[threading.Lock] = None,
            use_features: bool = True) -> Projection:
    """The latent vector (and class) whose image is closest to `target` (1, H, W) in [-1, 1].

    Runs `steps` Adam steps on `restarts` random z at once and returns the best. A conditional run
    first screens every class (SCREEN_RESTARTS z each, for SCREEN_SHARE of the steps), then goes on
    with the `restarts` best (class, z) pairs. Works on a private copy of G (copied under `lock`, so
    other users of the generator are not held up); `progress(fraction, best distance)` is called
    about 30 times."""
    check_projectable(generator)
    if tuple(target.shape) != tuple(generator.sample_shape):
        raise ImageError(f"the target is {tuple(target.shape)}, the generator draws {tuple(generator.sample_shape)}")
    started = time.perf_counter()
    with lock if lock is not None else nullcontext():
        net = copy.deepcopy(generator.net)
    loss = _Loss(target.to(generator.device, torch.float32), feature_net(generator) if use_features else None)
    search = _Search(_private(net), loss, steps, progress)
    rng = torch.Generator().manual_seed(seed)
    classes = generator.num_classes
    class_distances: tuple[float, ...] = ()
    if classes:
        labels = torch.arange(classes).repeat_interleave(SCREEN_RESTARTS)
        z = torch.randn(len(labels), generator.config.z_dim, generator=rng)
        screened = search.run(z, labels, max(1, round(steps * SCREEN_SHARE)))
        class_distances = tuple(float(d) for d in screened.view(classes, SCREEN_RESTARTS).min(1).values)
        keep = screened.argsort()[:restarts].cpu()
        z, labels = search.z[keep], labels[keep]
    else:
        labels, z = None, torch.randn(restarts, generator.config.z_dim, generator=rng)
    final = search.run(z, labels, steps - search.done)
    best = int(final.argmin())
    z_best = search.z[best:best + 1]
    with torch.no_grad():
        image = search.net(z_best.to(generator.device), None if labels is None else labels[best:best + 1].to(generator.device))
    image = image[0].float().contiguous().cpu()
    return Projection(
        z=z_best[0].clone(), label=None if labels is None else int(labels[best]), image=image,
        distance=float(final[best]), pixel_error=float((image - target.float()).abs().mean() / 2),
        uses_features=loss.evaluator is not None, steps=steps, seconds=time.perf_counter() - started,
        class_distances=class_distances)


def _private(net: torch.nn.Module) -> torch.nn.Module:
    """A network copy for optimising its inputs: eval mode, frozen weights (no weight gradients)."""
    return net.eval().requires_grad_(False)


class _Loss:
    """Per-image distance to the target: pixel MSE plus the evaluator's feature MSE (scaled by the
    target's own feature size, which varies from digit to digit)."""

    def __init__(self, target: Tensor, evaluator: Optional[Evaluator]) -> None:
        self.target = target.unsqueeze(0)
        # NHWC: the evaluator's max-pools and conv gradients take ~15% less CPU time (the generator gains nothing)
        self.evaluator = None if evaluator is None else _private(
            copy.deepcopy(evaluator).to(target.device, memory_format=torch.channels_last))
        if self.evaluator is not None:
            with torch.no_grad():
                self.target_features = self.evaluator.features(self._nhwc(self.target))
            self.feature_scale = self.target_features.pow(2).mean().clamp_min(1e-6)

    @staticmethod
    def _nhwc(images: Tensor) -> Tensor:
        return images.contiguous(memory_format=torch.channels_last)

    def __call__(self, images: Tensor) -> Tensor:
        pixel = (images - self.target).pow(2).flatten(1).mean(1)
        if self.evaluator is None:
            return pixel
        features = self.evaluator.features(self._nhwc(images))
        return pixel + FEATURE_WEIGHT * (features - self.target_features).pow(2).mean(1) / self.feature_scale


class _Search:
    """Adam on a batch of latent vectors through a frozen generator; counts steps across runs for the progress."""

    def __init__(self, net: torch.nn.Module, loss: _Loss, total_steps: int, progress: Optional[Progress]) -> None:
        self.net, self.loss, self.total, self.progress = net, loss, max(1, total_steps), progress
        self.report_every = max(1, self.total // 30)
        self.done = 0
        self.z = torch.empty(0)

    def run(self, z: Tensor, labels: Optional[Tensor], steps: int) -> Tensor:
        """Optimise z (N, z_dim) for `steps` steps; keeps the result in self.z; returns the final distances (N,)."""
        device = self.loss.target.device
        z = z.detach().to(device).clone().requires_grad_(True)
        labels = None if labels is None else labels.to(device)
        optimiser = torch.optim.Adam([z], lr=LEARNING_RATE)
        with torch.enable_grad():
            for _ in range(steps):
                distance = self.loss(self.net(z, labels))
                prior = (z.pow(2).mean(1) - 1).pow(2)
                optimiser.zero_grad(set_to_none=True)
                (distance + PRIOR_WEIGHT * prior).sum().backward(inputs=[z])
                optimiser.step()
                self.done += 1
                if self.progress is not None and (self.done % self.report_every == 0 or self.done == self.total):
                    self.progress(min(1.0, self.done / self.total), float(distance.detach().min()))
        with torch.no_grad():
            final = self.loss(self.net(z, labels))
        self.z = z.detach().cpu()
        return final.cpu()
