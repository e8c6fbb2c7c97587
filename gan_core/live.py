"""What a live training view shows, computed next to the training loop (never in the page).

Bounded histories (so a long run keeps a fixed memory footprint), how to read D's output for
each loss, and "the police's verdict": real and fake samples framed by D's score. Nothing here
draws from the trainer's own random generator, so watching a run never changes its results.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from .images import to_uint8
from .trainer import StepRecord, Trainer

HISTORY_FIELDS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "images_per_s", "seconds")
PASS_COLOUR = (22, 163, 74)
CAUGHT_COLOUR = (220, 38, 38)


# --- bounded histories -----------------------------------------------------------------------
class RecordHistory:
    """Step records decimated to at most `cap` rows.

    Each row is the mean of `stride` consecutive steps; when the table is full, neighbouring rows
    are merged pairwise and the stride doubles. Curves stay smooth and cover the whole run.
    """

    def __init__(self, cap: int = 1000):
        self.cap = max(2, cap - cap % 2)
        self.stride = 1
        self._rows: list[np.ndarray] = []
        self._window: Optional[np.ndarray] = None
        self._window_count = 0
        self._window_last_step = 0

    def add(self, rec: StepRecord) -> None:
        """Add one step's record."""
        values = np.array([getattr(rec, name) for name in HISTORY_FIELDS], dtype=np.float64)
        if self._window is None:
            self._window, self._window_count = values, 1
        else:
            self._window += values
            self._window_count += 1
        self._window_last_step = rec.step
        if self._window_count >= self.stride:
            self._flush()

    def _flush(self) -> None:
        row = self._window / self._window_count
        row[0] = self._window_step_end  # a row sits at the last step of its window
        self._rows.append(row)
        self._window, self._window_count = None, 0
        if len(self._rows) >= self.cap:
            pairs = np.stack(self._rows).reshape(-1, 2, len(HISTORY_FIELDS))
            merged = pairs.mean(axis=1)
            merged[:, 0] = pairs[:, 1, 0]
            self._rows = list(merged)
            self.stride *= 2

    @property
    def _window_step_end(self) -> float:
        return float(self._window_last_step)

    def __len__(self) -> int:
        return len(self._rows) + (1 if self._window is not None else 0)

    def columns(self) -> dict[str, list[float]]:
        """Every field as a list (a copy), including the partly filled last window."""
        rows = list(self._rows)
        if self._window is not None:
            row = self._window / self._window_count
            row[0] = self._window_step_end
            rows.append(row)
        if not rows:
            return {name: [] for name in HISTORY_FIELDS}
        table = np.stack(rows)
        return {name: table[:, i].tolist() for i, name in enumerate(HISTORY_FIELDS)}


class SnapshotHistory:
    """At most `cap` snapshots, evenly spaced in time over the whole run.

    A snapshot is taken when `due()`; when the list is full every other one is dropped and the
    interval doubles, so the kept ones stay evenly spread (the newest is always kept).
    """

    def __init__(self, cap: int = 100, every_seconds: float = 1.0):
        self.cap = max(4, cap)
        self.every = every_seconds
        self._items: list[tuple[int, object]] = []
        self._last = -float("inf")

    def due(self, now: float) -> bool:
        """Whether a new snapshot should be taken at monotonic time `now`."""
        return now - self._last >= self.every

    def add(self, step: int, payload: object, now: float) -> None:
        """Keep `payload` (PNG bytes, a point array...) as the snapshot of `step`."""
        if self._items and self._items[-1][0] == step:
            self._items[-1] = (step, payload)
        else:
            self._items.append((step, payload))
        self._last = now
        if len(self._items) > self.cap:
            newest = self._items[-1]
            self._items = self._items[:-1][::2] + [newest]
            self.every *= 2

    def items(self) -> list[tuple[int, object]]:
        """(step, payload) pairs, oldest first (a copy of the list; payloads are shared, never mutated)."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


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


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


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
    font = _font(13)
    for i in range(len(images)):
        r, c = divmod(i, columns)
        x0, y0 = gap + c * cell_w, gap + r * cell_h
        passed = float(scores[i]) >= threshold
        colour = PASS_COLOUR if passed else CAUGHT_COLOUR
        draw.rectangle((x0, y0, x0 + tile + 2 * frame - 1, y0 + tile + 2 * frame - 1), fill=colour)
        canvas.paste(Image.fromarray(array[i]).convert("RGB").resize((tile, tile), Image.NEAREST), (x0 + frame, y0 + frame))
        value = f"{float(scores[i]):.2f}" if probability else f"{float(scores[i]):+.2f}"
        draw.text((x0 + frame + tile / 2, y0 + tile + 2 * frame + 2), value, fill=colour, font=font, anchor="ma")
    return fast_png(canvas)


def fast_png(img: Image.Image) -> bytes:
    """PNG bytes with light compression: ~5x faster than the default, a little larger (live views)."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
