"""Class control for conditional generators: draw chosen classes, and morph between two classes.

A conditional generator reads the class through a learned label embedding joined to z. Moving
that embedding vector in a straight line from one class's vector to another's, with z fixed,
morphs the drawing from one class into the other while the style (held by z) stays.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from .errors import GanError
from .generator import Generator
from .sampling import eval_mode
from .trainer import Trainer

Sampler = Union[Trainer, Generator]  # both have .sampler, .sample(), .num_classes, .device, .config


def _require_conditional(trainer: Sampler) -> None:
    if not trainer.num_classes or getattr(trainer.sampler, "embed", None) is None:
        raise GanError("this run is not conditional: train a conditional preset (e.g. mnist-cdcgan) to choose classes")


def class_embeddings(trainer: Sampler) -> Tensor:
    """The generator's label embedding table (num_classes, embed_dim), on the CPU."""
    _require_conditional(trainer)
    return trainer.sampler.embed.weight.detach().float().cpu()


@torch.no_grad()
def sample_with_embedding(trainer: Sampler, z: Tensor, embedding: Tensor) -> Tensor:
    """Images (CPU, [-1, 1]) for latent vectors z (N, z_dim) and label-embedding vectors (N, embed_dim)."""
    _require_conditional(trainer)
    with eval_mode(trainer.sampler) as g:
        z = z.to(trainer.device, torch.float32).reshape(-1, trainer.config.z_dim)
        embedding = embedding.to(trainer.device, torch.float32).reshape(len(z), -1)
        return g(z, embedding=embedding).float().cpu()


def morph_classes(trainer: Sampler, z: Tensor, class_a: int, class_b: int, steps: int = 8) -> Tensor:
    """`steps` images from class_a to class_b (both ends included) for one fixed z (z_dim,)."""
    table = class_embeddings(trainer)
    for k in (class_a, class_b):
        if not 0 <= k < len(table):
            raise GanError(f"class must be in [0, {len(table) - 1}], got {k}")
    t = torch.linspace(0, 1, steps).unsqueeze(1)
    vectors = table[class_a] * (1 - t) + table[class_b] * t
    return sample_with_embedding(trainer, z.reshape(1, -1).expand(steps, -1), vectors)


def class_rows(trainer: Sampler, z: Tensor) -> Tensor:
    """One row per class for the same latent vectors z (M, z_dim): (num_classes * M) images, class-major."""
    _require_conditional(trainer)
    m = len(z)
    labels = torch.arange(trainer.num_classes).repeat_interleave(m)
    return trainer.sample(z=z.repeat(trainer.num_classes, 1), labels=labels)


def mix_classes(trainer: Sampler, z: Tensor, class_a: int, class_b: int, alpha: float) -> Tensor:
    """One image for z (z_dim,) drawn with the embedding (1 - alpha) * class_a + alpha * class_b."""
    table = class_embeddings(trainer)
    vector = table[class_a] * (1 - alpha) + table[class_b] * alpha
    return sample_with_embedding(trainer, z.reshape(1, -1), vector.reshape(1, -1))[0]
