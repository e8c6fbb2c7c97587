"""Saved runs on disk: listing (with bundled pretrained generators), naming, sharing, rename, delete.

A run is a folder holding `model.safetensors` (+ `config.json`), as written by RunWriter. Only
folders directly inside the runs folder can be renamed or deleted; pretrained ones are read-only.
Uploads are in uploads.py.
"""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from .checkpoint import WEIGHTS_FILE, read_metadata, remove_orphan_temp_files, repair_config_json
from .errors import CheckpointError, GanError
from .paths import ASSETS_DIR, runs_dir

PRETRAINED_DIR = ASSETS_DIR / "pretrained"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


METRICS_FILE = "metrics.csv"
SHARE_FILE = "sharing.json"


def _number(value: Any) -> Optional[float]:
    """A finite float from saved metadata, or None for anything else (junk never breaks a listing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class FinalMetrics:
    """The quality numbers saved with a run (see gan_core.live.quality): images or 2D toys."""

    fcd: Optional[float] = None
    fcd_n: Optional[int] = None
    fcd_floor: Optional[float] = None
    classes_covered: Optional[int] = None
    n_classes: Optional[int] = None
    modes_covered: Optional[int] = None
    n_modes: Optional[int] = None
    hq_fraction: Optional[float] = None

    @classmethod
    def from_meta(cls, saved: Any) -> "FinalMetrics":
        """Read the `final_metrics` entry of a checkpoint's metadata; wrong types read as missing."""
        saved = saved if isinstance(saved, dict) else {}
        values = {name: _number(saved.get(name)) for name in cls.__dataclass_fields__}
        ints = ("fcd_n", "classes_covered", "n_classes", "modes_covered", "n_modes")
        return cls(**{k: (int(v) if k in ints and v is not None else v) for k, v in values.items()})

    def to_meta(self) -> dict[str, float | int]:
        """The entries to save (missing ones left out)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def summary(self) -> str:
        """One line for tables: 'FCD 19.9, 10/10 classes' or '8/8 modes, 96% near a mode', '' if nothing was measured."""
        if self.fcd is not None:
            classes = f", {self.classes_covered}/{self.n_classes or 10} classes" if self.classes_covered is not None else ""
            return f"FCD {self.fcd:.1f}{classes}"
        if self.modes_covered is not None:
            good = f", {self.hq_fraction:.0%} near a mode" if self.hq_fraction is not None else ""
            return f"{self.modes_covered}/{self.n_modes} modes{good}"
        return ""


@dataclass(frozen=True)
class RunPair:
    """The link saved with each run of an A/B pair: the pair's id, this run's side, the other run's folder."""

    id: str
    side: str  # "A" or "B"
    other: str  # the other run's folder name when they were saved

    @classmethod
    def from_meta(cls, saved: Any) -> Optional["RunPair"]:
        """Read the `pair` entry of a checkpoint's metadata; None if absent or malformed."""
        if not isinstance(saved, dict):
            return None
        values = [saved.get(k) for k in ("id", "side", "other")]
        if not all(isinstance(v, str) and v for v in values) or values[1] not in ("A", "B"):
            return None
        return cls(*values)

    def text(self) -> str:
        """'A vs <other>' for tables."""
        return f"{self.side} vs {self.other}"


def pair_partner(run: RunInfo, runs: Iterable[RunInfo]) -> Optional[RunInfo]:
    """The other run of `run`'s A/B pair among `runs` (found by the pair id, so a renamed partner is
    still found), or None."""
    link = run.pair
    if link is None:
        return None
    return next((r for r in runs if r.path != run.path and r.pair is not None and r.pair.id == link.id), None)


@dataclass(frozen=True)
class RunInfo:
    """One saved run or pretrained generator, described by its checkpoint metadata."""

    path: Path
    name: str
    source: str  # "pretrained" or "saved"
    meta: dict[str, Any] = field(repr=False)
    mtime: float  # modification time of model.safetensors (a cache key for loaded models)
    shared: bool = False  # its owner lets other sessions see it (read-only)
    error: str = ""  # "unreadable: <reason>" for a folder whose checkpoint does not pass the checks

    @property
    def config(self) -> dict[str, Any]:
        """The run's TrainConfig as a dict ({} if the metadata holds something else)."""
        config = self.meta.get("config")
        return config if isinstance(config, dict) else {}

    @property
    def dataset(self) -> str:
        """Dataset name, e.g. 'mnist-5k'."""
        dataset = self.meta.get("dataset", self.config.get("dataset", "?"))
        return dataset if isinstance(dataset, str) else "?"

    @property
    def is_points(self) -> bool:
        """True for 2D toy runs."""
        return self.meta.get("sample_shape") == [2]

    @property
    def conditional(self) -> bool:
        """True if the generator can be asked for a class."""
        return self.config.get("conditional") is True and bool(self.class_names_saved)

    @property
    def class_names_saved(self) -> list[str]:
        """The class names in the metadata (strings only; [] for anything else)."""
        names = self.meta.get("class_names")
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    @property
    def class_names(self) -> list[str]:
        """Class names of a conditional run (else empty)."""
        return self.class_names_saved if self.conditional else []

    @property
    def step(self) -> int:
        """Training steps done."""
        step = _number(self.meta.get("step"))
        return int(step) if step is not None and step >= 0 else 0

    @property
    def owner(self) -> str:
        """The app session that trained or uploaded it ('' for the command line and pretrained)."""
        owner = self.meta.get("owner", "")
        return owner if isinstance(owner, str) else ""

    @property
    def pair(self) -> Optional[RunPair]:
        """The A/B pair this run belongs to (see gan_core.live.pair), or None (junk reads as None)."""
        return RunPair.from_meta(self.meta.get("pair"))

    @property
    def final_metrics(self) -> FinalMetrics:
        """The quality numbers saved with the run."""
        return FinalMetrics.from_meta(self.meta.get("final_metrics"))

    @property
    def last_record(self) -> dict[str, float]:
        """The last training step's numbers (loss_d, loss_g, d_real, d_fake...), numeric entries only."""
        saved = self.meta.get("last_record")
        saved = saved if isinstance(saved, dict) else {}
        return {k: v for k, v in ((k, _number(v)) for k, v in saved.items()) if v is not None}

    @property
    def train_seconds(self) -> float:
        """Seconds of training."""
        return _number(self.meta.get("seconds")) or 0.0

    @property
    def status(self) -> str:
        """How the run ended: 'finished', 'stopped', 'diverged', 'saved' if not recorded, or 'interrupted' for
        a run saved while training whose server died (lists leave out the runs training right now)."""
        status = str(self.meta.get("status") or "saved")
        return "interrupted" if status == "running" else status

    @property
    def saved_at(self) -> str:
        """When the checkpoint was written, 'YYYY-MM-DD HH:MM'."""
        return str(self.meta.get("saved_at", ""))[:16].replace("T", " ")

    @property
    def label(self) -> str:
        """A one-line description for pickers."""
        kind = "pretrained" if self.source == "pretrained" else f"step {self.step:,}"
        cond = " conditional" if self.conditional else ""
        return f"{self.name} — {self.config.get('arch', '?')}{cond} on {self.dataset}, {kind}"


def pretrained_dir() -> Path:
    """Where bundled pretrained generators live (assets/pretrained/<name>/)."""
    return PRETRAINED_DIR


def _read(folder: Path, source: str) -> Optional[RunInfo]:
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        return None
    try:
        mtime = weights.stat().st_mtime
        meta = read_metadata(folder)
    except OSError as exc:
        return RunInfo(folder, folder.name, source, {}, 0.0, error=f"unreadable: {exc.strerror}")
    except CheckpointError as exc:  # listed, never loaded: one bad folder must not break the page for others
        return RunInfo(folder, folder.name, source, {}, mtime, error="unreadable: " + str(exc).replace(str(weights), WEIGHTS_FILE))
    return RunInfo(folder, folder.name, source, meta, mtime, shared=_is_shared(folder))


def _is_shared(folder: Path) -> bool:
    try:
        return json.loads((folder / SHARE_FILE).read_text()).get("shared") is True
    except (OSError, ValueError, AttributeError):
        return False


def list_runs(root: Optional[Path] = None, include_pretrained: bool = True) -> list[RunInfo]:
    """Pretrained generators (by name), then saved runs (newest first). A folder whose checkpoint fails the
    checks is listed with its `error` (and no metadata), so the UI can say so; loaders must skip it."""
    found: list[RunInfo] = []
    if include_pretrained and pretrained_dir().is_dir():
        for folder in sorted(pretrained_dir().iterdir()):
            info = _read(folder, "pretrained") if folder.is_dir() else None
            if info:
                found.append(info)
    root = Path(root) if root is not None else runs_dir()
    saved = []
    if root.is_dir():
        for folder in root.iterdir():
            info = _read(folder, "saved") if folder.is_dir() and not folder.name.startswith(".") else None
            if info:
                saved.append(info)
    saved.sort(key=lambda r: r.mtime, reverse=True)
    return found + saved


def recover_runs_folder(root: Optional[Path] = None) -> dict[str, int]:
    """After a crash (server start, CLI resume): remove temp files that interrupted writes left behind and
    bring each config.json back in line with its checkpoint. Returns what was done."""
    root = Path(root) if root is not None else runs_dir()
    done = {"temp_files_removed": remove_orphan_temp_files(root), "configs_repaired": 0}  # root and each run in it
    if root.is_dir():
        for folder in (f for f in root.iterdir() if f.is_dir() and not f.name.startswith(".")):
            done["configs_repaired"] += int(repair_config_json(folder))
    return done


def visible_runs(runs: Iterable[RunInfo], owner: str, include_others: bool = False, teacher: bool = False) -> list[RunInfo]:
    """The runs the session saving as `owner` (see identity.owner_id) sees: pretrained, command-line runs,
    its own; with `include_others`, the runs other sessions shared (the `teacher`: every run). Private
    runs of others never, except to the teacher."""
    return [r for r in runs if r.source == "pretrained" or not r.owner or r.owner == owner
            or (include_others and (r.shared or teacher))]


def can_edit(run: RunInfo, owner: str, teacher: bool = False) -> bool:
    """Whether the session saving as `owner` may rename, delete or share `run`: its own saved runs only;
    the `teacher` (a session that gave the teacher key) any saved run."""
    return run.source == "saved" and (teacher or (bool(run.owner) and run.owner == owner))


def set_shared(run: RunInfo, owner: str, shared: bool) -> None:
    """Let other sessions see `run` read-only (or stop it); only its owner may."""
    if not can_edit(run, owner):
        raise GanError(f"{run.name} is not yours: only the session that trained it can share it")
    try:
        (run.path / SHARE_FILE).write_text(json.dumps({"shared": bool(shared)}) + "\n")
    except OSError as exc:
        raise GanError(f"cannot change the sharing of {run.name}: {exc.strerror}") from None


def check_name(name: str) -> str:
    """A valid run folder name (letters, digits, '.', '_', '-'; up to 64), or a GanError saying so."""
    name = name.strip()
    if not NAME_PATTERN.match(name):
        raise GanError("a run name uses letters, digits, '.', '_' and '-' only (1 to 64 characters, not starting with '.')")
    return name


def new_run_dir(base: str, root: Optional[Path] = None) -> Path:
    """A fresh, not yet existing folder name in the runs folder, e.g. runs/ring8-20240101-120000-a1b2."""
    root = Path(root) if root is not None else runs_dir()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.")[:40] or "run"
    while True:
        folder = root / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
        if not folder.exists():
            return folder


def _editable(path: Path, root: Path, busy: Iterable[Path]) -> Path:
    path, root = Path(path).resolve(), Path(root).resolve()
    if path.parent != root:
        raise GanError(f"{path.name} is not a saved run in {root} (pretrained generators are read-only)")
    if path in {Path(b).resolve() for b in busy}:
        raise GanError(f"{path.name} is training right now: stop it first")
    if not (path / WEIGHTS_FILE).is_file():
        raise GanError(f"{path.name} is not a run folder (no {WEIGHTS_FILE})")
    return path


def rename_run(path: Path, new_name: str, root: Optional[Path] = None, busy: Iterable[Path] = ()) -> Path:
    """Rename a saved run's folder; returns the new path."""
    root = Path(root) if root is not None else runs_dir()
    path = _editable(path, root, busy)
    target = path.parent / check_name(new_name)
    if target == path:
        return path
    if target.exists():
        raise GanError(f"a run called {target.name!r} already exists")
    path.rename(target)
    return target


def delete_run(path: Path, root: Optional[Path] = None, busy: Iterable[Path] = ()) -> None:
    """Delete a saved run's folder (checkpoint, metrics, samples)."""
    root = Path(root) if root is not None else runs_dir()
    shutil.rmtree(_editable(path, root, busy))


def read_history(run_dir: str | Path, cap: int = 1000) -> dict[str, list[float]]:
    """A run's metrics.csv as columns (step, loss_d, loss_g, d_real, ...), averaged down to about `cap`
    rows; {} when the file is missing or unreadable."""
    file = Path(run_dir) / METRICS_FILE
    try:
        with open(file, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not rows:
        return {}
    keys = [k for k in rows[0] if k]
    table = np.array([[_csv_number(r.get(k)) for k in keys] for r in rows], dtype=np.float64)
    stride = max(1, math.ceil(len(table) / cap))
    if stride > 1:  # each row: the mean of `stride` steps, at the last of them (a shorter last group too)
        groups = [table[i:i + stride] for i in range(0, len(table), stride)]
        table = np.stack([g.mean(axis=0) for g in groups])
        table[:, 0] = [g[-1, 0] for g in groups]
    return {k: table[:, i].tolist() for i, k in enumerate(keys)}


def _csv_number(text: Optional[str]) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan
