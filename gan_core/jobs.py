"""Training jobs for the app: one per browser session, each in its own worker thread.

A process-wide `JobManager` (see `get_manager()`) admits at most `max_jobs` jobs at once and
queues the rest in order. Pages never train: they submit a job, send it commands (pause, resume,
step, stop) and poll `job.view()`, an immutable picture of the run that the worker refreshes
about once a second (sample grid, the police's verdict, the 2D lab, metrics). Each poll is also a
heartbeat; a job whose session has not been seen for `session_timeout` seconds (the tab was
closed) is stopped and saved. Worker threads are daemons, are joined on stop, and never touch
the UI. Nothing here imports Streamlit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .config import TrainConfig
from .data import DATASETS
from .device import describe_device, resolve_device
from . import metrics as quality
from .errors import DataUnavailable, EvaluatorError, GanError
from .images import grid_image
from .lab2d import LabView, lab_view, split_step
from .live import RecordHistory, SnapshotHistory, Verdict, fast_png, police_verdict
from .live_metrics import LiveMetrics, measure, with_collapse_warning
from .paths import data_cache_dir, runs_dir
from .runner import RunWriter
from .runs import new_run_dir
from .trainer import GRID_COLUMNS, Diverged, StepRecord, Trainer

log = logging.getLogger(__name__)

ENV_MAX_JOBS = "GAN_MAX_JOBS"
ENV_SESSION_TIMEOUT = "GAN_SESSION_TIMEOUT"
ENV_TORCH_THREADS = "GAN_TORCH_THREADS"
ENV_METRICS_SECONDS = "GAN_METRICS_SECONDS"
DEFAULT_SESSION_TIMEOUT = 120.0
# The live view and the metrics may each use at most this share of the worker's time: their interval
# grows when a pass is slow, so watching costs only a few percent of training speed (metrics: <= 10%).
VIEW_SHARE = 0.05
METRICS_SHARE = 0.04


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
    history: dict[str, list[float]]
    snapshots: list[tuple[int, Any]]  # (step, PNG bytes) for images, (step, LabView) for 2D toys
    latest: Any  # the newest sample grid (PNG bytes) or LabView, refreshed about once a second
    latest_step: int  # the step `latest` shows
    verdict: Optional[Verdict]
    lab: Optional[LabView]
    step_frames: list[LabView]  # the last single step of a 2D toy: before / after D / after G
    metrics: Optional[LiveMetrics]
    run_dir: str
    saved_step: Optional[int]  # step of the last checkpoint written
    speed: float  # steps per second limit (0 = full speed)
    version: int  # grows whenever something shown changes

    @property
    def active(self) -> bool:
        """True while the job is queued, loading, running or paused."""
        return self.state.active


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("ignoring %s=%r: not a number", name, os.environ.get(name))
        return default


def cpu_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_max_jobs() -> int:
    """$GAN_MAX_JOBS, else 3 on a GPU, else one job per 2 CPU cores (at least 1)."""
    if os.environ.get(ENV_MAX_JOBS):
        return max(1, int(_env_float(ENV_MAX_JOBS, 1)))
    if torch.cuda.is_available():
        return 3
    return max(1, cpu_cores() // 2)


class Job:
    """One training run of one session. Commands are thread-safe; `view()` never blocks for long."""

    def __init__(self, manager: "JobManager", session: str, config: TrainConfig, name: str, run_dir: Path,
                 preset: str = "", start_paused: bool = False,
                 trainer_factory: Optional[Callable[[TrainConfig], Trainer]] = None):
        self.manager = manager
        self.id = uuid.uuid4().hex[:12]
        self.session = session
        self.config = config
        self.name = name
        self.preset = preset
        self.run_dir = Path(run_dir)
        self.spec = DATASETS[config.dataset]
        self._factory = trainer_factory or Trainer
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self.last_seen = time.monotonic()
        self.created = time.monotonic()
        # commands
        self._paused = start_paused
        self._stop = False
        self._stop_reason = ""
        self._pending_steps = 0
        self._speed = 0.0
        # what the page sees (guarded by _cond)
        self._state = JobState.QUEUED
        self._message = "waiting for a free training slot"
        self._error_kind = ""
        self._download_base: Optional[int] = None
        self._history = RecordHistory(cap=manager.history_cap)
        self._snapshots = SnapshotHistory(cap=manager.snapshot_cap, every_seconds=manager.view_seconds)
        self._verdict: Optional[Verdict] = None
        self._lab: Optional[LabView] = None
        self._step_frames: list[LabView] = []
        self._metrics: Optional[LiveMetrics] = None
        self._latest: Any = None
        self._latest_step = 0
        self._step = 0
        self._train_seconds = 0.0
        self._started_wall: Optional[float] = None
        self._ended_wall: Optional[float] = None
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=64)  # (time, images so far)
        self._images = 0
        self._device = ""
        self._parameters: dict[str, int] = {}
        self._saved_step: Optional[int] = None
        self._version = 0
        self._class_names: tuple[str, ...] = ()

    # --- commands (from pages) -------------------------------------------------------------
    def pause(self) -> None:
        """Pause after the current step."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        """Continue training."""
        with self._cond:
            self._paused = False
            self._pending_steps = 0
            self._cond.notify_all()

    def step_once(self) -> None:
        """Run exactly one D+G iteration (the job pauses first if it was running)."""
        with self._cond:
            self._paused = True
            self._pending_steps += 1
            self._cond.notify_all()

    def set_speed(self, steps_per_second: float) -> None:
        """Slow motion: at most this many steps per second (0 = full speed)."""
        with self._cond:
            self._speed = max(0.0, float(steps_per_second))
            self._cond.notify_all()

    def stop(self, wait: bool = True, timeout: float = 30.0, reason: str = "") -> None:
        """Stop the job (a queued one never starts); the worker saves the run. Joins the thread if `wait`."""
        with self._cond:
            self._stop = True
            self._stop_reason = self._stop_reason or reason
            self._cond.notify_all()
        self.manager._dequeue(self)
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the worker thread to end; True if it has (or never started)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def wait_for_view(self, version: int, timeout: float = 2.0) -> bool:
        """Wait until the view has changed since `version` (e.g. a requested step is shown) or the job ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._version <= version and self._state.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    @property
    def state(self) -> JobState:
        """The current state."""
        return self._state

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The worker thread (None while queued)."""
        return self._thread

    # --- the picture for the page ----------------------------------------------------------
    def view(self) -> JobView:
        """An immutable snapshot of everything the page shows."""
        position = self.manager.queue_position(self)  # before taking our lock: the manager's lock comes first
        with self._cond:
            now = time.monotonic()
            wall = 0.0
            if self._started_wall is not None:
                wall = (self._ended_wall or now) - self._started_wall
            return JobView(
                id=self.id, session=self.session, name=self.name, preset=self.preset, config=self.config.to_dict(),
                kind=self.spec.kind, class_names=self._class_names, state=self._state, message=self._message,
                error_kind=self._error_kind, queue_position=position,
                download=self._download_progress(), step=self._step, train_seconds=self._train_seconds,
                wall_seconds=wall, images_per_s=self._rate(now), device=self._device, parameters=dict(self._parameters),
                history=self._history.columns(), snapshots=self._snapshots.items(), latest=self._latest,
                latest_step=self._latest_step, verdict=self._verdict,
                lab=self._lab, step_frames=list(self._step_frames), metrics=self._metrics, run_dir=str(self.run_dir),
                saved_step=self._saved_step, speed=self._speed, version=self._version,
            )

    def _rate(self, now: float) -> float:
        if self._state != JobState.RUNNING or len(self._rate_window) < 2:
            return 0.0
        recent = [(t, n) for t, n in self._rate_window if now - t < 10.0] or list(self._rate_window)[-2:]
        (t0, n0), (t1, n1) = recent[0], recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _download_progress(self) -> Optional[tuple[float, float]]:
        if self._download_base is None:
            return None
        done = max(0, _folder_bytes(data_cache_dir()) - self._download_base) / 1e6
        return done, float(self.spec.download_mb)

    def _set(self, **fields: Any) -> None:
        with self._cond:
            for key, value in fields.items():
                setattr(self, "_" + key, value)
            self._version += 1
            self._cond.notify_all()

    # --- the worker ------------------------------------------------------------------------
    def _start(self) -> None:
        """Start the worker thread (called by the manager when a slot is free)."""
        with self._cond:
            if self._stop:
                return
            self._state = JobState.LOADING
            self._message = "preparing"
            self._version += 1
        self._thread = threading.Thread(target=self._run, name=f"gan-job-{self.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        trainer: Optional[Trainer] = None
        writer: Optional[RunWriter] = None
        final, message, error_kind = JobState.STOPPED, "", ""
        try:
            torch.set_num_threads(self.manager.threads_per_job())
            trainer = self._load()
            if trainer is None:
                return
            # The job saves its own checkpoints (with owner and name in the metadata), not RunWriter.
            writer = RunWriter(trainer, self.run_dir, checkpoint_seconds=math.inf)
            self._checkpoint(writer, "running")  # a loadable checkpoint exists from the start
            final, message = self._train(trainer, writer)
        except Diverged as exc:
            final, error_kind = JobState.DIVERGED, "diverged"
            kept = f"the last good checkpoint (step {self._saved_step:,}) is kept" if self._saved_step is not None else "nothing was saved"
            message = f"{exc}. Training stopped; {kept}."
        except DataUnavailable as exc:
            final, message, error_kind = JobState.FAILED, str(exc), "data"
        except GanError as exc:
            final, message, error_kind = JobState.FAILED, str(exc), "error"
        except Exception as exc:  # a bug: keep the app alive and say what happened
            log.exception("training job %s crashed", self.id)
            final, message, error_kind = JobState.FAILED, f"training crashed: {type(exc).__name__}: {exc}", "error"
        finally:
            self._finish(trainer, writer, final, message, error_kind)

    def _load(self) -> Optional[Trainer]:
        """Build the trainer (loading, maybe downloading, the data)."""
        if self.spec.source == "download":
            base = _folder_bytes(data_cache_dir())
            self._set(message=f"loading {self.spec.name} (downloads {self.spec.download_mb} MB the first time)", download_base=base)
        else:
            self._set(message=f"loading {self.spec.name}")
        try:
            trainer = self._factory(self.config)
            trainer.data  # noqa: B018 - load now, not in the first step
        finally:
            self._set(download_base=None)
        if self.spec.kind == "image" and quality.has_evaluator(self.config.dataset):
            self._set(message="preparing the quality metrics")
            try:  # computed once per process; done now so the first live pass costs no more than later ones
                quality.fcd_floor(quality.LIVE_FCD_N, self.config.dataset)
            except (EvaluatorError, ValueError) as exc:
                log.warning("no FCD floor: %s", exc)
        with self._cond:
            if self._stop:
                return None
            threads = torch.get_num_threads()
            self._device = (describe_device(trainer.device) if trainer.device.type != "cpu"
                            else f"CPU · {threads} thread{'s' * (threads > 1)}")
            self._parameters = trainer.num_parameters
            self._class_names = tuple(trainer.class_names)
            self._started_wall = time.monotonic()
        return trainer

    def _train(self, trainer: Trainer, writer: RunWriter) -> tuple[JobState, str]:
        """The loop: obey commands, step, record, refresh the view and metrics when due."""
        view_rng = torch.Generator().manual_seed(self.config.seed + 7)
        metrics_rng_seed = self.config.seed + 11
        self._refresh(trainer, view_rng, force=True)
        next_view = time.monotonic() + self.manager.view_seconds
        next_metrics = time.monotonic() + min(2.0, self.manager.metrics_seconds)
        next_threads = time.monotonic() + 1.0
        next_checkpoint = time.monotonic() + self.manager.checkpoint_seconds
        last_step_time = 0.0
        while True:
            with self._cond:
                while True:
                    if self._stop:
                        return JobState.STOPPED, self._stop_reason or f"stopped at step {trainer.step_count:,}"
                    if self.manager.expired(self):
                        return JobState.STOPPED, "stopped: the browser tab was closed (no heartbeat)"
                    if self._pending_steps or not self._paused:
                        break
                    if self._state != JobState.PAUSED:
                        self._state, self._message = JobState.PAUSED, "paused"
                        self._version += 1
                    self._cond.wait(0.5)
                single = self._pending_steps > 0
                if single:
                    self._pending_steps -= 1
                elif self._state != JobState.RUNNING:
                    self._state, self._message = JobState.RUNNING, "training"
                    self._version += 1
                speed = self._speed
                if speed and not single:
                    pause_for = last_step_time + 1.0 / speed - time.monotonic()
                    if pause_for > 0:
                        self._cond.wait(pause_for)
                        continue  # re-check commands after sleeping
            if trainer.budget_reached():
                c = trainer.config
                budget = f"{c.steps:,} steps" if c.steps and trainer.step_count >= c.steps else f"{c.seconds:g} s"
                return JobState.FINISHED, f"finished: reached the budget of {budget}"
            last_step_time = time.monotonic()
            frames: list[LabView] = []
            if single and self.spec.kind == "points":
                rec, frames = split_step(trainer)
            else:
                rec = trainer.step()
            writer.record(rec)
            self._record(rec, trainer)
            now = time.monotonic()
            if single or speed or now >= next_view:
                cost = self._refresh(trainer, view_rng, frames=frames if single else None)
                next_view = time.monotonic() + max(self.manager.view_seconds, cost / VIEW_SHARE)
            if now >= next_metrics and not single:
                cost = self._compute_metrics(trainer, torch.Generator().manual_seed(metrics_rng_seed))
                next_metrics = time.monotonic() + max(self.manager.metrics_seconds, cost / METRICS_SHARE)
            if now >= next_checkpoint:
                self._checkpoint(writer, "running")
                next_checkpoint = time.monotonic() + self.manager.checkpoint_seconds
            if now >= next_threads:
                torch.set_num_threads(self.manager.threads_per_job())
                next_threads = now + 1.0

    def _record(self, rec: StepRecord, trainer: Trainer) -> None:
        with self._cond:
            self._history.add(rec)
            self._step = rec.step
            self._train_seconds = rec.seconds
            self._images += trainer.config.batch_size * trainer.config.d_steps
            self._rate_window.append((time.monotonic(), self._images))

    def _refresh(self, trainer: Trainer, rng: torch.Generator, force: bool = False,
                 frames: Optional[list[LabView]] = None) -> float:
        """Recompute the sample grid / 2D lab and the verdict; returns the seconds it took."""
        started = time.monotonic()
        verdict = police_verdict(trainer, rng)
        if self.spec.kind == "points":
            lab = frames[-1] if frames else lab_view(trainer)
            payload: Any = lab
        else:
            lab = None
            samples = trainer.sample_fixed()
            payload = fast_png(grid_image(samples, nrow=GRID_COLUMNS, scale=2 if samples.shape[-1] <= 32 else 1))
        now = time.monotonic()
        with self._cond:
            self._verdict, self._lab = verdict, lab
            if frames is not None:
                self._step_frames = frames
            if force or frames or self._snapshots.due(now):
                self._snapshots.add(trainer.step_count, payload, now)
            self._latest, self._latest_step = payload, trainer.step_count
            self._version += 1
            self._cond.notify_all()
        return time.monotonic() - started

    def _compute_metrics(self, trainer: Trainer, rng: torch.Generator) -> float:
        """One metrics pass (FCD-1k and class histogram, or 2D mode coverage); returns its seconds."""
        started = time.monotonic()
        new = measure(trainer, rng, self._metrics, keep=self.manager.metrics_history)
        new = with_collapse_warning(new, trainer.step_count)
        seconds = time.monotonic() - started
        self._set(metrics=dataclasses.replace(new, seconds=seconds))
        return seconds

    def _checkpoint(self, writer: RunWriter, status: str) -> None:
        writer.checkpoint(self._meta(status))
        self._set(saved_step=writer.trainer.step_count)

    def _meta(self, status: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "preset": self.preset, "owner": self.session, "status": status}
        m = self._metrics
        if m is not None and m.kind == "image" and m.fcd:
            meta["final_metrics"] = {"fcd": round(m.fcd[-1], 3), "fcd_n": m.fcd_n, "fcd_floor": round(m.fcd_floor or 0, 3),
                                     "classes_covered": m.covered[-1]}
        elif m is not None and m.kind == "points" and m.covered:
            meta["final_metrics"] = {"modes_covered": m.covered[-1], "n_modes": m.n_modes,
                                     "hq_fraction": round(m.hq_fraction[-1], 4)}
        return meta

    def _finish(self, trainer: Optional[Trainer], writer: Optional[RunWriter], final: JobState, message: str,
                error_kind: str) -> None:
        """Save the run (unless it diverged: the last good checkpoint stays) and free the slot."""
        try:
            if writer is not None and final != JobState.DIVERGED:
                try:
                    if trainer is not None and trainer.step_count > 0:
                        try:  # the final numbers saved with the run
                            self._compute_metrics(trainer, torch.Generator().manual_seed(self.config.seed + 11))
                        except Exception:
                            log.exception("final metrics of job %s failed", self.id)
                    writer.snapshot()
                    self._checkpoint(writer, final.value)
                except GanError as exc:
                    message = f"{message} (not saved: {exc})"
            if writer is not None:
                writer.close()
        except Exception:  # never let saving kill the bookkeeping below
            log.exception("saving job %s failed", self.id)
        with self._cond:
            self._state = final
            self._message = message or final.value
            self._error_kind = error_kind
            self._ended_wall = time.monotonic()
            self._version += 1
            self._cond.notify_all()
        self.manager._released(self)


def _folder_bytes(folder: Path) -> int:
    total = 0
    if folder.is_dir():
        for path in folder.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                pass
    return total


class JobManager:
    """Admits at most `max_jobs` training jobs at once, queues the rest, reaps abandoned ones."""

    def __init__(self, max_jobs: Optional[int] = None, session_timeout: Optional[float] = None,
                 root: Optional[Path] = None, checkpoint_seconds: float = 20.0, view_seconds: float = 1.0,
                 metrics_seconds: Optional[float] = None, snapshot_cap: int = 100, history_cap: int = 1000,
                 metrics_history: int = 200, reaper_interval: Optional[float] = None):
        self.max_jobs = max_jobs if max_jobs is not None else default_max_jobs()
        if session_timeout is None:
            session_timeout = _env_float(ENV_SESSION_TIMEOUT, DEFAULT_SESSION_TIMEOUT)
        self.session_timeout = session_timeout
        self._root = Path(root) if root is not None else None
        self.checkpoint_seconds = checkpoint_seconds
        self.view_seconds = view_seconds
        self.metrics_seconds = metrics_seconds if metrics_seconds is not None else _env_float(ENV_METRICS_SECONDS, 5.0)
        self.snapshot_cap = snapshot_cap
        self.history_cap = history_cap
        self.metrics_history = metrics_history
        self.reaper_interval = reaper_interval or max(0.5, min(10.0, self.session_timeout / 4))
        self._lock = threading.RLock()
        self._by_session: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._running: set[Job] = set()
        self._reaper: Optional[threading.Thread] = None
        self._closing = threading.Event()

    @property
    def root(self) -> Path:
        """The folder new runs are saved in ($GAN_RUNS_DIR or ./runs unless given)."""
        return self._root if self._root is not None else runs_dir()

    # --- sessions and jobs ---------------------------------------------------------------------
    def submit(self, session: str, config: TrainConfig, *, name: str = "", preset: str = "",
               start_paused: bool = False, trainer_factory: Optional[Callable[[TrainConfig], Trainer]] = None) -> Job:
        """Validate `config` and queue a job for `session` (which must not have an active one)."""
        config = config.validate()
        resolve_device(config.device)  # an absent GPU is a ConfigError now, not in the worker
        with self._lock:
            current = self._by_session.get(session)
            if current is not None and current.state.active:
                raise GanError("this session already has a run in progress: stop it first")
            base = name or preset or config.dataset
            run_dir = new_run_dir(base, self.root)
            job = Job(self, session, config, run_dir.name, run_dir, preset, start_paused, trainer_factory)
            self._by_session[session] = job
            self._queue.append(job)
            self._schedule()
            self._ensure_reaper()
        return job

    def job_for(self, session: str) -> Optional[Job]:
        """The session's current (or last) job, if any. Sessions never see each other's jobs."""
        with self._lock:
            return self._by_session.get(session)

    def touch(self, session: str) -> None:
        """Heartbeat from a page of `session`: its job stays alive."""
        with self._lock:
            job = self._by_session.get(session)
        if job is not None:
            job.last_seen = time.monotonic()

    def forget(self, session: str) -> None:
        """Drop a session's finished job from memory (an active one is kept)."""
        with self._lock:
            job = self._by_session.get(session)
            if job is not None and not job.state.active:
                del self._by_session[session]

    def expired(self, job: Job) -> bool:
        """True if the job's session has not been seen for `session_timeout` seconds."""
        return time.monotonic() - job.last_seen > self.session_timeout

    def queue_position(self, job: Job) -> Optional[int]:
        """1-based place of a queued job in the line, else None."""
        with self._lock:
            try:
                return self._queue.index(job) + 1
            except ValueError:
                return None

    def counts(self) -> dict[str, int]:
        """Running and queued jobs, and the cap."""
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue), "max_jobs": self.max_jobs}

    def active_run_dirs(self) -> set[Path]:
        """Run folders being written right now (not to be renamed or deleted)."""
        with self._lock:
            return {j.run_dir for j in self._by_session.values() if j.state.active}

    def threads_per_job(self) -> int:
        """Torch threads for each running job: $GAN_TORCH_THREADS, else the cores (one left for the web
        server) shared among the running jobs, so several jobs do not oversubscribe the CPU."""
        if os.environ.get(ENV_TORCH_THREADS):
            return max(1, int(_env_float(ENV_TORCH_THREADS, 1)))
        with self._lock:
            running = max(1, len(self._running))
        return max(1, (cpu_cores() - 1) // running)

    # --- scheduling ----------------------------------------------------------------------------
    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self.max_jobs and not self._closing.is_set():
                job = self._queue.pop(0)
                if self.expired(job):
                    job._finish(None, None, JobState.STOPPED, "stopped before it started: the browser tab was closed", "")
                    continue
                self._running.add(job)
                job._start()

    def _dequeue(self, job: Job) -> None:
        """A stop of a job that never started: it leaves the line and ends as stopped."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                job._finish(None, None, JobState.STOPPED, "stopped before it started", "")

    def _released(self, job: Job) -> None:
        """Called by a job when it ends: frees its slot for the next in line."""
        with self._lock:
            self._running.discard(job)
            self._schedule()

    # --- the reaper ------------------------------------------------------------------------------
    def reap(self) -> list[Job]:
        """Stop jobs whose session is gone; forget finished jobs of gone sessions. Returns the stopped ones."""
        stopped = []
        with self._lock:
            for session, job in list(self._by_session.items()):
                if not self.expired(job):
                    continue
                if job.state.active:
                    stopped.append(job)
                else:
                    del self._by_session[session]
        for job in stopped:
            job.stop(wait=False, reason="stopped: the browser tab was closed (no heartbeat)")
        return stopped

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_forever, name="gan-job-reaper", daemon=True)
            self._reaper.start()

    def _reap_forever(self) -> None:
        while not self._closing.wait(self.reaper_interval):
            try:
                self.reap()
            except Exception:  # the reaper must survive anything
                log.exception("job reaper failed")

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every job and the reaper, and join their threads (tests, server exit)."""
        self._closing.set()
        with self._lock:
            jobs = list(self._by_session.values()) + list(self._queue)
        for job in jobs:
            job.stop(wait=False, reason="stopped: the server is shutting down")
        for job in jobs:
            job.join(timeout)
        if self._reaper is not None:
            self._reaper.join(timeout)


_manager: Optional[JobManager] = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide job manager (created on first use)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
