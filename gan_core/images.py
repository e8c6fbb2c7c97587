"""Turning samples into pictures: uint8 arrays, image grids, 2D scatter plots, labelled rows, PNG and GIF
bytes (PIL and torchvision only; the app, the CLI and the job worker all draw through here)."""

from __future__ import annotations

import io
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor
from torchvision.utils import make_grid


def to_uint8(images: Tensor) -> np.ndarray:
    """[-1, 1] images (N, C, H, W) -> uint8 array (N, H, W) for grey or (N, H, W, C) for colour."""
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(0, 2, 3, 1).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def grid_image(images: Tensor, nrow: int = 8, padding: int = 2, scale: int = 1) -> Image.Image:
    """A PIL grid of [-1, 1] images (torchvision make_grid), optionally upscaled (nearest) for display."""
    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=padding, normalize=True, value_range=(-1, 1), pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(array[..., 0] if images.shape[1] == 1 else array)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def scatter_image(fake: Tensor, real: Optional[Tensor] = None, size: int = 400, extent: float = 1.2) -> Image.Image:
    """A 2D scatter of real (grey) and generated (orange) points in [-extent, extent]^2."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    half = size / 2

    def dots(points: Tensor, colour: tuple[int, int, int]) -> None:
        for x, y in points.detach().float().cpu().tolist():
            px, py = half + x / extent * half, half - y / extent * half
            draw.ellipse((px - 1.5, py - 1.5, px + 1.5, py + 1.5), fill=colour)

    if real is not None:
        dots(real, (150, 150, 150))
    dots(fake, (230, 110, 20))
    return img


def display_scale(side: int) -> int:
    """How much a grid of `side`-pixel images is upscaled for display: small images (28/32 px) twice."""
    return 2 if side <= 32 else 1


def sample_picture(samples: Tensor, real: Optional[Tensor] = None, nrow: int = 8) -> Image.Image:
    """The picture of a batch of samples: an upscaled image grid, or (2D points) a scatter over `real`."""
    if samples.ndim == 2:
        return scatter_image(samples, real)
    return grid_image(samples, nrow=nrow, scale=display_scale(samples.shape[-1]))


def font(size: int) -> ImageFont.ImageFont:
    """Pillow's default font at `size` px, or its fixed bitmap font where FreeType is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def upscale(img: Image.Image, side: int) -> Image.Image:
    """Nearest-neighbour upscale so that the shorter side is about `side` pixels (crisp pixels)."""
    factor = max(1, round(side / min(img.size)))
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def single_image(sample: Tensor, side: int = 256) -> Image.Image:
    """One [-1, 1] image tensor (C, H, W) as an upscaled PIL image."""
    return upscale(grid_image(sample.unsqueeze(0), nrow=1, padding=0), side)


def labelled_rows(images: Tensor, names: Sequence[str], columns: int, highlight: Optional[int] = None,
                  scale: int = 3) -> Image.Image:
    """A grid with one row per class and the class names written on the left (the chosen one highlighted)."""
    padding, label_width = 2, 130
    grid = grid_image(images, nrow=columns, padding=padding, scale=scale).convert("RGB")
    regular, bold = font(17), font(19)
    canvas = Image.new("RGB", (grid.width + label_width, grid.height), "white")
    canvas.paste(grid, (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    side = images.shape[-1]
    for i, name in enumerate(names):
        y = (padding + i * (side + padding) + side / 2) * scale
        chosen = i == highlight
        draw.text((label_width - 12, y), name, anchor="rm", font=bold if chosen else regular,
                  fill=(79, 70, 229) if chosen else (75, 85, 99))
    return canvas


def png(img: Image.Image, fast: bool = False) -> bytes:
    """PNG bytes of a PIL image. `fast`: light compression, ~5x quicker and a little larger (live views)."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=1 if fast else 6)
    return buffer.getvalue()


def captioned(img: Image.Image, text: str, size: int = 20) -> Image.Image:
    """`img` with `text` written in a white band above it (e.g. "step 1,200" on a replay frame)."""
    band = size + 14
    canvas = Image.new("RGB", (img.width, img.height + band), "white")
    canvas.paste(img.convert("RGB"), (0, band))
    ImageDraw.Draw(canvas).text((img.width / 2, band / 2), text, anchor="mm", font=font(size), fill=(31, 41, 55))
    return canvas


def gif(frames: list[Image.Image], seconds_per_frame: float | Sequence[float] = 0.08) -> bytes:
    """An endlessly looping animated GIF of the frames (one duration for all, or one per frame)."""
    buffer = io.BytesIO()
    duration = ([int(s * 1000) for s in seconds_per_frame] if isinstance(seconds_per_frame, Sequence)
                else int(seconds_per_frame * 1000))
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=duration, disposal=2)
    return buffer.getvalue()
