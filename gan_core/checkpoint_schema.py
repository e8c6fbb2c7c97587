"""The schema of a checkpoint, checked before any tensor or model is built: the metadata's types and
ranges, a sample shape that fits the config, and the tensors the header declares (names, shapes,
dtypes, optimiser keys, RNG state) against the model the config describes, built on PyTorch's
`meta` device (shapes only, no memory). Anything else is a CheckpointError naming the field."""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from .config import TrainConfig
from .data import DATASETS
from .errors import CheckpointError
from .models import build_models
from .safetensors_header import SafetensorsHeader

MAX_STEP = 10**9
MAX_TENSOR_BYTES = 2 * 2**30  # refused before a model is even built on the meta device
MAX_CLASSES = 1000
MAX_TEXT = 500
IMAGE_SIDES = (28, 32, 64)
TEXT_FIELDS = ("owner", "name", "status", "preset", "dataset", "saved_at", "uploaded_from", "exported_from", "gan_core_version")
OPTIMISER_KEY = re.compile(r"^(opt_[gd])\.(\d{1,6})\.(exp_avg|exp_avg_sq|max_exp_avg_sq|step)$")
FLOAT_DTYPES = ("F32", "F16", "BF16")
_DTYPE_NAMES = {torch.float32: "F32", torch.int64: "I64", torch.float16: "F16", torch.bfloat16: "BF16"}


def _bad(source: Any, field: str, why: str) -> CheckpointError:
    return CheckpointError(f"{source}: {field} {why}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_metadata(meta: dict[str, Any], source: Any) -> TrainConfig:
    """Check every field of a checkpoint's metadata; returns its validated config."""
    try:
        config = TrainConfig.from_dict(meta.get("config")).validate()
    except Exception as exc:  # any way a config can be wrong is one message
        raise _bad(source, "config", f"is not usable ({_first_line(exc)})") from None
    step = meta.get("step", 0)
    if not _is_int(step) or not 0 <= step <= MAX_STEP:
        raise _bad(source, "step", f"must be an integer in [0, {MAX_STEP:g}], got {step!r:.40}")
    seconds = meta.get("seconds", 0.0)
    if not _is_number(seconds) or not 0 <= seconds <= 1e9:
        raise _bad(source, "seconds", f"must be a finite number >= 0, got {seconds!r:.40}")
    names = meta.get("class_names", [])
    if (not isinstance(names, list) or len(names) > MAX_CLASSES
            or not all(isinstance(n, str) and len(n) <= MAX_TEXT for n in names)):
        raise _bad(source, "class_names", f"must be a list of at most {MAX_CLASSES} short strings")
    _check_shape(meta.get("sample_shape"), config, source)
    for field in TEXT_FIELDS:
        if field in meta and not (isinstance(meta[field], str) and len(meta[field]) <= MAX_TEXT):
            raise _bad(source, field, "must be a short string")
    for field in ("final_metrics", "last_record", "parameters"):
        value = meta.get(field)
        if value is not None and not (isinstance(value, dict) and len(value) <= 64
                                      and all(isinstance(k, str) and _is_number(v) for k, v in value.items())):
            raise _bad(source, field, "must map names to finite numbers")
    return config


def _check_shape(shape: Any, config: TrainConfig, source: Any) -> None:
    spec = DATASETS[config.dataset]
    if not isinstance(shape, list) or not all(_is_int(v) for v in shape):
        raise _bad(source, "sample_shape", f"must be a list of integers, got {shape!r:.60}")
    if spec.kind == "points":
        ok = shape == [2]
    else:
        ok = len(shape) == 3 and shape[0] in (1, 3) and shape[1] == shape[2] and shape[1] in IMAGE_SIDES
        ok = ok and (not spec.shape or tuple(shape) == spec.shape)
    if not ok:
        want = list(spec.shape) if spec.shape else f"[1 or 3, side, side] with side in {IMAGE_SIDES}"
        raise _bad(source, "sample_shape", f"{shape!r:.60} does not fit dataset {config.dataset!r} (expected {want})")


def check_tensor_layout(config: TrainConfig, meta: dict[str, Any], header: SafetensorsHeader, source: Any) -> None:
    """Check the tensors the header declares against the model `config` describes, before loading them.
    `meta` and `config` are what `check_metadata` passed and returned."""
    if header.data_bytes > MAX_TENSOR_BYTES:
        raise _bad(source, "tensors", f"declare {header.data_bytes / 2**30:.1f} GiB, more than the "
                                      f"{MAX_TENSOR_BYTES / 2**30:.0f} GiB a checkpoint may hold")
    names = meta.get("class_names", [])
    with torch.device("meta"):
        try:
            g, d = build_models(config, tuple(meta["sample_shape"]), len(names))
        except Exception as exc:
            raise _bad(source, "config", f"describes no model ({_first_line(exc)})") from None
    prefixes = {"G": g, "D": d, **({"G_ema": g} if config.ema > 0 and any(k.startswith("G_ema.") for k in header.tensors) else {})}
    expected = {f"{p}.{k}": (tuple(v.shape), _DTYPE_NAMES.get(v.dtype, str(v.dtype)))
                for p, module in prefixes.items() for k, v in module.state_dict().items()}
    for name, (shape, dtype) in expected.items():
        entry = header.tensors.get(name)
        if entry is None:
            raise CheckpointError(f"{source}: the weights do not fit the model its config describes (no tensor {name})")
        if entry.shape != shape:
            raise CheckpointError(f"{source}: the weights do not fit the model its config describes (tensor {name} "
                                  f"has shape {list(entry.shape)}, the model needs {list(shape)})")
        if entry.dtype != dtype:  # load_state_dict would cast silently (F64 -> F32, even I8 -> F32)
            raise CheckpointError(f"{source}: the weights do not fit the model its config describes (tensor {name} "
                                  f"is {entry.dtype}, the model needs {dtype})")
    params = {"opt_g": [tuple(p.shape) for p in g.parameters()], "opt_d": [tuple(p.shape) for p in d.parameters()]}
    for name, entry in header.tensors.items():
        if name not in expected:
            _check_extra(name, entry, params, source)


def _check_extra(name: str, entry: Any, params: dict[str, list[tuple[int, ...]]], source: Any) -> None:
    if name == "rng_state":
        size = torch.Generator().get_state().numel()
        if entry.dtype != "U8" or entry.shape != (size,):
            raise _bad(source, "tensor rng_state", f"must be {size} bytes (U8), got {entry.dtype} {list(entry.shape)}")
        return
    match = OPTIMISER_KEY.match(name)
    if match is None:
        raise _bad(source, f"tensor {name}", "is not part of a GAN Playground checkpoint")
    prefix, index, kind = match.group(1), int(match.group(2)), match.group(3)
    if index >= len(params[prefix]):
        raise _bad(source, f"tensor {name}", f"refers to parameter {index}; the model has {len(params[prefix])}")
    want = () if kind == "step" else params[prefix][index]
    if entry.shape != want or entry.dtype not in FLOAT_DTYPES:
        raise _bad(source, f"tensor {name}", f"must be {list(want)} floats, got {entry.dtype} {list(entry.shape)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
