"""The police's verdict: how to read D's output for each loss, and real and fake samples framed by
D's score. Computed next to the training loop (never in the page); nothing here draws from the
trainer's own random generator, so watching a run never changes its results.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
from PIL import Image, ImageDraw
from torch import Tensor, nn

from ..images import font, png, to_uint8
from ..trainer import Trainer

PASS_COLOUR = (22, 163, 74)
CAUGHT_COLOUR = (220, 38, 38)


# --- reading D's output ----------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreScale:
    """How to read D's output for a loss: a probability or a raw score, and where 'real' begins."""

    probability: bool
    threshold: Optional[float]  # None: relative (midway between the real and fake means)
    equilibrium: Optional[float]  # the value both means reach when G fools D perfectly, if any
    label: str


def score_scale(loss_name: str) -> ScoreScale:
    """The reading of D's output for `loss_name` (see gan_core.losses)."""
    if loss_name in ("minimax", "bce"):
        return ScoreScale(True, 0.5, 0.5, "D's probability that the input is real")
    if loss_name == "lsgan":
        return ScoreScale(False, 0.5, 0.5, "D's raw score (least squares: reals pulled to 1, fakes to 0)")
    if loss_name == "hinge":
        return ScoreScale(False, 0.0, 0.0, "D's raw score (hinge: positive means 'real')")
    return ScoreScale(False, None, None, "the critic's raw score (Wasserstein: only differences matter)")


def d_scores(trainer: Trainer, x: Tensor, labels: Optional[Tensor]) -> Tensor:
    """D's reading of a batch (probability or raw score, see `score_scale`), without side effects."""
    with torch.no_grad(), scoring_mode(trainer.D):
        out = trainer.D(x.to(trainer.device), labels.to(trainer.device) if labels is not None else None).float()
    return (torch.sigmoid(out) if trainer.loss.probability_output else out).cpu()


@contextlib.contextmanager
def scoring_mode(module: nn.Module) -> Iterator[None]:
    """Score as during training (batch-norm on batch statistics) but deterministically (no dropout)
    and without side effects (running statistics restored afterwards)."""
    modes = {m: m.training for m in module.modules()}
    buffers = [b.detach().clone() for b in module.buffers()]
    try:
        for m in module.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
        yield
    finally:
        with torch.no_grad():
            for b, saved in zip(module.buffers(), buffers):
                b.copy_(saved)
        for m, mode in modes.items():
            m.training = mode


# --- the police's verdict --------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """D's scores on a batch of fakes and reals, and the framed picture of it."""

    step: int
    fake_scores: list[float]
    real_scores: list[float]
    threshold: float
    fake_pass_share: float  # share of fakes that D takes for real ("passed")
    real_pass_share: float  # share of reals that D takes for real
    fake_png: bytes  # the fakes, each framed green (passed) or red (caught) with its score; b"" for 2D points
    real_png: bytes  # the reals, framed the same way
    probability: bool


def police_verdict(trainer: Trainer, generator: torch.Generator, n: int = 16, columns: int = 8) -> Verdict:
    """Draw n fakes (fresh z from `generator`) and n reals, score them with D, and frame each tile."""
    scale = score_scale(trainer.config.loss)
    z = torch.randn(n, trainer.config.z_dim, generator=generator)
    labels = torch.randint(trainer.num_classes, (n,), generator=generator) if trainer.num_classes else None
    fake = trainer.sample(z=z, labels=labels)
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    real, real_labels = trainer.data.sample_real(n, seed=seed)
    fake_scores = d_scores(trainer, fake, labels)
    real_scores = d_scores(trainer, real, real_labels if trainer.num_classes else None)
    threshold = scale.threshold
    if threshold is None:
        threshold = float((fake_scores.mean() + real_scores.mean()) / 2)
    fake_png = real_png = b""
    if trainer.spec.kind == "image":
        fake_png = _framed_tiles(fake, fake_scores, threshold, columns, scale.probability)
        real_png = _framed_tiles(real.cpu(), real_scores, threshold, columns, scale.probability)
    return Verdict(
        step=trainer.step_count,
        fake_scores=fake_scores.tolist(),
        real_scores=real_scores.tolist(),
        threshold=threshold,
        fake_pass_share=float((fake_scores >= threshold).float().mean()),
        real_pass_share=float((real_scores >= threshold).float().mean()),
        fake_png=fake_png,
        real_png=real_png,
        probability=scale.probability,
    )


def _framed_tiles(images: Tensor, scores: Tensor, threshold: float, columns: int, probability: bool) -> bytes:
    """One PNG of tiles upscaled for display, each in a green (passed) / red (caught) frame over its score."""
    array = to_uint8(images)
    side = images.shape[-1]
    zoom = max(1, 72 // side)
    tile, frame, caption, gap = side * zoom, 4, 18, 6
    cell_w, cell_h = tile + 2 * frame + gap, tile + 2 * frame + caption + gap
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i in range(len(images)):
        r, c = divmod(i, columns)
        x0, y0 = gap + c * cell_w, gap + r * cell_h
        passed = float(scores[i]) >= threshold
        colour = PASS_COLOUR if passed else CAUGHT_COLOUR
        draw.rectangle((x0, y0, x0 + tile + 2 * frame - 1, y0 + tile + 2 * frame - 1), fill=colour)
        canvas.paste(Image.fromarray(array[i]).convert("RGB").resize((tile, tile), Image.NEAREST), (x0 + frame, y0 + frame))
        value = f"{float(scores[i]):.2f}" if probability else f"{float(scores[i]):+.2f}"
        mask = _caption_mask(value)
        canvas.paste(colour, (x0 + frame + (tile - mask.width) // 2, y0 + tile + 2 * frame + 2), mask)
    return png(canvas, fast=True)


@functools.lru_cache(maxsize=1024)
def _caption_mask(text: str) -> Image.Image:
    """The tile caption `text` as an alpha mask, rendered once: drawing text was a fifth of a verdict's cost,
    and probabilities take only about a hundred values at two decimals."""
    small = font(13)
    left, top, right, bottom = small.getbbox(text)
    mask = Image.new("L", (right - left, bottom))
    ImageDraw.Draw(mask).text((-left, 0), text, fill=255, font=small)
    return mask
