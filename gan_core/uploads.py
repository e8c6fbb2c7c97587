"""Uploaded checkpoints: which files are accepted (safetensors and its config.json only: pickles are
refused unopened), checked like every checkpoint, and saved as a new run of the uploader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, metadata_from_bytes, save_checkpoint, trainer_from_bytes
from .errors import GanError
from .runs import check_name, new_run_dir

PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".joblib", ".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp")  # pictures (gan_core.projection reads them)


def refusal_reason(filename: str) -> Optional[str]:
    """Why an uploaded file is refused (None if its type is accepted: .safetensors or .json)."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".safetensors", ".json"):
        return None
    if suffix in PICKLE_SUFFIXES:
        return (f"{filename}: refused. {suffix} files are Python pickles, which can run code when opened, so they are "
                f"never loaded here; upload the run's {WEIGHTS_FILE} (safetensors) instead")
    if suffix in IMAGE_SUFFIXES:
        return f"{filename}: refused. This is an image, not a checkpoint; upload a run's {WEIGHTS_FILE}"
    return f"{filename}: refused. Only a {WEIGHTS_FILE} checkpoint (and optionally its {CONFIG_FILE}) can be uploaded"


def import_upload(files: list[tuple[str, bytes]], owner: str = "", root: Optional[Path] = None,
                  name: str = "") -> tuple[Path, list[str]]:
    """Check uploaded files and save them as a new run. Returns (run folder, notes).

    Accepts exactly one .safetensors checkpoint and optionally one .json (its config.json, only
    checked: the checkpoint carries its own metadata). Raises GanError with every reason on refusal."""
    reasons = [r for r in (refusal_reason(f) for f, _ in files) if r]
    weights = [(f, b) for f, b in files if f.lower().endswith(".safetensors")]
    configs = [(f, b) for f, b in files if f.lower().endswith(".json")]
    if not reasons and len(weights) != 1:
        reasons.append(f"upload exactly one .safetensors checkpoint (got {len(weights)})" if weights
                       else f"a {CONFIG_FILE} alone holds no weights: upload the run's {WEIGHTS_FILE} (it carries its config)")
    if not reasons and len(configs) > 1:
        reasons.append(f"upload at most one {CONFIG_FILE}")
    if reasons:
        raise GanError("; ".join(reasons))
    filename, blob = weights[0]
    trainer = trainer_from_bytes(blob, device="cpu", source=filename)
    meta = metadata_from_bytes(blob, filename)
    notes = []
    if configs:
        cfg_name, cfg_blob = configs[0]
        try:
            given = json.loads(cfg_blob.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise GanError(f"{cfg_name}: not valid JSON") from None
        given_config = given.get("config", given) if isinstance(given, dict) else None
        if given_config != meta.get("config"):
            notes.append(f"{cfg_name} differs from the config stored inside {filename}; the checkpoint's own config is used")
    stem = Path(filename).stem
    base = check_name(name) if name else stem if stem != "model" else f"upload-{meta.get('dataset', 'run')}"
    folder = new_run_dir(base, root)
    # Re-saved from the checked tensors (never the raw bytes), with the owner in the header metadata.
    save_checkpoint(trainer, folder, {**meta, "owner": owner, "uploaded_from": filename})
    return folder, notes
