"""Reading a safetensors header without trusting it: the one parser of the project (checkpoints,
the evaluator and its reference statistics all go through here).

A safetensors file is an 8-byte little-endian header length, a JSON header, then the tensor data.
`parse_header` checks the length, the JSON (depth-limited), every tensor entry (known dtype, a
shape of non-negative ints, data offsets that match dtype x shape and lie inside the file) and the
`__metadata__` (a dict of strings), before any tensor is built.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

MAX_HEADER_BYTES = 16 * 2**20
MAX_JSON_DEPTH = 32
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
               "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


class HeaderError(ValueError):
    """A safetensors header that is truncated, corrupt or inconsistent; the message is one line."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header declares it."""

    dtype: str
    shape: tuple[int, ...]
    start: int  # offsets into the data section
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A checked header: its tensors, its metadata, and where the data section starts in the file."""

    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    data_start: int

    @property
    def data_bytes(self) -> int:
        """Bytes of tensor data the header declares."""
        return max((t.end for t in self.tensors.values()), default=0)


def parse_header(blob: bytes, file_size: int | None = None) -> SafetensorsHeader:
    """Check and parse the header at the start of `blob` (the whole file, or at least its header;
    then pass the real `file_size`)."""
    if len(blob) < 8:
        raise HeaderError("truncated: shorter than a safetensors header")
    size = int.from_bytes(blob[:8], "little")
    if not 2 <= size <= MAX_HEADER_BYTES:
        raise HeaderError(f"not a safetensors file (header length {size:,})")
    if len(blob) < 8 + size:
        raise HeaderError("truncated inside the header")
    raw = _load_json(blob[8:8 + size])
    if not isinstance(raw, dict):
        raise HeaderError("the header is not a JSON object")
    metadata = raw.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise HeaderError("__metadata__ must map strings to strings")
    tensors = {name: _entry(name, value) for name, value in raw.items()}
    header = SafetensorsHeader(tensors, metadata, 8 + size)
    available = (len(blob) if file_size is None else file_size) - header.data_start
    if header.data_bytes > available:
        raise HeaderError(f"truncated: the header declares {header.data_bytes:,} bytes of data, the file has {max(available, 0):,}")
    return header


def read_header(path: str | Path) -> SafetensorsHeader:
    """The checked header of a file, reading only the header's bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = int.from_bytes(head, "little") if len(head) == 8 else 0
        blob = head + (f.read(size) if 2 <= size <= MAX_HEADER_BYTES else b"")
        file_size = f.seek(0, 2)
    return parse_header(blob, file_size)


def data_section(blob: bytes) -> bytes:
    """The tensor data of a whole safetensors file (everything after the header)."""
    return blob[parse_header(blob).data_start:]


def _load_json(text: bytes) -> object:
    depth = level = 0
    for byte in text:  # refuse deep nesting before json recurses into it
        if byte in b"[{":
            level += 1
            depth = max(depth, level)
        elif byte in b"]}":
            level -= 1
    if depth > MAX_JSON_DEPTH:
        raise HeaderError(f"the header nests {depth} levels deep")
    try:
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise HeaderError("the header is not valid JSON") from None


def _entry(name: str, value: object) -> TensorEntry:
    if not isinstance(value, dict):
        raise HeaderError(f"tensor {name!r}: not described by an object")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if dtype not in DTYPE_BYTES:
        raise HeaderError(f"tensor {name!r}: unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise HeaderError(f"tensor {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets) or offsets[0] > offsets[1]):
        raise HeaderError(f"tensor {name!r}: bad data_offsets {offsets!r}")
    if (offsets[1] - offsets[0]) != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise HeaderError(f"tensor {name!r}: {offsets[1] - offsets[0]:,} bytes do not hold {dtype} x {shape}")
    return TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
