"""The lesson path (gan_core/lessons.py): the list itself, that each comparison differs only in the cause it
names, the checks on made-up numbers, and each 2D lesson's effect in a short headless run (the same runs
as benchmarks/lessons.py), with the collapse warning firing on the collapse and not on healthy runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from gan_core import PRESETS
from gan_core.app.nav import PAGES
from gan_core.lessons import LESSONS, Side, check, gap_closes, get_lesson, lesson_for, police_win
from gan_core.live.pair import config_differences
from gan_core.live.quality import LiveMetrics, measure, with_collapse_warning
from gan_core.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lesson_runs", REPO / "benchmarks" / "lessons.py")
lesson_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lesson_runs)
TOY_LESSONS = [x.key for x in LESSONS if x.preset.startswith("ring8")]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_path_covers_the_concepts_in_teaching_order():
    assert [x.key for x in LESSONS] == ["game", "mlp", "dcgan", "saturating", "strong-d", "collapse", "smoothing",
                                        "conditional", "interpolation"]
    for lesson in LESSONS:
        assert lesson.title and lesson.watch.count(". ") >= 1, lesson.key
        assert bool(lesson.preset) != bool(lesson.page), "a lesson trains a run or opens a page"
        if lesson.page:
            assert lesson.page in {p.key for p in PAGES}
        else:
            assert lesson.check is not None and lesson.chart and lesson.mark and lesson.claim
            assert 0 < lesson.seconds <= 120, "each lesson fits in two minutes"


@pytest.mark.parametrize("lesson", [x for x in LESSONS if x.preset], ids=lambda x: x.key)
def test_each_lesson_starts_existing_presets_that_differ_only_in_the_named_cause(lesson):
    assert lesson.preset in PRESETS and (not lesson.fix or lesson.fix in PRESETS)
    config_a, config_b = lesson.configs()
    assert config_a.seconds == lesson.seconds and config_a.steps == 0
    assert lesson_for(lesson.preset, lesson.fix) is lesson, "the page finds the lesson back from its run"
    if lesson.is_pair:
        changed = tuple(name for name, _, _ in config_differences(config_a.to_dict(), config_b.to_dict()))
        assert changed == lesson.changes and len(changed) == 1, changed
    else:
        assert lesson.changes == ()


def test_the_tuned_mnist_presets_are_lessons_as_they_are():
    for key, preset in (("mlp", "mnist-mlp"), ("dcgan", "mnist-dcgan")):
        config, _ = get_lesson(key).configs()
        assert config.replace(seconds=0.0) == PRESETS[preset].config(), "only the time budget is the lesson's"


def history(real: list[float], fake: list[float]) -> dict:
    return {"step": list(range(1, len(real) + 1)), "d_real": real, "d_fake": fake}


def test_the_game_check_needs_the_curves_to_split_and_then_close_in():
    flat = history([0.5] * 200, [0.5] * 200)
    assert gap_closes(Side(flat)) is None, "curves that sit at 0.5 from step 0 head nowhere"
    split = history([0.9] * 200, [0.1] * 200)
    assert gap_closes(Side(split)) is None, "apart and staying apart is not the equilibrium"
    game = history([0.9] * 100 + [0.55] * 100, [0.1] * 100 + [0.45] * 100)
    moment = gap_closes(Side(game))
    assert moment is not None and 100 < moment.step <= 120 and "close in on 0.5" in moment.text


def test_the_police_win_check_reads_running_means():
    assert police_win(Side(history([0.9] * 50, [0.1] * 50))) is None
    moment = police_win(Side(history([0.9] * 50 + [0.99] * 50, [0.1] * 50 + [0.01] * 50)))
    assert moment is not None and 50 < moment.step <= 70


def test_the_collapse_warning_fires_on_a_sharp_collapse_only():
    sharp = LiveMetrics(kind="points", steps=[100, 200], covered=[2, 2], hq_fraction=[0.7, 0.8], n_modes=8,
                        collapse_threshold=6)
    assert with_collapse_warning(sharp, 100).warning == "", "too early to call"
    assert "80% of the samples sit on a mode, but on only 2 of 8 modes" in with_collapse_warning(sharp, 200).warning
    diffuse = LiveMetrics(kind="points", steps=[100, 200], covered=[2, 3], hq_fraction=[0.05, 0.1], n_modes=8,
                          collapse_threshold=6)
    assert with_collapse_warning(diffuse, 200).warning == "", "a cloud still spreading out is not a collapse"
    assert "Possible mode collapse" in with_collapse_warning(diffuse, 1500).warning


@pytest.mark.parametrize("key", TOY_LESSONS)
def test_each_2d_lesson_shows_its_effect_headless(key):
    lesson = get_lesson(key)
    moment, steps, _, runs = lesson_runs.run_lesson(lesson, max_steps=800)
    assert moment is not None, f"{key}: not seen in 800 steps"
    assert moment.step <= steps and check(lesson, *[r.side() for r in runs]) is not None
    if key == "collapse":
        assert runs[0].metrics.warning.startswith("Mode collapse"), "the warning fires on A"
        assert runs[1].metrics.warning == "", "and not on the fix"


@pytest.mark.parametrize("preset", ["ring8", "ring8-game"])
def test_no_collapse_warning_on_healthy_runs(preset):
    trainer = Trainer(PRESETS[preset].config())
    rng = torch.Generator().manual_seed(0)
    metrics = None
    for step in range(1, 1001):
        trainer.step()
        if step % 50 == 0:
            metrics = with_collapse_warning(measure(trainer, rng, metrics), step)
            assert metrics.warning == "", f"{preset} at step {step}: {metrics.warning}"
    assert metrics.covered[-1] == 8
