"""Draw a digit, find it in latent space: MNIST-style preprocessing, checked picture uploads, and
projection onto the bundled pretrained generators (gan_core.projection)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from gan_core.errors import GanError, ImageError
from gan_core.generator import load_generator
from gan_core.paths import ASSETS_DIR
from gan_core.projection import check_projectable, mnist_digit, project, read_upload


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dcgan():
    return load_generator(ASSETS_DIR / "pretrained" / "mnist-dcgan", device="cpu")


@pytest.fixture(scope="module")
def cdcgan():
    return load_generator(ASSETS_DIR / "pretrained" / "mnist-cdcgan", device="cpu")


def png_bytes(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def off_centre_stroke() -> np.ndarray:
    """A 280x280 canvas, white on black, with a tall 30x120 bar near the top-left corner."""
    canvas = np.zeros((280, 280), dtype=np.uint8)
    canvas[10:130, 20:50] = 255
    return canvas


def test_a_drawing_is_scaled_into_mnists_20px_box_and_centred_by_its_centre_of_mass():
    digit = mnist_digit(off_centre_stroke())
    assert digit.shape == (1, 28, 28) and digit.min() == -1 and digit.max() > 0.95
    ink = (digit[0] + 1) / 2
    rows, cols = torch.nonzero(ink > 0.5, as_tuple=True)
    assert rows.max() - rows.min() + 1 == 20  # the long side fills the 20 px box
    assert 4 <= cols.max() - cols.min() + 1 <= 6  # the aspect ratio is kept (30/120 of 20 px)
    ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centre = ((ys * ink).sum() / ink.sum(), (xs * ink).sum() / ink.sum())
    assert all(abs(float(c) - 13.5) <= 0.6 for c in centre), centre
    assert torch.all(ink[:3] == 0) and torch.all(ink[-3:] == 0)  # a margin all round, as in MNIST


def test_dark_ink_on_paper_and_transparent_pictures_give_the_same_digit():
    white_on_black = mnist_digit(off_centre_stroke())
    on_paper = mnist_digit(Image.fromarray(255 - off_centre_stroke()).convert("RGB"))
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[..., 3] = off_centre_stroke()  # black strokes, transparent background
    assert torch.allclose(on_paper, white_on_black, atol=1e-5)
    assert torch.allclose(mnist_digit(rgba), white_on_black, atol=1e-5)


@pytest.mark.parametrize("picture", [np.zeros((280, 280), np.uint8), np.full((280, 280), 128, np.uint8),
                                     np.dstack([np.zeros((280, 280, 3), np.uint8), np.full((280, 280), 255, np.uint8)])])
def test_an_empty_drawing_is_one_clear_error(picture):
    with pytest.raises(ImageError, match="the drawing is empty"):
        mnist_digit(picture)


def test_uploads_are_checked_before_they_are_decoded():
    good = png_bytes(Image.fromarray(off_centre_stroke()))
    assert read_upload("seven.png", good).size == (280, 280)
    refusals = {
        "notes.txt": (b"a digit, honestly", "not a picture this app can read"),
        "model.png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a picture this app can read"),
        "strip.png": (png_bytes(Image.new("L", (300, 50))), "far from square"),
        "tiny.png": (png_bytes(Image.new("L", (5, 5))), "too small"),
        "huge.png": (good + b"\0" * (11 * 2**20), "too big"),
        "wide.png": (png_bytes(Image.new("1", (5000, 5000))), "too large"),
        "cut.png": (good[:len(good) // 2], "damaged or truncated"),
    }
    for name, (data, reason) in refusals.items():
        with pytest.raises(ImageError, match=reason) as info:
            read_upload(name, data)
        assert name in str(info.value) and "\n" not in str(info.value)


def test_2d_toys_cannot_be_projected(tmp_path):
    from gan_core import get_preset
    from gan_core.checkpoint import save_checkpoint
    from gan_core.trainer import Trainer

    save_checkpoint(Trainer(get_preset("ring8").config()), tmp_path / "toy", {})
    with pytest.raises(GanError, match="2D points"):
        check_projectable(load_generator(tmp_path / "toy", device="cpu"))


def pixel_mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean())


def test_projecting_a_generated_image_finds_it_again(dcgan):
    z_star = torch.randn(1, dcgan.config.z_dim, generator=torch.Generator().manual_seed(123))
    target = dcgan.sample(z=z_star)[0]
    seen: list[float] = []
    found = project(dcgan, target, seed=5, progress=lambda fraction, distance: seen.append(fraction))
    random_images = dcgan.sample(16, seed=99)
    random_mse = np.mean([pixel_mse(x, target) for x in random_images])
    assert pixel_mse(found.image, target) < 0.1 * random_mse, (pixel_mse(found.image, target), random_mse)
    assert found.label is None and found.uses_features and found.distance < 0.05
    assert found.z.shape == (dcgan.config.z_dim,)
    assert torch.allclose(dcgan.sample(z=found.z.unsqueeze(0))[0], found.image, atol=1e-4)  # it is G's own drawing
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) >= 10


@pytest.mark.parametrize("digit", [2, 7])
def test_a_conditional_run_picks_the_class_of_a_generated_digit(cdcgan, digit):
    z_star = torch.randn(1, cdcgan.config.z_dim, generator=torch.Generator().manual_seed(digit))
    target = cdcgan.sample(z=z_star, labels=digit)[0]
    found = project(cdcgan, target, seed=1)
    assert found.label == digit, found.class_distances
    assert min(range(10), key=found.class_distances.__getitem__) == digit
    assert torch.allclose(cdcgan.sample(z=found.z.unsqueeze(0), labels=digit)[0], found.image, atol=1e-4)
