"""Checkpoints: weights (and optimiser state) in safetensors, config and metadata as JSON.

The JSON travels inside the safetensors header too, so `model.safetensors` alone is a complete,
self-describing checkpoint; `config.json` beside it is the human-readable copy. Every write goes
to a temporary file that is renamed into place, so a crash never leaves a half-written file.
Nothing is ever unpickled.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .config import TrainConfig
from .errors import CheckpointError, GanError
from .checkpoint_schema import check_metadata, check_tensor_layout
from .safetensors_header import HeaderError, SafetensorsHeader, parse_header, read_header
from .trainer import Trainer

FORMAT = "gan-playground-checkpoint"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
META_KEY = "gan_playground"
TEMP_NAME = re.compile(r"^\.[^/]+\.[A-Za-z0-9_]{6,12}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temp file in the same folder and an atomic rename. A full disk, a
    read-only or vanished folder is a CheckpointError saying what to do; nothing half-written remains
    and the file that was there stays as it was."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise CheckpointError(storage_problem(path.parent, exc)) from None
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)


def storage_problem(folder: Path, exc: OSError) -> str:
    """One line saying why `folder` could not be written and what to do about it."""
    if exc.errno == errno.ENOSPC:
        return f"not saved: the disk holding {folder} is full; free some space (e.g. delete old runs) and it saves again"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"not saved: {folder} is read-only; point GAN_RUNS_DIR (or --out) to a writable folder"
    if exc.errno == errno.ENOENT:
        return f"not saved: {folder} was removed or cannot be created; check that the runs folder still exists"
    return f"not saved: cannot write {folder} ({exc.strerror or exc})"


def remove_orphan_temp_files(folder: Path, older_than: float = 60.0) -> int:
    """Delete the temp files crashed writes left behind, in a run folder or in the whole runs folder (then
    in each run folder inside it too); returns how many were removed.

    Only this module's own names (`.<name>.<6 to 12 random chars>.tmp`, as `atomic_write_bytes` makes them) older
    than `older_than` seconds are touched, so a write in progress and anybody else's files are left alone."""
    folder = Path(folder)
    try:
        folders = [folder, *(f for f in folder.iterdir() if f.is_dir() and not f.is_symlink() and not f.name.startswith("."))]
    except OSError:  # missing or unreadable: nothing of ours to clean
        return 0
    removed = 0
    for tmp in (t for f in folders for t in f.glob(".*.tmp") if TEMP_NAME.match(t.name)):
        try:
            if tmp.is_file() and not tmp.is_symlink() and time.time() - tmp.stat().st_mtime > older_than:
                tmp.unlink()
                removed += 1
        except OSError:
            pass
    return removed


def repair_config_json(folder: Path) -> bool:
    """Rewrite config.json from the checkpoint's own header when a crash left them disagreeing; True if
    it was rewritten (model.safetensors, written first, is the truth)."""
    try:
        meta = read_metadata(folder)
        if (Path(folder) / CONFIG_FILE).is_file() and json.loads((Path(folder) / CONFIG_FILE).read_text()) == meta:
            return False
        atomic_write_bytes(Path(folder) / CONFIG_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        return True
    except (GanError, OSError, ValueError):
        return False


def checkpoint_tensors(trainer: Trainer, include_optimizer: bool = True) -> dict[str, torch.Tensor]:
    """All tensors of a run, flat: G.*, D.*, G_ema.*, and optionally optimiser state and RNG state."""
    tensors: dict[str, torch.Tensor] = {}
    modules = {"G": trainer.G, "D": trainer.D}
    if trainer.G_ema is not None:
        modules["G_ema"] = trainer.G_ema
    for prefix, module in modules.items():
        for name, value in module.state_dict().items():
            tensors[f"{prefix}.{name}"] = value.detach().cpu().contiguous()
    if include_optimizer:
        for prefix, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
            for index, state in opt.state_dict()["state"].items():
                for name, value in state.items():
                    if torch.is_tensor(value):
                        tensors[f"{prefix}.{index}.{name}"] = value.detach().cpu().contiguous()
        tensors["rng_state"] = trainer.rng.get_state().cpu()
    return tensors


def run_metadata(trainer: Trainer, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The JSON metadata saved with a checkpoint."""
    from . import __version__

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gan_core_version": __version__,
        "config": trainer.config.to_dict(),
        "step": trainer.step_count,
        "seconds": round(trainer.seconds, 3),
        "dataset": trainer.config.dataset,
        "class_names": list(trainer.class_names),
        "sample_shape": list(trainer.sample_shape),
        "parameters": trainer.num_parameters,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }


def save_checkpoint(trainer: Trainer, run_dir: str | Path, extra_meta: Optional[dict[str, Any]] = None,
                    include_optimizer: bool = True) -> Path:
    """Save `trainer` into `run_dir` atomically; refuses to save non-finite (diverged) weights.

    model.safetensors (which carries the metadata in its header) is written first and is the truth;
    config.json is its readable copy. A save is all or nothing for the pair: the previous weights keep a
    second name (a hard link) until config.json is written, and if that write fails (full disk, vanished
    folder) they are renamed back, so the folder holds the previous, consistent checkpoint. Only a crash
    of the process between the two renames (or a filesystem without hard links) can leave config.json
    stale; `repair_config_json` (run at server start and before the CLI resumes) then rewrites it from
    the weights. Writing config.json first would not help: it would then disagree until the weights land."""
    run_dir = Path(run_dir)
    tensors = checkpoint_tensors(trainer, include_optimizer)
    for name, value in tensors.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise CheckpointError(f"not saving: {name} holds NaN/inf (the run diverged); the last good checkpoint is kept")
    meta = run_metadata(trainer, extra_meta)
    blob = save_safetensors_bytes(tensors, metadata={META_KEY: json.dumps(meta)})
    backup = _hard_link_backup(run_dir / WEIGHTS_FILE)
    try:
        atomic_write_bytes(run_dir / WEIGHTS_FILE, blob)
        try:
            atomic_write_bytes(run_dir / CONFIG_FILE, (json.dumps(meta, indent=2) + "\n").encode())
        except CheckpointError:
            _roll_back(run_dir, backup)
            raise
    finally:
        if backup is not None:
            backup.unlink(missing_ok=True)
    return run_dir / WEIGHTS_FILE


def _hard_link_backup(weights: Path) -> Optional[Path]:
    """A second name for the current checkpoint (a hard link: no copy, no space), so that a save whose
    config.json fails can put the previous weights back; None if there is none or links are not possible."""
    if not weights.is_file():
        return None
    backup = weights.with_name(f".{weights.name}.{os.urandom(6).hex()[:8]}.tmp")
    try:
        os.link(weights, backup)
    except OSError:
        return None
    return backup


def _roll_back(run_dir: Path, backup: Optional[Path]) -> None:
    """After a failed config.json write: the previous weights back in place (they agree with the config.json
    still there); if that is impossible, remove the stale config.json (`repair_config_json` re-creates it)."""
    try:
        if backup is not None:
            os.replace(backup, run_dir / WEIGHTS_FILE)
        else:
            (run_dir / CONFIG_FILE).unlink(missing_ok=True)
    except OSError:
        try:
            (run_dir / CONFIG_FILE).unlink(missing_ok=True)
        except OSError:
            pass


def _weights_path(path: str | Path) -> Path:
    path = Path(path)
    weights = path / WEIGHTS_FILE if path.is_dir() else path
    if not weights.exists():
        raise CheckpointError(f"{path} is not a GAN Playground run: no {WEIGHTS_FILE} in it")
    return weights


def read_metadata(path: str | Path) -> dict[str, Any]:
    """A checkpoint's metadata (config, step, dataset, classes...) without loading the weights."""
    return read_checkpoint_header(path)[0]


def read_checkpoint_header(path: str | Path) -> tuple[dict[str, Any], TrainConfig, SafetensorsHeader]:
    """A checkpoint's checked metadata, its validated config and its checked header, reading only the
    header's bytes (the tensors' layout is for `check_tensor_layout`)."""
    weights = _weights_path(path)
    try:
        header = read_header(weights)
    except OSError as exc:
        raise CheckpointError(f"cannot read {weights}: {exc.strerror}") from None
    except HeaderError as exc:
        raise CheckpointError(f"{weights} is corrupt or truncated, or not a safetensors file ({exc})") from None
    meta, config = _parse_meta(header.metadata, weights)
    return meta, config, header


def metadata_from_bytes(blob: bytes, source: str = "uploaded file") -> dict[str, Any]:
    """The metadata of a checkpoint given as bytes (e.g. an upload), checked like `read_metadata`."""
    return _parse_meta(_checked_header(blob, source).metadata, source)[0]


def _checked_header(blob: bytes, source: Any) -> SafetensorsHeader:
    """The checked header of a safetensors file given as bytes."""
    try:
        return parse_header(blob)
    except HeaderError as exc:
        raise CheckpointError(f"{source} is corrupt or truncated, or not a safetensors file ({exc})") from None


def _parse_meta(header: dict[str, str], source: Any) -> tuple[dict[str, Any], TrainConfig]:
    """The checkpoint metadata in a header's `__metadata__`, checked, and its validated config."""
    if META_KEY not in header:
        raise CheckpointError(f"{source} is a safetensors file but not a GAN Playground checkpoint (no '{META_KEY}' metadata)")
    try:
        meta = json.loads(header[META_KEY])
    except (ValueError, RecursionError):
        raise CheckpointError(f"{source}: the checkpoint metadata is not valid JSON") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else "?"
        raise CheckpointError(f"{source} is not a GAN Playground checkpoint (format {str(found)[:40]!r})")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise CheckpointError(f"{source}: format_version must be a non-negative integer")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source} was written by a newer GAN Playground (format {version}); update to load it")
    return meta, check_metadata(meta, source)


def load_checkpoint(path: str | Path, device: str = "auto") -> Trainer:
    """Rebuild a Trainer from a run folder (or a .safetensors file). Its dataset loads only if you train on."""
    weights = _weights_path(path)
    try:
        blob = weights.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot read {weights}: {exc.strerror}") from None
    return trainer_from_bytes(blob, device=device, source=str(weights))


def trainer_from_bytes(blob: bytes, device: str = "auto", source: str = "uploaded file") -> Trainer:
    """Rebuild a Trainer from the bytes of a model.safetensors (e.g. an upload). Never unpickles."""
    header = _checked_header(blob, source)
    meta, config = _parse_meta(header.metadata, source)
    check_tensor_layout(config, meta, header, source)  # before a single tensor or model is built
    _check_budget(config, meta, source)
    try:
        tensors = load_safetensors_bytes(blob)
    except (SafetensorError, OSError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{source} is corrupt or truncated, or not a safetensors file ({_first_line(exc)})") from None
    try:
        trainer = Trainer(config.replace(device=device), sample_shape=tuple(meta["sample_shape"]), class_names=tuple(meta.get("class_names", ())))
    except (GanError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{source}: the saved config is not usable ({_first_line(exc)})") from None
    _restore(trainer, tensors, source)
    trainer.step_count = int(meta.get("step", 0))
    trainer.seconds = float(meta.get("seconds", 0.0))
    return trainer


def _check_budget(config: TrainConfig, meta: dict[str, Any], source: str) -> None:
    """Refuse a checkpoint whose run would not fit the memory one run may use, before building it."""
    from .budget import check_run_budget, default_run_budget_bytes

    names = meta.get("class_names", [])
    try:
        check_run_budget(config, tuple(meta["sample_shape"]), default_run_budget_bytes(), len(names))
    except GanError as exc:
        raise CheckpointError(f"{source}: config is too large to load here ({exc})") from None


def _restore(trainer: Trainer, tensors: dict[str, torch.Tensor], source: str) -> None:
    modules = {"G": trainer.G, "D": trainer.D}
    if trainer.G_ema is not None:
        modules["G_ema"] = trainer.G_ema if any(k.startswith("G_ema.") for k in tensors) else None
    for prefix, module in modules.items():
        if module is None:  # saved without EMA weights: start the average from G
            trainer.G_ema.load_state_dict(trainer.G.state_dict())
            continue
        state = {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CheckpointError(f"{source}: the weights do not fit the model its config describes ({prefix}: {detail})") from None
    for prefix, opt in (("opt_g", trainer.opt_g), ("opt_d", trainer.opt_d)):
        saved: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith(prefix + "."):
                _, index, name = key.split(".", 2)
                saved.setdefault(int(index), {})[name] = value.to(trainer.device) if name != "step" else value
        if saved:
            state = opt.state_dict()
            state["state"] = saved
            try:
                opt.load_state_dict(state)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise CheckpointError(f"{source}: optimiser state does not fit ({_first_line(exc)})") from None
    if "rng_state" in tensors and trainer.device.type == "cpu":
        trainer.rng.set_state(tensors["rng_state"])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
