"""Latent-space helpers: spherical and linear interpolation."""

from __future__ import annotations

import torch
from torch import Tensor


def lerp(z0: Tensor, z1: Tensor, t: Tensor | float) -> Tensor:
    """Straight line from z0 (t=0) to z1 (t=1)."""
    return z0 + (z1 - z0) * t


def slerp(z0: Tensor, z1: Tensor, t: Tensor | float) -> Tensor:
    """Great-circle interpolation (White 2016). Keeps the norm typical of Gaussian z, which a
    straight line through the low-density centre of the ball does not; falls back to lerp for
    (anti)parallel vectors."""
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    while t.dim() < z0.dim():
        t = t.unsqueeze(-1)
    a, b = z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True)
    omega = torch.acos((a * b).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    sin = torch.sin(omega)
    out = (torch.sin((1 - t) * omega) / sin) * z0 + (torch.sin(t * omega) / sin) * z1
    return torch.where(sin.abs() < 1e-6, lerp(z0, z1, t), out)


INTERPOLATIONS = {"slerp": slerp, "lerp": lerp}
