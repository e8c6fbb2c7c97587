"""What a run will cost before anything is allocated: parameters, optimiser state and activations,
measured on PyTorch's `meta` device (shapes only, no memory), against a per-run memory budget."""

from __future__ import annotations

import os
from typing import Optional

import torch

from .config import TrainConfig
from .errors import ConfigError
from .models import build_models

ENV_RUN_MEMORY_MB = "GAN_RUN_MEMORY_MB"
MACHINE_SHARE = 0.6  # of the machine's memory, shared by the admitted runs (the rest: server, pages, OS)
BYTES = 4  # float32


def machine_memory_bytes() -> int:
    """Physical memory of this machine (8 GiB if it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return 8 * 2**30


def default_run_budget_bytes(admitted_runs: int = 1) -> int:
    """Memory one run may use: $GAN_RUN_MEMORY_MB, else 60% of the machine shared by the admitted runs."""
    value = os.environ.get(ENV_RUN_MEMORY_MB, "")
    if value.strip():
        try:
            return max(1, int(float(value) * 2**20))
        except ValueError:
            pass
    return int(machine_memory_bytes() * MACHINE_SHARE / max(1, admitted_runs))


def estimate_run_bytes(config: TrainConfig, sample_shape: tuple[int, ...], num_classes: int = 0) -> int:
    """Bytes a training run of `config` needs: weights, gradients and two Adam moments of G and D (and the
    EMA copy of G), plus the activations of one D step and one G step at the batch size (kept for backward)."""
    classes = num_classes if config.conditional else 0
    with torch.device("meta"):
        g, d = build_models(config, tuple(sample_shape), classes)
        outputs: list[int] = []
        leaves = [m for m in (*g.modules(), *d.modules()) if not list(m.children())]
        hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel()) if torch.is_tensor(out) else None)
                 for m in leaves]
        labels = torch.zeros(config.batch_size, dtype=torch.long) if classes else None
        fake = g(torch.zeros(config.batch_size, config.z_dim), labels)
        d(fake, labels)
        for h in hooks:
            h.remove()
    g_params = sum(p.numel() for p in g.parameters())
    d_params = sum(p.numel() for p in d.parameters())
    state = (g_params + d_params) * 4 + (g_params if config.ema > 0 else 0)
    activations = sum(outputs) * 2 * (config.d_steps + 1)  # reals and fakes through D; each step kept for backward
    return (state + activations) * BYTES


def check_run_budget(config: TrainConfig, sample_shape: tuple[int, ...], limit_bytes: Optional[int] = None,
                     num_classes: int = 0) -> int:
    """The estimate of `estimate_run_bytes`, or a ConfigError naming the fields to lower when it is over
    `limit_bytes` (default: `default_run_budget_bytes()`)."""
    limit = default_run_budget_bytes() if limit_bytes is None else limit_bytes
    need = estimate_run_bytes(config, sample_shape, num_classes)
    if need > limit:
        raise ConfigError(f"this run needs about {need / 2**30:.1f} GB, more than the {limit / 2**30:.1f} GB each run "
                          f"may use here: lower g_width/d_width ({config.g_width}/{config.d_width}), batch_size "
                          f"({config.batch_size}) or z_dim ({config.z_dim})")
    return need
