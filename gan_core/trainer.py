"""The training step. `Trainer.step()` does exactly one "(1) update D k times / (2) update G" iteration.

The trainer owns the models, optimisers, data and a private random generator; it knows nothing of
files (see checkpoint.py) or of the UI (see jobs.py). It is used from one thread at a time.
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import Tensor

from .config import TrainConfig
from .data import DATASETS, ImageData, ToyData, load_dataset
from .device import bf16_supported, resolve_device
from .errors import GanError
from .latent import INTERPOLATIONS
from .losses import get_loss, gradient_penalty
from .models import build_models

# torch.manual_seed is process-global: serialise model construction so that runs started in
# parallel threads (the app) still get the initial weights their seed promises.
_INIT_LOCK = threading.Lock()
GRID_COLUMNS = 8


class Diverged(GanError):
    """Training produced NaN or infinite values; the run must stop."""


@dataclass
class StepRecord:
    """What one step reports. d_real / d_fake are mean sigmoid(D) for probability losses, else mean raw score."""

    step: int
    loss_d: float
    loss_g: float
    d_real: float
    d_fake: float
    grad_norm_d: float
    grad_norm_g: float
    images_per_s: float
    seconds: float

    def to_dict(self) -> dict:
        """Plain dict (for CSV / JSON)."""
        return asdict(self)


class Trainer:
    """Models, optimisers and data for one GAN run, stepped one iteration at a time."""

    def __init__(self, config: TrainConfig, data: ToyData | ImageData | None = None, *,
                 sample_shape: Optional[tuple[int, ...]] = None, class_names: tuple[str, ...] = ()):
        """Build a run from `config`. Pass `sample_shape` (and `class_names`) instead of data to
        build it for sampling only (the dataset is then loaded on the first `step()`)."""
        self.config = config.validate()
        self.device = resolve_device(config.device)
        self.spec = DATASETS[config.dataset]
        if data is None and sample_shape is None:
            data = self._load_data()
        self._data = data
        self.sample_shape = tuple(data.shape) if data is not None else tuple(sample_shape)
        self.class_names = tuple(data.class_names) if data is not None else tuple(class_names)
        self.num_classes = len(self.class_names) if config.conditional else 0
        self.loss = get_loss(config.loss)
        self.use_bf16 = config.precision == "bf16" or (config.precision == "auto" and self.device.type == "cuda" and bf16_supported(self.device))
        if config.precision == "bf16" and not bf16_supported(self.device) and self.device.type != "cpu":
            self.use_bf16 = False

        with _INIT_LOCK:
            torch.manual_seed(config.seed)
            self.G, self.D = build_models(config, self.sample_shape, len(self.class_names))
        self.G.to(self.device)
        self.D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if config.ema > 0 else None
        adam = dict(foreach=True) if self.device.type != "cuda" else dict(fused=True)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=(config.beta1_g, config.beta2_g), **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=(config.beta1_d, config.beta2_d), **adam)

        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.fixed_noise, self.fixed_labels = self._make_fixed_inputs()
        self.step_count = 0
        self.seconds = 0.0  # time spent inside step(), i.e. training time
        self.status = "ready"  # ready, diverged

    # --- data ------------------------------------------------------------------------------
    def _load_data(self) -> ToyData | ImageData:
        c = self.config
        return load_dataset(c.dataset, self.device, data_dir=c.data_dir, image_size=c.image_size, channels=c.channels)

    @property
    def data(self) -> ToyData | ImageData:
        """The training data (loaded on first use for a run built for sampling only)."""
        if self._data is None:
            self._data = self._load_data()
        return self._data

    def _make_fixed_inputs(self) -> tuple[Tensor, Optional[Tensor]]:
        """Fixed z's for comparable grids: 64 (8x8), 512 points for toys, or 8 z's per class row."""
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        z_dim = self.config.z_dim
        if self.spec.kind == "points":
            return torch.randn(512, z_dim, device=self.device, generator=gen), None
        if self.num_classes:
            z = torch.randn(GRID_COLUMNS, z_dim, device=self.device, generator=gen).repeat(self.num_classes, 1)
            labels = torch.arange(self.num_classes, device=self.device).repeat_interleave(GRID_COLUMNS)
            return z, labels
        return torch.randn(64, z_dim, device=self.device, generator=gen), None

    def noise(self, n: int) -> Tensor:
        """n latent vectors z ~ N(0, I) from the run's own generator."""
        return torch.randn(n, self.config.z_dim, device=self.device, generator=self.rng)

    def random_labels(self, n: int) -> Optional[Tensor]:
        """n uniform class labels for a conditional run, else None."""
        if not self.num_classes:
            return None
        return torch.randint(self.num_classes, (n,), device=self.device, generator=self.rng)

    def _autocast(self):
        if not self.use_bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    # --- the step --------------------------------------------------------------------------
    def step(self) -> StepRecord:
        """One iteration: (1) k discriminator updates, (2) one generator update. Raises Diverged on NaN/inf."""
        if self.status == "diverged":
            raise Diverged(f"training diverged at step {self.step_count}; start again with lower learning rates")
        c, data = self.config, self.data
        started = time.perf_counter()
        self.G.train()
        self.D.train()
        real_target = 1.0 - c.label_smoothing

        # (1) Update D: maximise log D(x) + log(1 - D(G(z))) (or the chosen loss's equivalent).
        for _ in range(c.d_steps):
            real, real_labels = data.batch(c.batch_size, self.rng)
            fake_labels = self.random_labels(c.batch_size)
            with torch.no_grad(), self._autocast():
                fake = self.G(self.noise(c.batch_size), fake_labels)
            with self._autocast():
                out_real = self.D(real, real_labels if self.num_classes else None)
                out_fake = self.D(fake, fake_labels)
                loss_d = self.loss.d_loss(out_real.float(), out_fake.float(), real_target)
            if self.loss.needs_gradient_penalty:
                loss_d = loss_d + c.gp_weight * gradient_penalty(self.D, real, fake.float(), real_labels if self.num_classes else None)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            grad_norm_d = _grad_norm(self.D)
            self.opt_d.step()

        # (2) Update G: make D call the fakes real.
        fake_labels = self.random_labels(c.batch_size)
        with self._autocast():
            fake = self.G(self.noise(c.batch_size), fake_labels)
            loss_g = self.loss.g_loss(self.D(fake, fake_labels).float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        grad_norm_g = _grad_norm(self.G)
        self.opt_g.step()
        self._update_ema()

        score = torch.sigmoid if self.loss.probability_output else (lambda t: t)
        stats = torch.stack([loss_d.detach(), loss_g.detach(), score(out_real.detach().float()).mean(),
                             score(out_fake.detach().float()).mean(), grad_norm_d, grad_norm_g]).tolist()
        self.step_count += 1
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        if not all(math.isfinite(v) for v in stats):
            self.status = "diverged"
            raise Diverged(f"training diverged at step {self.step_count} (loss_d={stats[0]:.3g}, loss_g={stats[1]:.3g}): "
                           "lower the learning rates, or try the bce loss or label smoothing")
        return StepRecord(self.step_count, *stats, images_per_s=c.batch_size * c.d_steps / max(elapsed, 1e-9), seconds=self.seconds)

    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        # Warm-up: average over the steps seen so far early on, so early samples are not stuck at init.
        decay = min(self.config.ema, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            ema_params, params = list(self.G_ema.parameters()), list(self.G.parameters())
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
                b_ema.copy_(b)

    # --- budget ----------------------------------------------------------------------------
    def budget_reached(self) -> bool:
        """True once the config's step or time budget (if any) is used up."""
        c = self.config
        return bool((c.steps and self.step_count >= c.steps) or (c.seconds and self.seconds >= c.seconds))

    # --- sampling --------------------------------------------------------------------------
    @property
    def sampler(self) -> torch.nn.Module:
        """The generator used for samples: the EMA copy when enabled."""
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def sample(self, n: int = 64, labels: Optional[Tensor | int] = None, z: Optional[Tensor] = None) -> Tensor:
        """n samples (float32, [-1, 1] images or 2D points) on the CPU, in eval mode (batchnorm running stats).

        labels: an int (all the same class), a tensor of n labels, or None (random classes if conditional).
        z: explicit latent vectors (n is then len(z))."""
        g = self.sampler
        was_training = g.training
        g.eval()
        try:
            z = self.noise(n) if z is None else z.to(self.device, torch.float32)
            n = len(z)
            labels = self._labels_for(n, labels)
            with self._autocast():
                out = g(z, labels)
            return out.float().cpu()
        finally:
            g.train(was_training)

    def _labels_for(self, n: int, labels: Optional[Tensor | int]) -> Optional[Tensor]:
        if not self.num_classes:
            if labels is not None:
                raise GanError("this run is not conditional: it cannot draw a chosen class")
            return None
        if labels is None:
            return self.random_labels(n)
        if isinstance(labels, int):
            labels = torch.full((n,), labels, dtype=torch.long)
        labels = torch.as_tensor(labels, dtype=torch.long)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise GanError(f"label must be in [0, {self.num_classes - 1}] ({', '.join(self.class_names)})")
        return labels.to(self.device)

    def sample_fixed(self) -> Tensor:
        """Samples from `fixed_noise` (and `fixed_labels`): the same 'bills' at every snapshot."""
        return self.sample(z=self.fixed_noise, labels=self.fixed_labels)

    def interpolate(self, z0: Tensor, z1: Tensor, steps: int = 8, mode: str = "slerp", labels=None) -> Tensor:
        """Samples along the path from z0 to z1 (slerp or lerp), `steps` points including both ends."""
        if mode not in INTERPOLATIONS:
            raise GanError(f"mode must be one of {', '.join(INTERPOLATIONS)}; got {mode!r}")
        t = torch.linspace(0, 1, steps, device=self.device).unsqueeze(1)
        path = INTERPOLATIONS[mode](z0.to(self.device).view(1, -1), z1.to(self.device).view(1, -1), t)
        return self.sample(z=path, labels=labels)

    @property
    def num_parameters(self) -> dict[str, int]:
        """Trainable parameter counts of G and D."""
        return {"G": self.G.num_parameters, "D": self.D.num_parameters}


def _grad_norm(module: torch.nn.Module) -> Tensor:
    """Global L2 norm of a module's gradients (as a tensor, so no host sync here)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
