"""The lesson path: one lesson per concept, in teaching order, and how to tell that each has shown its effect.

A lesson is a run (a preset), an A/B pair (a preset and its `fix`, which differs from it only in the
`changes` fields) or a page that explores a pretrained generator. Each training lesson has a *check*: a
pure function of the live numbers (the step history and the quality series of each side) that finds
the moment the lesson is about (the step where D(x) and D(G(z)) close in, where the police win outright,
where modes are lost) and says it in words. The Lessons page marks that moment on its chart; the tests
run the same checks headless. No Streamlit here; the numbers come in as plain dicts and lists.

Each preset behind a lesson was chosen with quick headless runs (seeds 0, 1 and 2, 1 torch thread) so that
its effect shows within a few hundred steps (the image lessons: under 1,000), which the app reaches inside
two minutes on a 2-core CPU (benchmarks/lessons.py; the README lists the measured times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .config import PRESETS, TrainConfig
from .metrics import collapse_index

SMOOTH_STEPS = 20  # the checks read 20-step running means: single steps are noisy


@dataclass(frozen=True)
class Moment:
    """The step a lesson's effect shows, and what happened there (one line, for the chart and the page)."""

    step: int
    text: str


@dataclass(frozen=True)
class Side:
    """What a check reads of one side of a lesson: the step history (columns step, d_real, d_fake,
    grad_norm_g, ...) and the live quality series (None before the first pass)."""

    history: dict[str, Sequence[float]]
    metrics: Any = None  # gan_core.live.quality.LiveMetrics (steps, covered, hq_fraction, fcd, ...)
    config: Optional[dict[str, Any]] = None  # the side's TrainConfig as a dict


@dataclass(frozen=True)
class Lesson:
    """One card of the lesson path."""

    key: str
    title: str
    watch: str  # two sentences: what to watch, and what it means
    preset: str = ""  # the run it starts (side A of a pair); "" for an explorer lesson
    fix: str = ""  # side B of an A/B pair: the preset without the cause
    changes: tuple[str, ...] = ()  # the only fields in which `fix` differs from `preset`
    page: str = ""  # an explorer lesson opens this page of the app
    seconds: float = 120.0  # the training budget the lesson starts with
    chart: str = ""  # the chart that carries the moment: scores, grad, coverage, fcd
    mark: str = ""  # the moment's label on that chart (a few words)
    claim: str = ""  # what the check looks for, in words (shown until it is seen)
    check: Optional[Callable[[Side, Optional[Side]], Optional[Moment]]] = None

    @property
    def is_pair(self) -> bool:
        """True when the lesson is an A/B comparison."""
        return bool(self.fix)

    def configs(self) -> tuple[TrainConfig, Optional[TrainConfig]]:
        """The configs it starts: A's (or the single run's) and B's (None for a single run), with the
        lesson's time budget."""
        if not self.preset:
            raise ValueError(f"lesson {self.key!r} opens a page; it trains nothing")
        a = PRESETS[self.preset].config(seconds=self.seconds, steps=0)
        return a, (PRESETS[self.fix].config(seconds=self.seconds, steps=0) if self.fix else None)


# --- the checks ---------------------------------------------------------------------------------
def _running(history: dict, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, the column's running mean over SMOOTH_STEPS rows); empty until that many rows exist."""
    steps = np.asarray(history.get("step", []), dtype=np.float64)
    values = np.asarray(history.get(column, []), dtype=np.float64)
    n = min(len(steps), len(values))
    if n < SMOOTH_STEPS:
        return np.empty(0), np.empty(0)
    kernel = np.ones(SMOOTH_STEPS) / SMOOTH_STEPS
    return steps[SMOOTH_STEPS - 1:n], np.convolve(values[:n], kernel, mode="valid")


def _aligned(a: Side, b: Side, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Running means of `column` on both sides at the steps both have reached."""
    steps_a, va = _running(a.history, column)
    steps_b, vb = _running(b.history, column)
    n = min(len(steps_a), len(steps_b))
    return steps_a[:n], va[:n], vb[:n]


def gap_closes(a: Side, b: Optional[Side] = None, opened: float = 0.5, closed: float = 0.2) -> Optional[Moment]:
    """The game: D(x) - D(G(z)) first opens to at least `opened` (the police learn first), then closes to
    `closed` or less (the counterfeiter catches up); the moment is where it closes."""
    steps, real = _running(a.history, "d_real")
    _, fake = _running(a.history, "d_fake")
    gap = real - fake
    wide = np.flatnonzero(gap >= opened)
    if not len(wide):
        return None
    peak = wide[0] + int(np.argmax(gap[wide[0]:]))
    after = np.flatnonzero(gap[peak:] <= closed)
    if not len(after):
        return None
    i = peak + after[0]
    return Moment(int(steps[i]), f"D(x) {real[i]:.2f} and D(G(z)) {fake[i]:.2f} close in on 0.5 "
                                 f"(the gap was {gap[peak]:.2f} at step {int(steps[peak]):,})")


def police_win(a: Side, b: Optional[Side] = None, real_at: float = 0.95, fake_at: float = 0.05) -> Optional[Moment]:
    """The police win outright: D(x) at least `real_at` and D(G(z)) at most `fake_at` (running means)."""
    steps, real = _running(a.history, "d_real")
    _, fake = _running(a.history, "d_fake")
    won = np.flatnonzero((real >= real_at) & (fake <= fake_at))
    if not len(won):
        return None
    i = won[0]
    return Moment(int(steps[i]), f"the police win outright: D(x) {real[i]:.2f}, D(G(z)) {fake[i]:.2f}")


def gradient_vanishes(a: Side, b: Optional[Side], ratio: float = 0.05, fake_at: float = 0.05) -> Optional[Moment]:
    """Saturation: A's fakes are caught (D(G(z)) at most `fake_at`) and A's generator gradient is at most
    `ratio` of B's at the same step."""
    if b is None:
        return None
    steps, grad_a, grad_b = _aligned(a, b, "grad_norm_g")
    _, fake_a, _ = _aligned(a, b, "d_fake")
    hit = np.flatnonzero((fake_a <= fake_at) & (grad_a <= ratio * grad_b))
    if not len(hit):
        return None
    i = hit[0]
    return Moment(int(steps[i]), f"A's gradient vanishes: G's gradient norm {grad_a[i]:.3g} on A against {grad_b[i]:.3g} "
                                 f"on B ({grad_b[i] / max(grad_a[i], 1e-12):,.0f}x)")


def confidence_capped(a: Side, b: Optional[Side], real_at: float = 0.97) -> Optional[Moment]:
    """Label smoothing: A's D(x) reaches `real_at` while B's stays within 0.02 of B's smoothed target."""
    if b is None:
        return None
    steps, real_a, real_b = _aligned(a, b, "d_real")
    target = 1.0 - float((b.config or {}).get("label_smoothing", 0.0))
    hit = np.flatnonzero((real_a >= real_at) & (real_b <= target + 0.02))
    if not len(hit):
        return None
    i = hit[0]
    return Moment(int(steps[i]), f"D(x) {real_a[i]:.2f} without smoothing, {real_b[i]:.2f} with it (its target is {target:g})")


def collapse_and_fix(a: Side, b: Optional[Side], fixed_modes: int = 7, good: float = 0.3) -> Optional[Moment]:
    """Mode collapse: the collapse warning's rule fires on A, while B covers at least `fixed_modes` modes with at
    least `good` of its samples close to a mode (a diffuse cloud touches every mode and covers nothing)."""
    if b is None or a.metrics is None or b.metrics is None or not b.metrics.covered:
        return None
    m = a.metrics
    i = collapse_index(m.covered, m.hq_fraction, m.steps, m.collapse_threshold)
    if i is None or b.metrics.covered[-1] < fixed_modes or b.metrics.hq_fraction[-1] < good:
        return None
    return Moment(int(m.steps[i]), f"A collapses onto {m.covered[i]} of {m.n_modes} modes "
                                   f"({m.hq_fraction[i]:.0%} good samples); B now covers {b.metrics.covered[-1]} of {b.metrics.n_modes} "
                                   f"({b.metrics.hq_fraction[-1]:.0%} good)")


def digits_appear(a: Side, b: Optional[Side] = None, factor: float = 0.5, classes: int = 8) -> Optional[Moment]:
    """Images: the live FCD falls to `factor` of its first value or less, with at least `classes` classes drawn."""
    m = a.metrics
    if m is None or getattr(m, "kind", "") != "image" or len(m.fcd) < 2:
        return None
    fcd_steps = m.steps[-len(m.fcd):]
    covered = m.covered[-len(m.fcd):]
    for i in range(1, len(m.fcd)):
        if m.fcd[i] <= factor * m.fcd[0] and covered[i] >= classes:
            return Moment(int(fcd_steps[i]), f"FCD {m.fcd[i]:.0f} (from {m.fcd[0]:.0f}), {covered[i]} of {m.n_modes} classes drawn")
    return None


# --- the path -----------------------------------------------------------------------------------
LESSONS: tuple[Lesson, ...] = (
    Lesson("game", "The game and its 0.5 equilibrium",
           "Here the counterfeiter learns 10x slower than the police, so D(x) and D(G(z)) first split apart: the police "
           "win the first round. Then G catches up and both curves close in on 0.5, where the police can only guess; "
           "they settle near 0.55 / 0.45, close to the line but not on it.",
           preset="ring8-game", seconds=120, chart="scores", mark="the curves close in",
           claim="the gap D(x) - D(G(z)) opens to 0.5 and closes to 0.2", check=gap_closes),
    Lesson("mlp", "The original GAN: two MLPs",
           "Goodfellow's 2014 GAN: fully connected G and D on 5,000 MNIST digits. Watch noise turn into blurry strokes "
           "and then digits, and the FCD (distance to real digits) fall while more of the 10 classes appear.",
           preset="mnist-mlp", seconds=120, chart="fcd", mark="digits",
           claim="FCD falls to half its first value with 8 or more of 10 classes drawn", check=digits_appear),
    Lesson("dcgan", "DCGAN: convolutions",
           "The same game with transposed convolutions and batchnorm (Radford 2015). Compare with the MLP: strokes are "
           "sharper and local, and the FCD falls further in the same two minutes.",
           preset="mnist-dcgan", seconds=120, chart="fcd", mark="digits",
           claim="FCD falls to half its first value with 8 or more of 10 classes drawn", check=digits_appear),
    Lesson("saturating", "Saturating vs non-saturating loss",
           "Both sides face police who win at once (G learns 100x slower); only G's loss differs. With the original "
           "log(1 - D(G(z))) (A), G's gradient all but vanishes once its fakes are caught, so it stays lost; with the "
           "non-saturating -log D(G(z)) (B) it keeps a gradient tens to hundreds of times larger and claws back.",
           preset="ring8-saturating", fix="ring8-strong-d", changes=("loss",), seconds=120, chart="grad", mark="A's gradient vanishes",
           claim="A's D(G(z)) at 0.05 or less with G's gradient under 5% of B's", check=gradient_vanishes),
    Lesson("strong-d", "A discriminator that wins outright",
           "A's counterfeiter learns 100x slower than B's (the only difference): within about 50 steps A's police "
           "say 1 to every real point and 0 to every fake. B plays the normal game around 0.5; A, even with the "
           "non-saturating loss, later claws back only onto one or two modes.",
           preset="ring8-strong-d", fix="ring8", changes=("lr_g",), seconds=120, chart="scores", mark="the police win outright",
           claim="A's D(x) at 0.95 or more and D(G(z)) at 0.05 or less", check=police_win),
    Lesson("collapse", "Mode collapse, and a fix",
           "A's police take 3 steps for each of a slow counterfeiter's: G finds the two modes that fool them and makes "
           "only those, and the collapse warning fires. B is the same run with spectral normalisation in D (the only "
           "change), which caps how steep the police's verdict can get: its generator spreads over the whole ring.",
           preset="ring8-collapse", fix="ring8-collapse-sn", changes=("spectral_norm",), seconds=120, chart="coverage", mark="modes lost on A",
           claim="the collapse warning fires on A while B covers 7 or more of 8 modes with 30% or more good samples",
           check=collapse_and_fix),
    Lesson("smoothing", "One-sided label smoothing",
           "Against a counterfeiter that learns 100x slower, A's police grow certain: D(x) goes to 1. B is trained to "
           "say 0.9 for real points (smoothing 0.1, the only change), so its D(x) stops at 0.9: a less over-confident "
           "judge. On the ring it does not save the modes in two minutes; it is the confidence that changes.",
           preset="ring8-strong-d", fix="ring8-smoothing", changes=("label_smoothing",), seconds=120, chart="scores", mark="D(x) capped on B",
           claim="A's D(x) reaches 0.97 while B's stays at its 0.9 target", check=confidence_capped),
    Lesson("conditional", "Conditional GAN: choose the class",
           "A conditional GAN is told which digit to draw: the label joins z in G and the image in D. On Class control, "
           "the pretrained generator draws one row per class from the same z's: same style, another digit.",
           page="class"),
    Lesson("interpolation", "Walking the latent space",
           "Two latent points, a slider between them: the drawing morphs smoothly from one digit to another, which "
           "shows G learned a continuous space, not a lookup table. Try slerp and lerp.",
           page="latent"),
)
_BY_KEY = {lesson.key: lesson for lesson in LESSONS}


def get_lesson(key: str) -> Lesson:
    """The lesson called `key` (KeyError if none)."""
    return _BY_KEY[key]


def lesson_for(preset_a: str, preset_b: str = "") -> Optional[Lesson]:
    """The training lesson that starts exactly this run (`preset_b` "") or this A/B pair, if any."""
    return next((x for x in LESSONS if x.preset and (x.preset, x.fix) == (preset_a, preset_b)), None)


def check(lesson: Lesson, a: Side, b: Optional[Side] = None) -> Optional[Moment]:
    """The moment the lesson's effect shows in these numbers, or None while it has not (yet)."""
    return lesson.check(a, b) if lesson.check is not None else None
