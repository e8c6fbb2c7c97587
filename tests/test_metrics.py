"""Tests of gan_core.metrics: Fréchet distance, FCD, mode coverage, class control, 2D toy metrics,
the evaluator file checks, and the evaluator's accuracy on the real MNIST test split."""

from __future__ import annotations

import functools
import importlib.util
import math
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from gan_core import evaluator as evaluator_module  # noqa: E402
from gan_core import metrics  # noqa: E402
from gan_core.errors import EvaluatorError, GanError  # noqa: E402

SHARED_DATASETS = REPO.parent / "shared" / "datasets"
MNIST_RAW = SHARED_DATASETS / "MNIST" / "raw"


@functools.cache
def _train_script():
    spec = importlib.util.spec_from_file_location("train_evaluator", REPO / "benchmarks" / "train_evaluator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _random_spd(d: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


def _mnist_5k_class(digit: int) -> torch.Tensor:
    images, labels = _train_script().mnist_5k()
    return images[labels == digit]


# ---------------------------------------------------------------------------------------------
# Fréchet distance


def test_frechet_distance_of_identical_gaussians_is_zero():
    sigma = _random_spd(64, seed=1)
    mu = torch.randn(64, dtype=torch.float64)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    gen = torch.Generator().manual_seed(2)
    mu1, mu2 = (torch.randn(32, generator=gen, dtype=torch.float64) for _ in range(2))
    var1, var2 = (torch.rand(32, generator=gen, dtype=torch.float64) + 0.1 for _ in range(2))
    expected = float(((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * (var1 * var2).sqrt()).sum())
    got = metrics.frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_matches_eigenvalues_of_the_product_for_full_covariances():
    s1, s2 = _random_spd(16, seed=3), _random_spd(16, seed=4)
    mu1, mu2 = torch.zeros(16, dtype=torch.float64), torch.ones(16, dtype=torch.float64)
    # Independent route: tr(sqrtm(S1 S2)) = sum of sqrt of the (real, positive) eigenvalues of S1 S2.
    cross = torch.linalg.eigvals(s1 @ s2).real.clamp(min=0).sqrt().sum()
    expected = float(16 + torch.trace(s1) + torch.trace(s2) - 2 * cross)
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_feature_stats_are_float64_mean_and_unbiased_covariance():
    x = torch.randn(500, 8)
    mu, sigma = metrics.feature_stats(x)
    assert mu.dtype == sigma.dtype == torch.float64
    assert torch.allclose(sigma, torch.cov(x.double().T))
    assert torch.allclose(mu, x.double().mean(0))


# ---------------------------------------------------------------------------------------------
# FCD


def test_fcd_of_real_images_is_near_the_floor_and_noise_is_far():
    floor = metrics.fcd_floor(1000)
    real = metrics.real_training_images(1000, seed=99)  # a different sample than the floor's
    noise = torch.rand(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    real_fcd, noise_fcd = metrics.fcd(real, 1000), metrics.fcd(noise, 1000)
    assert floor > 0
    assert 0.5 * floor < real_fcd < 2 * floor
    assert noise_fcd > 50 * floor


def test_fcd_floor_is_cached_and_shrinks_with_more_samples():
    assert metrics.fcd_floor(1000) == metrics.fcd_floor(1000)
    assert 0 < metrics.fcd_floor(5000) < metrics.fcd_floor(1000)


def test_fcd_uses_exactly_n_samples():
    real = metrics.real_training_images(300, seed=5)
    with pytest.raises(ValueError, match="fixed n=500"):
        metrics.fcd(real, 500)
    assert metrics.fcd(real, 200) == pytest.approx(metrics.fcd(real[:200], 200))


def test_image_metrics_agree_with_the_separate_functions():
    images = metrics.real_training_images(1000, seed=11)
    result = metrics.image_metrics(images, n=1000)
    assert set(result) == {"fcd", "fcd_n", "fcd_floor", "class_histogram", "classes_covered", "kl_uniform"}
    assert result["fcd"] == pytest.approx(metrics.fcd(images, 1000))
    assert result["fcd_floor"] == metrics.fcd_floor(1000)
    coverage = metrics.mode_coverage(images)
    assert result["class_histogram"] == pytest.approx(coverage.histogram)
    assert result["classes_covered"] == coverage.classes_covered == 10


# ---------------------------------------------------------------------------------------------
# Mode coverage and class control


def test_coverage_of_one_class_is_one_mode_with_kl_log10():
    coverage = metrics.mode_coverage(_mnist_5k_class(3))
    assert coverage.classes_covered == 1
    assert max(coverage.histogram) == coverage.histogram[3]
    assert coverage.kl_uniform == pytest.approx(math.log(10), abs=0.15)


def test_coverage_of_a_balanced_real_set_is_ten_modes_with_small_kl():
    coverage = metrics.mode_coverage(metrics.real_training_images(2000, seed=3))
    assert coverage.classes_covered == 10
    assert coverage.kl_uniform < 0.02
    assert sum(coverage.histogram) == pytest.approx(1.0)


def test_coverage_from_constructed_predictions():
    one = metrics.coverage_from_predictions(torch.zeros(100, dtype=torch.long), 10)
    assert (one.classes_covered, one.histogram[0]) == (1, 1.0)
    assert one.kl_uniform == pytest.approx(math.log(10))
    even = metrics.coverage_from_predictions(torch.arange(10).repeat(10), 10)
    assert (even.classes_covered, even.kl_uniform) == (10, pytest.approx(0.0, abs=1e-12))
    # 1% share is below the 2% threshold: the class is not counted as covered.
    rare = metrics.coverage_from_predictions(torch.tensor([0] * 99 + [1]), 10)
    assert rare.classes_covered == 1


def test_class_control_accuracy_of_a_perfect_and_a_broken_generator():
    by_digit = torch.stack([_mnist_5k_class(k)[:100] for k in range(10)])  # (10, 100, 1, 28, 28)

    def perfect(labels: torch.Tensor) -> torch.Tensor:
        return by_digit[labels, torch.arange(labels.shape[0]) % 100]

    def always_zero(labels: torch.Tensor) -> torch.Tensor:
        return by_digit[0, torch.arange(labels.shape[0]) % 100]

    good = metrics.class_control_accuracy(perfect, n_per_class=100)
    assert good.accuracy > 0.97 and len(good.per_class) == 10
    bad = metrics.class_control_accuracy(always_zero, n_per_class=100)
    assert bad.per_class[0] > 0.97
    assert bad.accuracy == pytest.approx(0.1, abs=0.02)


# ---------------------------------------------------------------------------------------------
# 2D toys


def _ring8() -> torch.Tensor:
    angles = torch.arange(8) * 2 * math.pi / 8
    return torch.stack([2 * angles.cos(), 2 * angles.sin()], 1)


def test_toy_points_exactly_at_all_centres_cover_every_mode():
    centres = _ring8()
    result = metrics.toy_metrics(centres.repeat(10, 1), centres, std=0.02)
    assert (result.modes_covered, result.n_modes, result.hq_fraction) == (8, 8, 1.0)
    assert result.per_mode_counts == [10] * 8


def test_toy_points_at_one_mode_cover_one():
    centres = _ring8()
    result = metrics.toy_metrics(centres[2].repeat(100, 1) + 0.01, centres, std=0.02)
    assert result.modes_covered == 1
    assert result.per_mode_counts[2] == 100 and result.hq_fraction == 1.0


def test_toy_points_far_away_are_not_high_quality():
    result = metrics.toy_metrics(torch.full((50, 2), 100.0), _ring8(), std=0.02)
    assert (result.modes_covered, result.hq_fraction) == (0, 0.0)


def test_toy_high_quality_threshold_is_three_std():
    centre = torch.zeros(1, 2)
    inside = metrics.toy_metrics(torch.tensor([[0.029, 0.0]]), centre, std=0.01)
    outside = metrics.toy_metrics(torch.tensor([[0.031, 0.0]]), centre, std=0.01)
    assert inside.hq_fraction == 1.0 and outside.hq_fraction == 0.0


def _spiral(m: int = 2000) -> torch.Tensor:
    t = torch.linspace(0.5, 3 * math.pi, m, dtype=torch.float64)
    return torch.stack([t * t.cos(), t * t.sin()], 1) / 3


def test_curve_metrics_on_and_off_the_spiral():
    curve = _spiral()
    on_curve = metrics.curve_metrics(curve[::4], curve, std=0.05, n_segments=10)
    assert (on_curve.modes_covered, on_curve.n_modes, on_curve.hq_fraction) == (10, 10, 1.0)
    # Segments have equal arc length, so the first quarter of the arc reaches into segment 3 of 10.
    arc = torch.cat([torch.zeros(1), (curve[1:] - curve[:-1]).norm(dim=1).cumsum(0)])
    first_quarter = curve[arc <= arc[-1] * 0.25]
    partial = metrics.curve_metrics(first_quarter, curve, std=0.05, n_segments=10)
    assert partial.modes_covered == 3 and partial.hq_fraction == 1.0
    far = metrics.curve_metrics(torch.full((20, 2), 50.0), curve, std=0.05, n_segments=10)
    assert (far.modes_covered, far.hq_fraction) == (0, 0.0)


def test_toy_metrics_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        metrics.toy_metrics(torch.zeros(5, 3), _ring8(), std=0.1)


# ---------------------------------------------------------------------------------------------
# Evaluator files


def _assert_clear_error(exc: pytest.ExceptionInfo, file: Path) -> None:
    message = str(exc.value)
    assert file.name in message
    assert "train_evaluator.py" in message
    assert "\n" not in message and "Traceback" not in message
    assert isinstance(exc.value, GanError)


def test_garbage_evaluator_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"\xff" * 64 + b"not a model")
    with pytest.raises(EvaluatorError, match="corrupt or truncated") as exc:
        metrics.load_evaluator(path=bad)
    _assert_clear_error(exc, bad)


def test_truncated_evaluator_file_is_a_clear_error(tmp_path):
    original, _ = metrics.evaluator_paths("mnist")
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(original.read_bytes()[: original.stat().st_size // 2])
    with pytest.raises(EvaluatorError, match="corrupt or truncated") as exc:
        metrics.load_evaluator(path=bad)
    _assert_clear_error(exc, bad)


def test_bit_flip_in_the_weights_fails_the_checksum(tmp_path):
    original, _ = metrics.evaluator_paths("mnist")
    raw = bytearray(original.read_bytes())
    raw[-100] ^= 0x01
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(EvaluatorError, match="checksum") as exc:
        metrics.load_evaluator(path=bad)
    _assert_clear_error(exc, bad)


def test_wrong_shaped_evaluator_file_is_a_clear_error(tmp_path):
    state = metrics.Evaluator((1, 28, 28)).state_dict()
    state["fc.weight"] = torch.zeros(64, 3136)
    meta = {"format": metrics.EVALUATOR_FORMAT, "dataset": "mnist", "input_shape": "1,28,28",
            "num_classes": "10", "feature_dim": "128"}
    bad = tmp_path / "wrong_shape.safetensors"
    metrics.save_asset(bad, state, meta)
    with pytest.raises(EvaluatorError, match="names or shapes") as exc:
        metrics.load_evaluator(path=bad)
    _assert_clear_error(exc, bad)


def test_missing_evaluator_file_is_a_clear_error(tmp_path):
    with pytest.raises(EvaluatorError, match="missing") as exc:
        metrics.load_evaluator(path=tmp_path / "nowhere.safetensors")
    _assert_clear_error(exc, tmp_path / "nowhere.safetensors")


def test_stats_of_another_evaluator_are_rejected(tmp_path):
    _, stats_file = metrics.evaluator_paths("mnist")
    other = metrics.Evaluator()
    other.data_sha256 = "0" * 64
    copy = tmp_path / "stats.safetensors"
    copy.write_bytes(stats_file.read_bytes())
    with pytest.raises(EvaluatorError, match="different evaluator"):
        metrics.load_reference_stats("mnist", path=copy, evaluator=other)


def test_bundled_evaluator_loads_once_across_threads():
    metrics.clear_caches()
    loaded: list[metrics.Evaluator] = []
    threads = [threading.Thread(target=lambda: loaded.append(metrics.load_evaluator("mnist-5k"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loaded) == 4 and all(e is loaded[0] for e in loaded)
    evaluator = loaded[0]
    assert not evaluator.training
    x = metrics.real_training_images(8)
    with torch.no_grad():
        assert evaluator.features(x).shape == (8, 128)
        assert evaluator(x).shape == (8, 10)


def test_has_evaluator(tmp_path, monkeypatch):
    assert metrics.has_evaluator("mnist") and metrics.has_evaluator("mnist-5k")
    assert not metrics.has_evaluator("folder") and not metrics.has_evaluator("ring8")
    monkeypatch.setattr(evaluator_module, "ASSETS_DIR", tmp_path)
    assert not metrics.has_evaluator("fashion-mnist") and not metrics.has_evaluator("cifar10")
    with pytest.raises(EvaluatorError, match=metrics.NO_EVALUATOR_MESSAGE):
        metrics.load_evaluator("cifar10")
    for path in metrics.evaluator_paths("cifar10"):
        path.write_bytes(b"")
    assert metrics.has_evaluator("cifar10")
    assert metrics.evaluator_paths("cifar10")[0].name == "cifar10_evaluator.safetensors"


def test_evaluator_builds_from_the_input_shape():
    colour = metrics.Evaluator((3, 32, 32))
    x = torch.zeros(2, 3, 32, 32)
    assert colour.features(x).shape == (2, 128) and colour(x).shape == (2, 10)


def test_training_script_without_data_prints_a_clear_error(tmp_path, capsys):
    code = _train_script().main(["--dataset", "fashion-mnist", "--data-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "fashion-mnist" in err and "--download" in err


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Uncompressed IDX (what torchvision leaves after extracting its download)."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_training_script_end_to_end_on_a_small_fake_fashion_mnist(tmp_path, monkeypatch):
    script = _train_script()
    raw = tmp_path / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 300), ("t10k", 100)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "README.md").write_text("# Assets\n\nkeep me\n")
    monkeypatch.setattr(evaluator_module, "ASSETS_DIR", assets)
    monkeypatch.setattr(script, "ASSETS_DIR", assets)
    monkeypatch.setattr(script, "FLOOR_NS", (100, 1000))
    try:
        assert not metrics.has_evaluator("fashion-mnist")
        code = script.main(["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "data"), "--epochs", "1"])
        assert code == 0
        assert metrics.has_evaluator("fashion-mnist")
        assert metrics.load_evaluator("fashion-mnist").input_shape == (1, 28, 28)
        assert metrics.fcd_floor(100, "fashion-mnist") > 0
        with pytest.raises(EvaluatorError, match="n=1000"):  # only 300 training images: no floor at 1000
            metrics.fcd_floor(1000, "fashion-mnist")
        readme = (assets / "README.md").read_text()
        assert "keep me" in readme and "fashion-mnist --data-dir" in readme
        for path in metrics.evaluator_paths("fashion-mnist"):
            assert script.sha256_of(path) in readme
    finally:
        metrics.clear_caches()


def test_colour_augmentation_keeps_the_shape_and_range():
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    out = _train_script().augment(x, torch.Generator().manual_seed(0), colour=True)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1


def test_metrics_module_does_not_import_streamlit():
    source = (REPO / "gan_core" / "metrics.py").read_text()
    assert "streamlit" not in source


# ---------------------------------------------------------------------------------------------
# The evaluator on real data


@pytest.mark.skipif(not MNIST_RAW.is_dir(), reason=f"real MNIST test split not available at {MNIST_RAW}")
def test_evaluator_accuracy_on_the_real_mnist_test_split():
    images, labels = _train_script().mnist_test_split(SHARED_DATASETS)
    assert images.shape == (10000, 1, 28, 28)
    _, logits = metrics.extract_features(images, metrics.load_evaluator("mnist"))
    accuracy = float((logits.argmax(1) == labels).double().mean())
    assert accuracy >= 0.97
