"""Turning samples into pictures: uint8 arrays, image grids, and 2D scatter plots (PIL only)."""

from __future__ import annotations

import io
from typing import Optional

import numpy as np
import torch
from PIL import Image, ImageDraw
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


def png_bytes(img: Image.Image) -> bytes:
    """Encode a PIL image as PNG bytes."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()
