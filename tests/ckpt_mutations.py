"""Test helpers: take a real checkpoint apart (header JSON + data section) and put edited ones together."""

from __future__ import annotations

import json
from typing import Any, Callable

from gan_core.checkpoint import META_KEY


def split(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """(header dict, data section) of a well-formed safetensors blob."""
    size = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + size]), blob[8 + size:]


def join(header: Any, data: bytes, text: str | None = None) -> bytes:
    """A safetensors blob from a header (or its raw JSON `text`) and a data section."""
    raw = (text if text is not None else json.dumps(header)).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + data


def edit_meta(blob: bytes, change: Callable[[dict[str, Any]], Any]) -> bytes:
    """The blob with its GAN Playground metadata edited in place by `change(meta)`."""
    header, data = split(blob)
    meta = json.loads(header["__metadata__"][META_KEY])
    change(meta)
    header["__metadata__"][META_KEY] = json.dumps(meta)
    return join(header, data)


def edit_header(blob: bytes, change: Callable[[dict[str, Any]], Any]) -> bytes:
    """The blob with its safetensors header edited in place by `change(header)` (data unchanged)."""
    header, data = split(blob)
    change(header)
    return join(header, data)


def set_path(meta: dict[str, Any], path: str, value: Any) -> None:
    """Set meta['a']['b'] for path 'a.b'."""
    *parents, last = path.split(".")
    node = meta
    for key in parents:
        node = node[key]
    node[last] = value
