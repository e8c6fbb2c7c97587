"""Differentiable augmentation (DiffAugment, Zhao et al. 2020) of everything the discriminator sees.

On a 5,000-image set a discriminator memorises the reals within a few epochs and its verdicts stop
teaching the generator. Shifting and cutting out parts of *both* reals and fakes, in D's update and in
G's, keeps D from memorising while G still learns the un-augmented distribution: the augmentation is
differentiable, so G's gradient flows through it, and it never reaches G's samples. Colour changes are
left out: they are pointless on grey digits.

Every function takes images in [-1, 1] (N, C, H, W) and the run's random generator, and fills what it
uncovers with -1 (the black background of digits), so reals and fakes are treated identically.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError

BACKGROUND = -1.0


def translate(x: Tensor, rng: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift each image by up to `ratio` of its side (whole pixels, independently in x and y)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    padded = F.pad(x, [sx, sx, sy, sy], value=BACKGROUND)
    dy = torch.randint(0, 2 * sy + 1, (n, 1), device=x.device, generator=rng)
    dx = torch.randint(0, 2 * sx + 1, (n, 1), device=x.device, generator=rng)
    rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, x.size(1), h, padded.size(3))
    shifted = padded.gather(2, rows)
    cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, x.size(1), h, w)
    return shifted.gather(3, cols)


def cutout(x: Tensor, rng: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Blank one square of `ratio` times the side per image, at a random place (it may cross the border)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - ch % 2, (n, 1, 1), device=x.device, generator=rng) - ch // 2
    left = torch.randint(0, w + 1 - cw % 2, (n, 1, 1), device=x.device, generator=rng) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    hole = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x.masked_fill(hole.unsqueeze(1), BACKGROUND)


AUGMENTATIONS: dict[str, tuple[Callable[[Tensor, torch.Generator], Tensor], ...]] = {
    "none": (),
    "translation": (translate,),
    "translation+cutout": (translate, cutout),
}


def augment(x: Tensor, policy: str, rng: torch.Generator) -> Tensor:
    """`x` with the augmentations of `policy` (a key of AUGMENTATIONS) applied in order."""
    try:
        steps = AUGMENTATIONS[policy]
    except KeyError:
        raise ConfigError(f"augment must be one of {', '.join(AUGMENTATIONS)}; got {policy!r}") from None
    for step in steps:
        x = step(x, rng)
    return x
