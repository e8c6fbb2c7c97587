"""A trained generator loaded for sampling: G alone (its EMA weights when the run kept them), built
from the config inside a checkpoint, the way nanoGPT's sample.py builds `GPT(GPTConfig(**args))`.

No discriminator, no optimiser state, no data set: this is what the explorers (latent walks, class
control, the runs page's sample grids) use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from .config import TrainConfig
from .data import DATASETS, DatasetSpec
from .device import resolve_device
from .errors import CheckpointError
from .checkpoint_schema import check_tensor_layout
from .models import GanModule, build_generator
from .sampling import checked_labels, eval_mode


@dataclass
class Generator:
    """G of a run, ready to sample. `config` is the run's TrainConfig; `meta` its checkpoint metadata."""

    config: TrainConfig
    net: GanModule
    sample_shape: tuple[int, ...]
    class_names: tuple[str, ...]
    device: torch.device
    meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        """Classes a conditional generator can be asked for (0 if unconditional)."""
        return len(self.class_names) if self.config.conditional else 0

    @property
    def spec(self) -> DatasetSpec:
        """The data set the run was trained on."""
        return DATASETS[self.config.dataset]

    @property
    def sampler(self) -> GanModule:
        """The network samples come from (the same name as `Trainer.sampler`)."""
        return self.net

    @torch.no_grad()
    def sample(self, n: int = 64, labels: Optional[Tensor | int] = None, z: Optional[Tensor] = None,
               seed: int = 0) -> Tensor:
        """n samples (float32 on the CPU) for latent vectors `z` (default: n drawn from `seed`).

        labels: an int (all one class), n ints, or None (classes in turn 0, 1, 2... if conditional)."""
        if z is None:
            z = torch.randn(n, self.config.z_dim, generator=torch.Generator().manual_seed(seed))
        n = len(z)
        labels = checked_labels(labels, n, self.num_classes, self.class_names, self.device)
        if labels is None and self.num_classes:
            labels = (torch.arange(n) % self.num_classes).to(self.device)
        with eval_mode(self.net) as g:
            return g(z.to(self.device, torch.float32), labels).float().contiguous().cpu()


def load_generator(path: str | Path, device: str = "auto") -> Generator:
    """G of the run in `path` (a run folder or its model.safetensors), with its EMA weights if saved."""
    from .checkpoint import WEIGHTS_FILE, read_checkpoint_header  # checkpoint imports the trainer: load it lazily

    weights = Path(path) / WEIGHTS_FILE if Path(path).is_dir() else Path(path)
    meta, config, header = read_checkpoint_header(weights)
    check_tensor_layout(config, meta, header, weights)  # before any tensor is read
    shape, names = tuple(meta["sample_shape"]), tuple(meta.get("class_names", ()))
    net = build_generator(config, shape, len(names))
    _load_weights(net, weights, "G_ema" if config.ema > 0 else "G")
    target = resolve_device(device)
    return Generator(config, net.to(target).eval(), shape, names, target, meta)


def _load_weights(net: GanModule, weights: Path, prefix: str) -> None:
    """Read only `prefix.*` tensors (falling back to plain G) from the file into `net`."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = list(f.keys())
            if not any(k.startswith(prefix + ".") for k in keys):
                prefix = "G"  # saved without EMA weights
            state = {k[len(prefix) + 1:]: f.get_tensor(k) for k in keys if k.startswith(prefix + ".")}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights} is corrupt or truncated ({str(exc).splitlines()[0][:200]})") from None
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{weights}: the weights do not fit the model its config describes ({detail})") from None
