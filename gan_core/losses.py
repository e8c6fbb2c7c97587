"""GAN losses as plain functions in a registry. All take raw discriminator outputs (logits/scores).

`d_loss(real, fake, real_target)` is what D minimises; `g_loss(fake)` is what G minimises.
The BCE family works on logits (softplus / BCE-with-logits) for numerical stability, never on
sigmoid outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError


def _bce_d(real: Tensor, fake: Tensor, real_target: float) -> Tensor:
    """-[t log D(x) + (1-t) log(1-D(x))] - log(1 - D(G(z))), with t = 1 - label smoothing."""
    target = torch.full_like(real, real_target)
    return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()


def minimax_g(fake: Tensor) -> Tensor:
    """Original saturating G loss: minimise log(1 - D(G(z))) = -softplus(logit). Vanishes when D wins."""
    return -F.softplus(fake).mean()


def non_saturating_g(fake: Tensor) -> Tensor:
    """Non-saturating G loss: minimise -log D(G(z)) = softplus(-logit). Strong gradient when D wins."""
    return F.softplus(-fake).mean()


def lsgan_d(real: Tensor, fake: Tensor, real_target: float) -> Tensor:
    """Least squares (Mao et al. 2017): 1/2 (D(x) - t)^2 + 1/2 D(G(z))^2."""
    return 0.5 * ((real - real_target) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    """Least squares G loss: 1/2 (D(G(z)) - 1)^2."""
    return 0.5 * ((fake - 1.0) ** 2).mean()


def wasserstein_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    """Critic loss E[D(G(z))] - E[D(x)]; the gradient penalty is added by the trainer."""
    return fake.mean() - real.mean()


def wasserstein_g(fake: Tensor) -> Tensor:
    """Generator loss -E[D(G(z))] (also used by hinge)."""
    return -fake.mean()


def hinge_d(real: Tensor, fake: Tensor, real_target: float = 1.0) -> Tensor:
    """Hinge loss (Lim & Ye 2017, SAGAN): relu(1 - D(x)) + relu(1 + D(G(z)))."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


@dataclass(frozen=True)
class GanLoss:
    """A D loss, a G loss, and how to read D's output."""

    name: str
    d_loss: Callable[[Tensor, Tensor, float], Tensor]
    g_loss: Callable[[Tensor], Tensor]
    description: str
    needs_gradient_penalty: bool = False
    probability_output: bool = True  # True: sigmoid(D) is "probability real"; False: raw critic score


LOSSES: dict[str, GanLoss] = {
    l.name: l
    for l in [
        GanLoss("minimax", _bce_d, minimax_g, "original minimax: G minimises log(1 - D(G(z))) (saturates)"),
        GanLoss("bce", _bce_d, non_saturating_g, "non-saturating: G minimises -log D(G(z))"),
        GanLoss("lsgan", lsgan_d, lsgan_g, "least squares: D regresses reals to 1 and fakes to 0", probability_output=False),
        GanLoss("wgan-gp", wasserstein_d, wasserstein_g, "Wasserstein critic with gradient penalty", True, False),
        GanLoss("hinge", hinge_d, wasserstein_g, "hinge loss (SAGAN, BigGAN)", probability_output=False),
    ]
}


def get_loss(name: str) -> GanLoss:
    """The registered loss `name` (ConfigError if unknown)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)}; got {name!r}") from None


def gradient_penalty(discriminator: Callable[..., Tensor], real: Tensor, fake: Tensor, labels=None) -> Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad_x D(x_hat)||_2 - 1)^2] on random interpolates x_hat."""
    shape = (real.size(0),) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = discriminator(mixed, labels)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def r1_penalty(real: Tensor, out_real: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E[||grad_x D(x)||^2] at the real images `real` (which must require
    grad) whose D outputs are `out_real`; the trainer scales it by gamma / 2. It pushes D to be flat at
    the data, so D cannot keep growing its gradient there and G is not pulled back and forth."""
    (grad,) = torch.autograd.grad(out_real.float().sum(), real, create_graph=True)
    return grad.float().flatten(1).pow(2).sum(1).mean()
