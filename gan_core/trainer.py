"""The training step. `Trainer.step()` does exactly one "(1) update D k times / (2) update G" iteration.

The trainer owns the models, optimisers, data and a private random generator; it knows nothing of
files (see checkpoint.py) or of the UI (see gan_core/live and gan_core/app). It is used from one thread at a time.

How the step runs on the device (mixed precision, memory format, when numbers are read back to
the host) is a `Speed` (speed.py); `auto_speed` picks what measured fastest.
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
from .device import resolve_device
from .errors import GanError
from .augment import augment
from .latent import INTERPOLATIONS
from .losses import get_loss, gradient_penalty, r1_penalty
from .models import build_models
from .sampling import checked_labels, eval_mode
from .speed import CUDA_SYNC_EVERY, Speed, auto_speed  # noqa: F401 - CUDA_SYNC_EVERY: part of this module's API

# torch.manual_seed is process-global: serialise model construction so that runs started in
# parallel threads (the app) still get the initial weights their seed promises.
_INIT_LOCK = threading.Lock()
GRID_COLUMNS = 8


class Diverged(GanError):
    """Training produced NaN or infinite values; the run must stop."""


@dataclass
class StepRecord:
    """What one step reports. d_real / d_fake are mean sigmoid(D) for probability losses, else mean raw score.

    With deferred read-back (`Speed.sync_every` > 1, GPUs) the numbers are those of the latest
    step read back, at most `sync_every - 1` steps old; `images_per_s` is then the rate over
    the steps since the previous read-back."""

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
                 sample_shape: Optional[tuple[int, ...]] = None, class_names: tuple[str, ...] = (),
                 speed: Optional[Speed] = None, step_keyed_draws: bool = False):
        """Build a run from `config`. Pass `sample_shape` (and `class_names`) instead of data to
        build it for sampling only (the dataset is then loaded on the first `step()`).
        `speed` overrides how the step runs (default: `auto_speed`).

        `step_keyed_draws` (the two sides of an A/B pair): the real batch, noise and labels of D update
        i of step s come from a generator seeded by (seed, s, i), and the D updates run from i = k-1 down
        to 0. Two runs with the same seed and batch size then see the same real batches and noise at
        every step, even with different `d_steps`: the D update right before G's (i = 0) and G's update
        itself get identical inputs; a run with more D steps gets extra batches of its own for i >= 1."""
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
        self.speed = speed or auto_speed(config, self.device)
        if self.speed.sync_every < 1:
            raise GanError("Speed.sync_every must be at least 1")
        if self.speed.compile and self.device.type != "cuda":
            raise GanError("Speed.compile is for CUDA GPUs only (on a CPU it trains slower than eager)")

        with _INIT_LOCK:
            torch.manual_seed(config.seed)
            self.G, self.D = build_models(config, self.sample_shape, len(self.class_names))
        self._memory_format = torch.channels_last if self.speed.channels_last and config.arch == "dcgan" else torch.contiguous_format
        self.G.to(self.device).set_memory_format(self._memory_format)
        self.D.to(self.device).set_memory_format(self._memory_format)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if config.ema > 0 else None
        if self.speed.compile:
            self.G.compile(mode=self.speed.compile)
            self.D.compile(mode=self.speed.compile)
        adam = dict(fused=True) if self.device.type in ("cpu", "cuda") else dict(foreach=True)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=config.lr_g, betas=(config.beta1_g, config.beta2_g), **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=config.lr_d, betas=(config.beta1_d, config.beta2_d), **adam)
        # fp16 needs loss scaling against gradient underflow (one scaler per optimiser); bf16 does not.
        fp16 = self.speed.amp_dtype == torch.float16
        self.scaler_d = torch.amp.GradScaler(self.device.type) if fp16 else None
        self.scaler_g = torch.amp.GradScaler(self.device.type) if fp16 else None
        self._g_params, self._d_params = list(self.G.parameters()), list(self.D.parameters())
        self._d_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.D.modules())
        if self.G_ema is not None:
            self._ema_params, self._ema_buffers = list(self.G_ema.parameters()), list(self.G_ema.buffers())
            self._g_buffers = list(self.G.buffers())

        self.rng = torch.Generator(device=self.device).manual_seed(config.seed)
        self.step_keyed_draws = step_keyed_draws
        self.fixed_noise, self.fixed_labels = self._make_fixed_inputs()
        self.step_count = 0
        self.seconds = 0.0  # time spent inside step(), i.e. training time
        self.status = "ready"  # ready, diverged
        self._pending: list[Tensor] = []  # per-step numbers on the device, not read back yet
        self._last_values: Optional[list[float]] = None
        self._window_images = 0  # images trained since the last read-back
        self._window_seconds = 0.0
        self._last_rate = 0.0

    @property
    def use_bf16(self) -> bool:
        """True when the step runs under bf16 autocast."""
        return self.speed.amp_dtype == torch.bfloat16

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

    def _real_batch(self) -> tuple[Tensor, Optional[Tensor]]:
        real, labels = self.data.batch(self.config.batch_size, self.rng)
        return real.contiguous(memory_format=self._memory_format), (labels if self.num_classes else None)

    def _autocast(self):
        if self.speed.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.speed.amp_dtype)

    # --- the step --------------------------------------------------------------------------
    def step(self) -> StepRecord:
        """One iteration: (1) k discriminator updates, (2) one generator update. Raises Diverged on NaN/inf."""
        if self.status == "diverged":
            raise Diverged(f"training diverged at step {self.step_count}; start again with lower learning rates")
        c = self.config
        started = time.perf_counter()
        if self.speed.compile == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # a new training iteration for the CUDA graphs
        if not self.G.training:
            self.G.train()
        if not self.D.training:
            self.D.train()
        real_target = 1.0 - c.label_smoothing

        # (1) Update D: maximise log D(x) + log(1 - D(G(z))) (or the chosen loss's equivalent).
        for n in range(c.d_steps):
            if self.step_keyed_draws:  # update i = k-1 ... 0, inputs keyed by (seed, step, i): see __init__
                self.rng.manual_seed(step_draw_seed(c.seed, self.step_count, c.d_steps - 1 - n))
            real, real_labels = self._real_batch()
            fake_labels = self.random_labels(c.batch_size)
            last = n == c.d_steps - 1  # the last fakes are reused in (2), so keep G's graph for them
            with torch.set_grad_enabled(last), self._autocast():
                fake = self.G(self.noise(c.batch_size), fake_labels)
            seen_real = self._seen_by_d(real)
            r1_due = c.r1_weight > 0 and (self.step_count * c.d_steps + n) % c.r1_every == 0
            if r1_due:
                seen_real.requires_grad_(True)
            with self._autocast():
                out_real, out_fake = self._d_outputs(seen_real, real_labels, self._seen_by_d(fake.detach()), fake_labels)
                loss_d = self.loss.d_loss(out_real.float(), out_fake.float(), real_target)
            if self.loss.needs_gradient_penalty:
                loss_d = loss_d + c.gp_weight * gradient_penalty(self.D, real, fake.detach().float(), real_labels)
            if r1_due:  # lazy R1: every r1_every-th update, scaled by r1_every so the average pull is the same
                loss_d = loss_d + 0.5 * c.r1_weight * c.r1_every * r1_penalty(seen_real, out_real)
            grad_norm_d = self._update(loss_d, self.opt_d, self._d_params, self.scaler_d)

        # (2) Update G: make the updated D call the same fakes real (as pytorch/examples' DCGAN does).
        # D's weights are frozen meanwhile: the gradient flows through D, but none is computed for it.
        with self._autocast(), _frozen(self._d_params):
            loss_g = self.loss.g_loss(self.D(self._seen_by_d(fake), fake_labels).float())
        grad_norm_g = self._update(loss_g, self.opt_g, self._g_params, self.scaler_g)
        self._update_ema()

        score = torch.sigmoid if self.loss.probability_output else (lambda t: t)
        self._pending.append(torch.stack([loss_d.detach(), loss_g.detach(), score(out_real.detach().float()).mean(),
                                          score(out_fake.detach().float()).mean(), grad_norm_d, grad_norm_g]))
        self.step_count += 1
        due = len(self._pending) >= self.speed.sync_every or self._last_values is None
        rows = self._pending_rows() if due else None  # the step's only host sync
        elapsed = time.perf_counter() - started
        self.seconds += elapsed
        self._window_seconds += elapsed
        self._window_images += c.batch_size * c.d_steps
        if rows is not None:
            self._take(rows)  # raises Diverged
        return StepRecord(self.step_count, *self._last_values, images_per_s=self._last_rate, seconds=self.seconds)

    def _seen_by_d(self, images: Tensor) -> Tensor:
        """`images` as D sees them: augmented (config.augment, differentiably) or as they are."""
        if self.config.augment == "none":
            return images
        return augment(images, self.config.augment, self.rng).contiguous(memory_format=self._memory_format)

    def _d_outputs(self, real: Tensor, real_labels: Optional[Tensor], fake: Tensor,
                   fake_labels: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """D's outputs for reals and fakes. A D without batch-norm scores both in one pass (the same
        maths, larger and fewer matmuls); with batch-norm, each batch must keep its own statistics."""
        if self._d_batchnorm:
            return self.D(real, real_labels), self.D(fake, fake_labels)
        labels = torch.cat([real_labels, fake_labels]) if self.num_classes else None
        return self.D(torch.cat([real, fake]), labels).chunk(2)

    def _update(self, loss: Tensor, opt: torch.optim.Optimizer, params: list[Tensor],
                scaler: Optional[torch.amp.GradScaler]) -> Tensor:
        """Backward, gradient norm, optimiser step. Returns the norm as a tensor (no host sync)."""
        opt.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            norm = _grad_norm(params)
            opt.step()
            return norm
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        # a step the scaler skips (inf/NaN gradients, normal while it calibrates) reports norm 0
        norm = torch.nan_to_num(_grad_norm(params), nan=0.0, posinf=0.0)
        scaler.step(opt)
        scaler.update()
        return norm

    def _pending_rows(self) -> list[list[float]]:
        """The numbers of the steps not read back yet, copied to the host in one transfer."""
        rows = torch.stack(self._pending).tolist()
        self._pending.clear()
        return rows

    def _take(self, rows: list[list[float]]) -> None:
        """Accept read-back rows (the last `len(rows)` steps): the rate since the previous read-back,
        the latest values; Diverged naming the first step with a NaN or infinite value."""
        self._last_rate = self._window_images / max(self._window_seconds, 1e-9)
        self._window_images, self._window_seconds = 0, 0.0
        first = self.step_count - len(rows) + 1
        for offset, values in enumerate(rows):
            if not all(math.isfinite(v) for v in values):
                self.status = "diverged"
                raise Diverged(f"training diverged at step {first + offset} (loss_d={values[0]:.3g}, loss_g={values[1]:.3g}): "
                               "lower the learning rates, or try the bce loss or label smoothing")
        self._last_values = rows[-1]

    def flush_stats(self) -> Optional[StepRecord]:
        """Read back the steps not synced yet (deferred mode) and return the latest step's record
        (None before the first step). Raises Diverged like `step()`."""
        if self._pending:
            self._take(self._pending_rows())
        if self._last_values is None:
            return None
        return StepRecord(self.step_count, *self._last_values, images_per_s=self._last_rate, seconds=self.seconds)

    def _update_ema(self) -> None:
        if self.G_ema is None:
            return
        # Warm-up: average over the steps seen so far early on, so early samples are not stuck at init.
        decay = min(self.config.ema, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            torch._foreach_lerp_(self._ema_params, self._g_params, 1.0 - decay)
            for b_ema, b in zip(self._ema_buffers, self._g_buffers):
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
        with eval_mode(self.sampler) as g:
            z = self.noise(n) if z is None else z.to(self.device, torch.float32)
            n = len(z)
            labels = checked_labels(labels, n, self.num_classes, self.class_names, self.device)
            if labels is None and self.num_classes:
                labels = self.random_labels(n)
            with self._autocast():
                out = g(z, labels)
            return out.float().contiguous().cpu()

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


def step_draw_seed(seed: int, step: int, update: int) -> int:
    """The seed of D update `update` of step `step` in a run with step-keyed draws (a 63-bit mix, so
    neighbouring steps and seeds get unrelated streams)."""
    x = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + update * 0x94D049BB133111EB + 1) & (2**64 - 1)
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & (2**64 - 1)
    return (x ^ (x >> 32)) & (2**63 - 1)


@contextlib.contextmanager
def _frozen(params: list[Tensor]):
    """Parameters that need no gradient while the graph is built (autograd then skips their
    weight-gradient kernels)."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _grad_norm(params: list[Tensor]) -> Tensor:
    """Global L2 norm of the parameters' gradients (as a tensor, so no host sync here)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=params[0].device if params else None)
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
