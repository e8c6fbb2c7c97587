"""The 2D lab's numbers: D's decision surface over the plane, and where G's gradient pushes its points.

For a 2D toy run, `lab_view` evaluates the discriminator on a grid (the heatmap behind the points)
and the gradient of the generator's loss with respect to each generated point: -d loss_G / d x is
the direction that point would move if G could move it freely; the generator's weights follow the
sum of these pushes. `split_step` runs one training iteration and returns three views: before,
after the police (D) update, after the counterfeiter (G) update.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .verdict import d_scores, score_scale, scoring_mode
from ..trainer import StepRecord, Trainer

EXTENT = 1.3  # the plane shown: [-EXTENT, EXTENT]^2 (the toy data lives in [-1, 1]^2)
RESOLUTION = 64
ARROWS = 40
# Arrow length = MAX_ARROW * tanh(|push| / PUSH_SCALE): a fixed scale (not per frame), so a vanishing
# gradient (the saturating-loss lesson) shows as arrows that really shrink.
MAX_ARROW = 0.2
PUSH_SCALE = 1.5


@dataclass(frozen=True)
class LabView:
    """Everything the 2D plot of one moment shows (numpy arrays, safe to hand to another thread)."""

    step: int
    grid: np.ndarray  # (RESOLUTION,) coordinates of the heatmap's rows and columns
    surface: np.ndarray  # (RESOLUTION, RESOLUTION) D's reading, surface[i, j] at (x=grid[j], y=grid[i])
    real: np.ndarray  # (N, 2) real points
    fake: np.ndarray  # (M, 2) generated points (fixed noise, so they move smoothly between views)
    fake_scores: np.ndarray  # (M,) D's reading of each generated point
    arrow_start: np.ndarray  # (K, 2) the generated points that carry an arrow
    arrow_end: np.ndarray  # (K, 2) start + the displayed push
    push_norm: float  # mean |d loss_G / d x| over the arrow points: how hard G is being pushed
    threshold: float  # the reading above which D calls a point real
    probability: bool
    label: str = ""  # e.g. "after the police's update"


def real_reference(trainer: Trainer, n: int = 512) -> Tensor:
    """A fixed sample of real points to draw (the same every call)."""
    real, _ = trainer.data.sample_real(n, seed=12345)
    return real.cpu()


def generator_push(trainer: Trainer, points: Tensor) -> Tensor:
    """-d loss_G / d x for each point x, as if each were a generated sample (per point, not averaged)."""
    x = points.detach().to(trainer.device).float().clone().requires_grad_(True)
    with scoring_mode(trainer.D):
        out = trainer.D(x, None)
        loss = trainer.loss.g_loss(out.float()) * len(x)  # the loss is a mean: undo it for per-point pushes
        (grad,) = torch.autograd.grad(loss, x)
    return (-grad).detach().cpu()


def lab_view(trainer: Trainer, real: Optional[Tensor] = None, fake: Optional[Tensor] = None,
             resolution: int = RESOLUTION, arrows: int = ARROWS, label: str = "") -> LabView:
    """The plane right now: D's surface, real and generated points, and G's push on some of them.

    `fake` overrides the generated points (used to show the old points under the new D)."""
    if trainer.spec.kind != "points":
        raise ValueError("the 2D lab needs a 2D toy run (ring8, grid25 or spiral)")
    scale = score_scale(trainer.config.loss)
    real = real_reference(trainer) if real is None else real
    fake = trainer.sample_fixed() if fake is None else fake
    grid = torch.linspace(-EXTENT, EXTENT, resolution)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    plane = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    surface = d_scores(trainer, plane, None).reshape(resolution, resolution)
    fake_scores = d_scores(trainer, fake, None)
    threshold = scale.threshold
    if threshold is None:
        threshold = float((fake_scores.mean() + d_scores(trainer, real, None).mean()) / 2)
    start = fake[:arrows]
    push = generator_push(trainer, start)
    norm = push.norm(dim=1, keepdim=True)
    shown = push / norm.clamp(min=1e-12) * (MAX_ARROW * torch.tanh(norm / PUSH_SCALE))
    return LabView(
        step=trainer.step_count,
        grid=grid.numpy(),
        surface=surface.numpy(),
        real=real.numpy(),
        fake=fake.numpy(),
        fake_scores=fake_scores.numpy(),
        arrow_start=start.numpy(),
        arrow_end=(start + shown).numpy(),
        push_norm=float(norm.mean()) if len(norm) else 0.0,
        threshold=threshold,
        probability=scale.probability,
        label=label,
    )


def split_step(trainer: Trainer) -> tuple[StepRecord, list[LabView]]:
    """One training iteration shown in slow motion: views before it, after D's update(s), after G's update.

    Exact without splitting the trainer: the generated points only depend on G, so the old points
    under the new D are the 'after D' picture, and their arrows are the push the G update followed.
    """
    real = real_reference(trainer)
    before = lab_view(trainer, real=real, label="before the step")
    rec = trainer.step()
    k = trainer.config.d_steps
    after_d = lab_view(trainer, real=real, fake=torch.from_numpy(before.fake),
                       label=f"after the police's update{'s' if k > 1 else ''} (D x{k})")
    after_g = lab_view(trainer, real=real, label="after the counterfeiter's update (G)")
    return rec, [before, after_d, after_g]


def mean_displacement(a: LabView, b: LabView) -> float:
    """How far the generated points moved between two views (mean Euclidean distance)."""
    if a.fake.shape != b.fake.shape:
        return math.nan
    return float(np.linalg.norm(a.fake - b.fake, axis=1).mean())
