"""How a training step runs on the device: mixed precision, memory format, and when the step's
numbers are read back to the host. The maths trained is the same for every choice (up to rounding);
`auto_speed` picks what measured fastest (see benchmarks/throughput.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .config import TrainConfig
from .device import bf16_supported

CUDA_SYNC_EVERY = 16  # on a GPU, read the step's numbers back every this many steps


@dataclass(frozen=True)
class Speed:
    """How the step is executed. The maths trained is the same for every choice (up to rounding).

    amp_dtype:      autocast dtype: None (fp32), torch.bfloat16, or torch.float16 (with a GradScaler).
    channels_last:  NHWC memory format for the weights and activations of convolutional models.
    sync_every:     read the step's numbers back to the host (the only sync) every N steps.
    compile:        "" (eager), or a torch.compile mode for G and D on CUDA, e.g. "reduce-overhead"
                    (CUDA graphs: for the tiny toy models, whose steps are launch-bound). Opt-in and
                    CUDA only: on the CPU it was slower than eager (toy: 0.6x after a 20 s compile).
    """

    amp_dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    sync_every: int = 1
    compile: str = ""


def auto_speed(config: TrainConfig, device: torch.device) -> Speed:
    """The fastest settings measured for this device and config (see benchmarks/throughput.py).
    The 2D toys stay in fp32 unless bf16 is asked for: their layers are too small to repay the casts."""
    precision = "fp32" if config.arch == "toy" and config.precision == "auto" else config.precision
    return Speed(amp_dtype=_amp_dtype(precision, device),
                 channels_last=config.arch == "dcgan" and device.type in ("cpu", "cuda"),
                 sync_every=CUDA_SYNC_EVERY if device.type == "cuda" else 1)


def _amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for `precision`: fp32 -> none; bf16 -> bf16 (CPU, or a GPU that has it);
    auto -> bf16 on CPUs and GPUs with native bf16, fp16 (with loss scaling) on older CUDA GPUs."""
    if precision == "fp32" or device.type not in ("cpu", "cuda"):
        return None
    if precision == "bf16":
        return torch.bfloat16 if device.type == "cpu" or bf16_supported(device) else None
    if bf16_supported(device):
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None
