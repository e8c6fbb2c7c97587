"""What the page sees of a training job: its state, an immutable `JobView`, and the bounded
histories behind the charts (so a long run keeps a fixed memory footprint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

import numpy as np

from ..trainer import StepRecord
from .lab2d import LabView
from .quality import LiveMetrics
from .scheduler import SlotLoad
from .verdict import Verdict

HISTORY_FIELDS = ("step", "loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g", "images_per_s", "seconds")


class JobState(str, Enum):
    """Where a job is in its life. The first four are 'active'."""

    QUEUED = "queued"
    LOADING = "loading"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    STOPPED = "stopped"
    DIVERGED = "diverged"
    FAILED = "failed"

    @property
    def active(self) -> bool:
        """True while the job holds (or waits for) a training slot."""
        return self in (JobState.QUEUED, JobState.LOADING, JobState.RUNNING, JobState.PAUSED)


@dataclass
class Progress:
    """The changing part of a job, written by its worker under the job's lock (see `Job.update`)."""

    state: JobState = JobState.QUEUED
    message: str = "waiting for a free training slot"
    error_kind: str = ""  # "", "data" (dataset unavailable), "diverged" or "error"
    download_base: Optional[int] = None  # bytes in the data cache when a download started
    step: int = 0
    train_seconds: float = 0.0
    started_wall: Optional[float] = None
    ended_wall: Optional[float] = None
    device: str = ""
    parameters: dict[str, int] = field(default_factory=dict)
    class_names: tuple[str, ...] = ()
    verdict: Optional[Verdict] = None
    lab: Optional[LabView] = None
    step_frames: list[LabView] = field(default_factory=list)
    metrics: Optional[LiveMetrics] = None
    latest: Any = None  # the newest sample grid (PNG bytes) or LabView
    latest_step: int = 0
    saved_step: Optional[int] = None
    storage_problem: str = ""  # why the last save failed (full or read-only disk), "" when it worked


@dataclass(frozen=True)
class JobView:
    """An immutable picture of a job for the page (cheap to build, safe to read from any thread)."""

    id: str
    session: str
    name: str
    preset: str
    config: dict[str, Any]
    kind: str  # "points" or "image"
    class_names: tuple[str, ...]
    state: JobState
    message: str
    error_kind: str  # "", "data" (dataset unavailable), "diverged" or "error"
    queue_position: Optional[int]
    download: Optional[tuple[float, float]]  # (MB on disk, MB expected) while downloading
    step: int
    train_seconds: float
    wall_seconds: float
    images_per_s: float  # measured over the last seconds of wall time, overheads included
    device: str
    parameters: dict[str, int]
    history: dict[str, list[float]]  # shared with other views of the same moment: read only
    snapshots: list[tuple[int, Any]]  # (step, PNG bytes) for images, (step, LabView) for 2D toys
    latest: Any  # the newest sample grid (PNG bytes) or LabView, refreshed about once a second
    latest_step: int  # the step `latest` shows
    verdict: Optional[Verdict]
    lab: Optional[LabView]
    step_frames: list[LabView]  # the last single step of a 2D toy: before / after D / after G
    metrics: Optional[LiveMetrics]
    run_dir: str
    saved_step: Optional[int]  # step of the last checkpoint written
    storage_problem: str  # why the last periodic save failed, "" when it worked
    speed: float  # steps per second limit (0 = full speed)
    version: int  # grows whenever something shown changes
    load: Optional[SlotLoad] = None  # how the server's training slots are shared now (speed caption, wait)

    @property
    def active(self) -> bool:
        """True while the job is queued, loading, running or paused."""
        return self.state.active


class RecordHistory:
    """Step records decimated to at most `cap` rows.

    Each row is the mean of `stride` consecutive steps; when the table is full, neighbouring rows
    are merged pairwise and the stride doubles. Curves stay smooth and cover the whole run.
    """

    def __init__(self, cap: int = 1000):
        self.cap = max(2, cap - cap % 2)
        self.stride = 1
        self._rows: list[np.ndarray] = []
        self._window: Optional[np.ndarray] = None
        self._window_count = 0
        self._window_last_step = 0
        self._added = 0
        self._columns: tuple[int, dict[str, list[float]]] = (-1, {})

    def add(self, rec: StepRecord) -> None:
        """Add one step's record."""
        values = np.array([getattr(rec, name) for name in HISTORY_FIELDS], dtype=np.float64)
        if self._window is None:
            self._window, self._window_count = values, 1
        else:
            self._window += values
            self._window_count += 1
        self._window_last_step = rec.step
        self._added += 1
        if self._window_count >= self.stride:
            self._flush()

    def _flush(self) -> None:
        row = self._window / self._window_count
        row[0] = self._window_step_end  # a row sits at the last step of its window
        self._rows.append(row)
        self._window, self._window_count = None, 0
        if len(self._rows) >= self.cap:
            pairs = np.stack(self._rows).reshape(-1, 2, len(HISTORY_FIELDS))
            merged = pairs.mean(axis=1)
            merged[:, 0] = pairs[:, 1, 0]
            self._rows = list(merged)
            self.stride *= 2

    @property
    def _window_step_end(self) -> float:
        return float(self._window_last_step)

    def __len__(self) -> int:
        return len(self._rows) + (1 if self._window is not None else 0)

    def columns(self) -> dict[str, list[float]]:
        """Every field as a list, including the partly filled last window. Built once per added step and
        shared by every view of that moment: read it, never change it."""
        if self._columns[0] != self._added:
            self._columns = (self._added, self._build_columns())
        return self._columns[1]

    def _build_columns(self) -> dict[str, list[float]]:
        rows = list(self._rows)
        if self._window is not None:
            row = self._window / self._window_count
            row[0] = self._window_step_end
            rows.append(row)
        if not rows:
            return {name: [] for name in HISTORY_FIELDS}
        table = np.stack(rows)
        return {name: table[:, i].tolist() for i, name in enumerate(HISTORY_FIELDS)}


class SnapshotHistory:
    """At most `cap` snapshots, evenly spaced in time over the whole run.

    A snapshot is taken when `due()`; when the list is full every other one is dropped and the
    interval doubles, so the kept ones stay evenly spread (the newest is always kept).
    """

    def __init__(self, cap: int = 100, every_seconds: float = 1.0):
        self.cap = max(4, cap)
        self.every = every_seconds
        self._items: list[tuple[int, object]] = []
        self._last = -float("inf")

    def due(self, now: float) -> bool:
        """Whether a new snapshot should be taken at monotonic time `now`."""
        return now - self._last >= self.every

    def add(self, step: int, payload: object, now: float) -> None:
        """Keep `payload` (PNG bytes, a point array...) as the snapshot of `step`."""
        if self._items and self._items[-1][0] == step:
            self._items[-1] = (step, payload)
        else:
            self._items.append((step, payload))
        self._last = now
        if len(self._items) > self.cap:
            newest = self._items[-1]
            self._items = self._items[:-1][::2] + [newest]
            self.every *= 2

    def items(self) -> list[tuple[int, object]]:
        """(step, payload) pairs, oldest first (a copy of the list; payloads are shared, never mutated)."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)
