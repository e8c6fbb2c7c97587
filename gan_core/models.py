"""Generator / discriminator pairs: a 2D toy MLP, the original MLP GAN, and DCGAN (28/32/64 px),
each optionally conditional on a class label. No training code lives here.

Every generator is called as `G(z, labels=None)` and returns samples in [-1, 1] (images) or R^2
(toys); every discriminator as `D(x, labels=None)` and returns one raw logit / score per sample.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import TrainConfig
from .errors import ConfigError


class GanModule(nn.Module):
    """Base class: knows its parameter count and whether it is conditional."""

    num_classes: int = 0
    memory_format: torch.memory_format = torch.contiguous_format  # of the activations (conv models)

    @property
    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def set_memory_format(self, memory_format: torch.memory_format) -> "GanModule":
        """Keep weights and activations in `memory_format` (torch.channels_last: NHWC, faster for
        convolutions on CPUs with oneDNN). The maths is unchanged."""
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def _join_label(self, h: Tensor, labels: Optional[Tensor], embedding: Optional[nn.Embedding],
                    vectors: Optional[Tensor] = None) -> Tensor:
        """Concatenate the label embedding to a flat input (conditional models only).

        `vectors` (N, embed_dim) replaces the looked-up embedding, e.g. to morph between classes."""
        if embedding is None:
            return h
        if vectors is not None:
            return torch.cat([h, vectors.to(h.dtype)], dim=1)
        if labels is None:
            raise ValueError("this model is conditional: pass labels")
        return torch.cat([h, embedding(labels)], dim=1)


def _mlp(sizes: list[int], act: Callable[[], nn.Module], dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), act()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return layers


# --- 2D toy ----------------------------------------------------------------------------------
class ToyGenerator(GanModule):
    """z -> 3 hidden ReLU layers -> a point in R^2 (no output squashing)."""

    def __init__(self, z_dim: int, width: int):
        super().__init__()
        self.net = nn.Sequential(*_mlp([z_dim, width, width, width], nn.ReLU), nn.Linear(width, 2))

    def forward(self, z: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return self.net(z)


class ToyDiscriminator(GanModule):
    """A point in R^2 -> 3 hidden LeakyReLU layers -> one logit."""

    def __init__(self, width: int, dropout: float):
        super().__init__()
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.net = nn.Sequential(*_mlp([2, width, width, width], act, dropout), nn.Linear(width, 1))

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return self.net(x).squeeze(1)


# --- the original MLP GAN --------------------------------------------------------------------
class MLPGenerator(GanModule):
    """Goodfellow et al. 2014 style: z (+ label embedding) -> w, 2w, 4w LeakyReLU -> tanh image."""

    def __init__(self, z_dim: int, width: int, shape: tuple[int, ...], num_classes: int = 0, embed_dim: int = 16):
        super().__init__()
        self.shape, self.num_classes = shape, num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = z_dim + (embed_dim if num_classes else 0)
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        out = math.prod(shape)
        self.net = nn.Sequential(*_mlp([in_dim, width, 2 * width, 4 * width], act), nn.Linear(4 * width, out), nn.Tanh())

    def forward(self, z: Tensor, labels: Optional[Tensor] = None, embedding: Optional[Tensor] = None) -> Tensor:
        """Images for z; conditional on `labels`, or on explicit label-embedding vectors `embedding`."""
        return self.net(self._join_label(z, labels, self.embed, embedding)).view(-1, *self.shape)


class MLPDiscriminator(GanModule):
    """Flattened image (+ label embedding) -> 4w, 2w, w LeakyReLU with dropout -> one logit."""

    def __init__(self, width: int, shape: tuple[int, ...], dropout: float, num_classes: int = 0, embed_dim: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = math.prod(shape) + (embed_dim if num_classes else 0)
        act = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.net = nn.Sequential(*_mlp([in_dim, 4 * width, 2 * width, width], act, dropout), nn.Linear(width, 1))

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        return self.net(self._join_label(x.flatten(1), labels, self.embed)).squeeze(1)


# --- DCGAN -----------------------------------------------------------------------------------
def _dcgan_plan(shape: tuple[int, ...]) -> tuple[int, int]:
    """(start side, number of x2 up/down-samplings) for a square image of side 28, 32 or 64."""
    side = shape[-1]
    plans = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
    if side not in plans or shape[-2] != side:
        raise ConfigError(f"dcgan supports square images of side 28, 32 or 64, not {tuple(shape)}")
    return plans[side]


class DCGANGenerator(GanModule):
    """Radford et al. 2015: project z (+ label embedding), then (ConvTranspose 4x4/2, BN, ReLU)*, tanh."""

    def __init__(self, z_dim: int, width: int, shape: tuple[int, ...], num_classes: int = 0, embed_dim: int = 16):
        super().__init__()
        self.num_classes = num_classes
        self.start, n_up = _dcgan_plan(shape)
        chans = [width * 2 ** (n_up - 1 - i) for i in range(n_up)] + [shape[0]]
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = z_dim + (embed_dim if num_classes else 0)
        self.project = nn.Sequential(nn.Linear(in_dim, chans[0] * self.start**2, bias=False))
        self.project_norm = nn.Sequential(nn.BatchNorm2d(chans[0]), nn.ReLU(True))
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            blocks.append(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=(i == n_up - 1)))
            blocks += [nn.BatchNorm2d(b), nn.ReLU(True)] if i < n_up - 1 else [nn.Tanh()]
        self.net = nn.Sequential(*blocks)
        self.channels0 = chans[0]

    def forward(self, z: Tensor, labels: Optional[Tensor] = None, embedding: Optional[Tensor] = None) -> Tensor:
        """Images for z; conditional on `labels`, or on explicit label-embedding vectors `embedding`."""
        h = self.project(self._join_label(z, labels, self.embed, embedding))
        h = h.view(-1, self.channels0, self.start, self.start).contiguous(memory_format=self.memory_format)
        return self.net(self.project_norm(h))


class DCGANDiscriminator(GanModule):
    """Image (+ a label plane from an embedding, as an extra channel) -> (Conv 4x4/2, norm, LeakyReLU)* -> logit.

    `norm="batch"` as in DCGAN; `"none"` for WGAN-GP, whose per-sample gradient penalty batchnorm breaks.
    """

    def __init__(self, width: int, shape: tuple[int, ...], num_classes: int = 0, dropout: float = 0.0, norm: str = "batch"):
        super().__init__()
        self.num_classes, self.shape = num_classes, shape
        start, n_down = _dcgan_plan(shape)
        self.embed = nn.Embedding(num_classes, shape[1] * shape[2]) if num_classes else None
        chans = [shape[0] + (1 if num_classes else 0)] + [width * 2**i for i in range(n_down)]
        blocks: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans[:-1], chans[1:])):
            blocks.append(nn.Conv2d(a, b, 4, 2, 1, bias=(i == 0 or norm != "batch")))
            if i > 0 and norm == "batch":
                blocks.append(nn.BatchNorm2d(b))
            blocks.append(nn.LeakyReLU(0.2, True))
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
        self.net = nn.Sequential(*blocks)
        self.head = nn.Linear(chans[-1] * start * start, 1)

    def forward(self, x: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this model is conditional: pass labels")
            plane = self.embed(labels).view(-1, 1, self.shape[1], self.shape[2])
            x = torch.cat([x, plane.to(x.dtype)], dim=1).contiguous(memory_format=self.memory_format)
        h = self.net(x)
        # `head` is a Linear on the flattened (C, H, W) map; applied as the equal full-size convolution
        # it reads the map in any memory format without a copy.
        return F.conv2d(h, self.head.weight.view(1, *h.shape[1:]), self.head.bias).flatten()


def dcgan_init(module: nn.Module) -> None:
    """DCGAN weight init: conv/linear weights N(0, 0.02), batchnorm gamma N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def build_generator(cfg: TrainConfig, shape: tuple[int, ...], num_classes: int = 0) -> GanModule:
    """The generator alone (for sampling from a checkpoint: no discriminator is built)."""
    classes = _classes(cfg, num_classes)
    if cfg.arch == "toy":
        return ToyGenerator(cfg.z_dim, cfg.g_width)
    if cfg.arch == "mlp":
        return MLPGenerator(cfg.z_dim, cfg.g_width, shape, classes, cfg.embed_dim)
    if cfg.arch == "dcgan":
        return DCGANGenerator(cfg.z_dim, cfg.g_width, shape, classes, cfg.embed_dim)
    raise ConfigError(f"arch must be one of toy, mlp, dcgan; got {cfg.arch!r}")


def _classes(cfg: TrainConfig, num_classes: int) -> int:
    if cfg.conditional and not num_classes:
        raise ConfigError(f"conditional=True needs a labelled dataset; '{cfg.dataset}' has no labels")
    return num_classes if cfg.conditional else 0


def build_models(cfg: TrainConfig, shape: tuple[int, ...], num_classes: int = 0) -> tuple[GanModule, GanModule]:
    """The (generator, discriminator) pair `cfg.arch` describes for samples of `shape`."""
    classes = _classes(cfg, num_classes)
    g = build_generator(cfg, shape, num_classes)  # built before D, as always: seeded runs keep their weights
    if cfg.arch == "toy":
        d: GanModule = ToyDiscriminator(cfg.d_width, cfg.dropout)
    elif cfg.arch == "mlp":
        d = MLPDiscriminator(cfg.d_width, shape, cfg.dropout, classes, cfg.embed_dim)
    else:
        # batch-norm breaks WGAN-GP's per-sample penalty; spectral norm takes its place as D's normaliser
        norm = "batch" if cfg.d_batchnorm and not (cfg.loss == "wgan-gp" or cfg.spectral_norm) else "none"
        d = DCGANDiscriminator(cfg.d_width, shape, classes, cfg.dropout, norm=norm)
        g.apply(dcgan_init)
        d.apply(dcgan_init)
    if cfg.spectral_norm:
        add_spectral_norm(d)
    return g, d


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (Miyato et al. 2018) of every linear and convolutional layer of `module`:
    each weight is divided by its largest singular value (one power iteration per forward pass)."""
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.utils.parametrizations.spectral_norm(layer)
    return module
