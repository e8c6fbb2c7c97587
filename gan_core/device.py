"""Device choice and a human description of it."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, else mps, else cpu; an explicit device that is absent is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is available: use device=auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was asked for but Apple MPS is not available: use device=auto or cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device must be one of auto, cpu, cuda, mps; got {name!r}")
    return torch.device(name)


def describe_device(device: torch.device | None = None) -> str:
    """E.g. 'GPU: NVIDIA A100 (cuda)' or 'CPU, 2 threads'."""
    device = device or resolve_device("auto")
    if device.type == "cuda":
        return f"GPU: {torch.cuda.get_device_name(device)} (cuda)"
    if device.type == "mps":
        return "GPU: Apple MPS"
    return f"CPU, {torch.get_num_threads()} threads"


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast is available (and worth trying) on this device."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls in hardware (AMX or AVX512-BF16, e.g. Intel Xeon from
    Cooper/Sapphire Rapids, AMD Zen 4). Elsewhere bf16 is emulated and slower than fp32."""
    cpu = getattr(torch, "cpu", None)
    checks = [getattr(cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if all(check is None for check in checks):  # older torch: fall back to the instruction-set level
        return bool(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")().upper().startswith("AVX512"))
    return any(check() for check in checks if check is not None)
