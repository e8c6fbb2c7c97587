"""Live quality numbers of a training run, measured in its worker thread every few seconds.

Images: FCD at 1,000 samples (with the floor real images reach), the evaluator's class histogram and
the classes covered. 2D toys: modes covered and the share of good samples (see gan_core.metrics).
A mode-collapse warning is added when coverage drops below a threshold (<= 5 of 10 classes,
< 6 of 8 ring modes, < 75% of other toys' modes; see `gan_core.metrics.collapse_reason`). Fresh noise comes from the caller's generator, so
measuring never disturbs the training's random stream.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Optional

import torch

from .. import metrics as quality
from ..errors import EvaluatorError
from ..runs import FinalMetrics
from ..trainer import Trainer

SPIRAL_SEGMENTS = 12
TOY_METRIC_SAMPLES = 2_500
SAMPLE_CHUNK = 250
COLLAPSE_WARMUP_STEPS = {"points": 1500, "image": 600}


@dataclass(frozen=True)
class LiveMetrics:
    """Quality numbers computed every few seconds in the worker (see gan_core.metrics)."""

    kind: str  # "image", "points" or "none" (no evaluator: `message` says so)
    message: str = ""
    steps: list[int] = field(default_factory=list)
    fcd: list[float] = field(default_factory=list)  # images: FCD at `fcd_n` samples, one per pass
    fcd_n: int = 0
    fcd_floor: Optional[float] = None
    histogram: list[float] = field(default_factory=list)  # images: share of samples per class (evaluator)
    covered: list[int] = field(default_factory=list)  # classes (images) or modes (points) covered, per pass
    n_modes: int = 0
    hq_fraction: list[float] = field(default_factory=list)  # points: share of samples near a mode
    per_mode: list[int] = field(default_factory=list)
    collapse_threshold: int = 0  # warn when `covered` falls below this
    warning: str = ""  # the mode-collapse warning, when coverage is too low
    seconds: float = 0.0  # how long the last pass took

    def final(self) -> FinalMetrics:
        """The latest numbers, as saved with the run."""
        if self.kind == "image" and self.fcd:
            return FinalMetrics(fcd=round(self.fcd[-1], 3), fcd_n=self.fcd_n, fcd_floor=round(self.fcd_floor or 0, 3),
                                classes_covered=self.covered[-1], n_classes=self.n_modes)
        if self.kind == "points" and self.covered:
            return FinalMetrics(modes_covered=self.covered[-1], n_modes=self.n_modes,
                                hq_fraction=round(self.hq_fraction[-1], 4))
        return FinalMetrics()


def measure(trainer: Trainer, rng: torch.Generator, previous: Optional[LiveMetrics] = None,
            keep: int = 200) -> LiveMetrics:
    """One metrics pass, appended to the trends of `previous` (at most `keep` points each)."""
    try:
        return _measure(trainer, rng, previous, keep)
    except (EvaluatorError, ValueError) as exc:
        return LiveMetrics(kind="none", message=str(exc))


def _measure(trainer: Trainer, rng: torch.Generator, previous: Optional[LiveMetrics], keep: int) -> LiveMetrics:
    def trend(name: str, value) -> list:
        """The previous pass's series for `name` with `value` appended, at most `keep` long."""
        return (getattr(previous, name) if previous else [])[-keep + 1:] + [value]

    if trainer.spec.kind == "points":
        points = trainer.sample(z=torch.randn(TOY_METRIC_SAMPLES, trainer.config.z_dim, generator=rng))
        data = trainer.data
        if data.centres is not None:
            result = quality.toy_metrics(points, data.centres, data.std)
        else:
            result = quality.curve_metrics(points, data.curve, data.std, SPIRAL_SEGMENTS)
        n = result.n_modes
        return LiveMetrics(kind="points", steps=trend("steps", trainer.step_count), n_modes=n,
                           per_mode=list(result.per_mode_counts), covered=trend("covered", result.modes_covered),
                           hq_fraction=trend("hq_fraction", result.hq_fraction),
                           collapse_threshold=6 if n == 8 else math.ceil(0.75 * n))
    if not quality.has_evaluator(trainer.config.dataset):
        return LiveMetrics(kind="none", message=f"{quality.NO_EVALUATOR_MESSAGE} ({trainer.config.dataset})")
    n = quality.LIVE_FCD_N
    z = torch.randn(n, trainer.config.z_dim, generator=rng)
    labels = torch.arange(n) % trainer.num_classes if trainer.num_classes else None  # every class equally
    chunks = [trainer.sample(z=z[i:i + SAMPLE_CHUNK], labels=None if labels is None else labels[i:i + SAMPLE_CHUNK])
              for i in range(0, n, SAMPLE_CHUNK)]
    result = quality.image_metrics(torch.cat(chunks), n=n, dataset=trainer.config.dataset)
    classes = len(result["class_histogram"])
    return LiveMetrics(kind="image", steps=trend("steps", trainer.step_count), fcd_n=n,
                       fcd_floor=float(result["fcd_floor"]), fcd=trend("fcd", float(result["fcd"])),
                       histogram=list(result["class_histogram"]), n_modes=classes,
                       covered=trend("covered", int(result["classes_covered"])),
                       collapse_threshold=classes // 2 + 1)  # 10 classes: warn at 5 or fewer


def with_collapse_warning(m: LiveMetrics, step: int, warmup_steps: Optional[int] = None) -> LiveMetrics:
    """Add the mode-collapse warning (the rule is `gan_core.metrics.collapse_reason`): coverage fell below the
    threshold after having been above it; or, on a 2D toy, it is below it while most samples sit on a mode
    (G has settled on a few); or it is still below it once the warm-up is over (early generators cover little)."""
    if m.kind == "none" or not m.covered:
        return m
    warmup_steps = COLLAPSE_WARMUP_STEPS[m.kind] if warmup_steps is None else warmup_steps
    reason = quality.collapse_reason(m.covered, m.hq_fraction, step, m.collapse_threshold, warmup_steps)
    now, best = m.covered[-1], max(m.covered)
    what = "classes" if m.kind == "image" else "modes"
    if reason == "fell":
        text = (f"Mode collapse: coverage fell from {best} to {now} of {m.n_modes} {what}. The counterfeiter is "
                f"making only a few kinds of bills that fool the police, and ignores the rest.")
    elif reason == "sharp":
        text = (f"Mode collapse: {m.hq_fraction[-1]:.0%} of the samples sit on a mode, but on only {now} of "
                f"{m.n_modes} modes. The counterfeiter has settled on the few bills that fool the police.")
    elif reason == "late":
        text = (f"Possible mode collapse: only {now} of {m.n_modes} {what} covered after {step:,} steps. "
                f"The generator keeps to a few {what} instead of the whole distribution.")
    else:
        return m
    return dataclasses.replace(m, warning=text)
