"""Admission of training jobs: a process-wide `JobManager` (see `get_manager()`) runs at most
`max_jobs` jobs at once, queues the rest in order, and reaps jobs whose browser tab was closed.

Pages never train: they submit a job, send it commands (pause, resume, step, stop) and poll
`job.view()`. Each poll is also a heartbeat; a job whose session has not been seen for
`session_timeout` seconds is stopped and saved. Worker threads are daemons, are joined on stop, and
never touch the UI. Nothing here imports Streamlit.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..budget import check_run_budget, default_run_budget_bytes
from ..config import TrainConfig
from ..data import DATASETS
from ..device import resolve_device
from ..errors import GanError
from ..paths import runs_dir
from ..runs import new_run_dir, recover_runs_folder
from .job import Job, JobSettings, TrainerFactory
from .pair import PairJob

log = logging.getLogger(__name__)

ENV_MAX_JOBS = "GAN_MAX_JOBS"
ENV_SESSION_TIMEOUT = "GAN_SESSION_TIMEOUT"
ENV_TORCH_THREADS = "GAN_TORCH_THREADS"
ENV_METRICS_SECONDS = "GAN_METRICS_SECONDS"
ENV_CHECKPOINT_SECONDS = "GAN_CHECKPOINT_SECONDS"
ENV_DATA_ROOTS = "GAN_DATA_ROOTS"
DEFAULT_SESSION_TIMEOUT = 120.0
# A queued page sends a heartbeat every second (the sidebar every 5 s; a background tab, throttled by
# the browser, at least about once a minute): a queued job not heard from for this long belongs to a
# closed tab and never starts, even inside the session timeout.
QUEUED_GRACE_SECONDS = 60.0


def env_float(name: str, default: float) -> float:
    """$name as a float, else `default` (a value that is not a number is logged and ignored)."""
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


def check_data_folder(config: TrainConfig) -> None:
    """The app trains on an image folder only below a folder the server's operator allowed in
    $GAN_DATA_ROOTS (os.pathsep-separated): students must not read the server's files."""
    if config.dataset != "folder":
        return
    roots = [Path(r).resolve() for r in os.environ.get(ENV_DATA_ROOTS, "").split(os.pathsep) if r.strip()]
    if not roots:
        raise GanError(f"training on a folder of images is off on this server (its operator can allow folders "
                       f"with {ENV_DATA_ROOTS}); use one of the bundled datasets")
    folder = Path(config.data_dir).expanduser().resolve()
    if not any(folder == root or root in folder.parents for root in roots):
        raise GanError(f"data_dir must be inside an allowed folder ({', '.join(map(str, roots))}), not {config.data_dir}")


def default_max_jobs() -> int:
    """$GAN_MAX_JOBS, else 3 on a GPU, else one job per 2 CPU cores (at least 1)."""
    if os.environ.get(ENV_MAX_JOBS):
        return max(1, int(env_float(ENV_MAX_JOBS, 1)))
    if torch.cuda.is_available():
        return 3
    return max(1, cpu_cores() // 2)


class JobManager:
    """Admits at most `max_jobs` training jobs at once, queues the rest, reaps abandoned ones."""

    def __init__(self, max_jobs: Optional[int] = None, session_timeout: Optional[float] = None,
                 root: Optional[Path] = None, checkpoint_seconds: Optional[float] = None, view_seconds: float = 1.0,
                 metrics_seconds: Optional[float] = None, snapshot_cap: int = 100, history_cap: int = 1000,
                 metrics_history: int = 200, reaper_interval: Optional[float] = None):
        self.max_jobs = max_jobs if max_jobs is not None else default_max_jobs()
        if session_timeout is None:
            session_timeout = env_float(ENV_SESSION_TIMEOUT, DEFAULT_SESSION_TIMEOUT)
        self.session_timeout = session_timeout
        self.settings = JobSettings(
            view_seconds=view_seconds, snapshot_cap=snapshot_cap,
            metrics_seconds=metrics_seconds if metrics_seconds is not None else env_float(ENV_METRICS_SECONDS, 5.0),
            history_cap=history_cap, metrics_history=metrics_history,
            checkpoint_seconds=checkpoint_seconds if checkpoint_seconds is not None else env_float(ENV_CHECKPOINT_SECONDS, 20.0))
        self._root = Path(root) if root is not None else None
        self.reaper_interval = reaper_interval or max(0.5, min(10.0, self.session_timeout / 4))
        self._lock = threading.RLock()
        self._by_session: dict[str, Union[Job, PairJob]] = {}
        self._queue: list[Union[Job, PairJob]] = []
        self._running: set[Union[Job, PairJob]] = set()
        self._reaper: Optional[threading.Thread] = None
        self._closing = threading.Event()

    @property
    def root(self) -> Path:
        """The folder new runs are saved in ($GAN_RUNS_DIR or ./runs unless given)."""
        return self._root if self._root is not None else runs_dir()

    # --- sessions and jobs (the pages' side) -------------------------------------------------
    def _checked(self, config: TrainConfig, share: int = 1) -> TrainConfig:
        """`config` validated for this server: device, data folder, and memory (a `share` of one run's budget)."""
        config = config.validate()
        resolve_device(config.device)  # an absent GPU is a ConfigError now, not in the worker
        check_data_folder(config)
        spec = DATASETS[config.dataset]
        side = config.image_size or 28
        shape = spec.shape or (config.channels or 3, side, side)  # folders decide at load time: an estimate
        check_run_budget(config, shape, default_run_budget_bytes(self.max_jobs) // share, len(spec.class_names) or 10)
        return config

    def submit(self, session: str, config: TrainConfig, *, name: str = "", preset: str = "",
               start_paused: bool = False, trainer_factory: Optional[TrainerFactory] = None) -> Job:
        """Validate `config` and queue a job for `session` (which must not have an active one)."""
        config = self._checked(config)
        with self._lock:
            self._check_free(session)
            run_dir = new_run_dir(name or preset or config.dataset, self.root)
            job = Job(self, session, config, run_dir, preset, start_paused, trainer_factory)
            return self._enqueue(session, job)

    def submit_pair(self, session: str, config_a: TrainConfig, config_b: TrainConfig, *, preset_a: str = "",
                    preset_b: str = "", start_paused: bool = False,
                    trainer_factory: Optional[TrainerFactory] = None) -> PairJob:
        """Validate both configs and queue an A/B pair for `session`: ONE job in the queue and in the slots,
        whose thread steps both runs in turn (see pair.py). Each side may use half a run's memory."""
        config_a, config_b = self._checked(config_a, share=2), self._checked(config_b, share=2)
        with self._lock:
            self._check_free(session)
            dirs = [new_run_dir(f"{preset or config.dataset}-{side}", self.root)
                    for preset, config, side in ((preset_a, config_a, "A"), (preset_b, config_b, "B"))]
            pair = PairJob(self, session, config_a, config_b, dirs[0], dirs[1], preset_a, preset_b, start_paused,
                           trainer_factory)
            return self._enqueue(session, pair)

    def _check_free(self, session: str) -> None:
        current = self._by_session.get(session)
        if current is not None and current.state.active:
            raise GanError("this session already has a run in progress: stop it first")

    def _enqueue(self, session: str, job: Any) -> Any:
        self._by_session[session] = job
        self._queue.append(job)
        self._schedule()
        self._ensure_reaper()
        return job

    def job_for(self, session: str) -> Optional[Union[Job, PairJob]]:
        """The session's current (or last) job or A/B pair, if any. Sessions never see each other's jobs."""
        with self._lock:
            return self._by_session.get(session)

    def touch(self, session: str) -> None:
        """Heartbeat from a page of `session`: its job stays alive."""
        job = self.job_for(session)
        if job is not None:
            job.touch()

    def counts(self) -> dict[str, int]:
        """Running and queued jobs, and the cap."""
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue), "max_jobs": self.max_jobs}

    def active_jobs(self) -> list[Union[Job, PairJob]]:
        """Every session's active job or pair (queued, loading, running, paused), for the teacher's class
        view; the manager is not changed. Never show them to a student."""
        with self._lock:
            return [j for j in self._by_session.values() if j.state.active]

    def active_run_dirs(self) -> set[Path]:
        """Run folders being written right now (not to be renamed or deleted)."""
        with self._lock:
            return {d for j in self._by_session.values() if j.state.active for d in j.run_dirs}

    # --- the jobs' side (JobHost) --------------------------------------------------------------
    def expired(self, job: Job) -> bool:
        """True if the job's session has not been seen for `session_timeout` seconds."""
        return time.monotonic() - job.last_seen > self.session_timeout

    def queue_position(self, job: Job) -> Optional[int]:
        """1-based place of a queued job in the line, else None."""
        with self._lock:
            return self._queue.index(job) + 1 if job in self._queue else None

    def threads_per_job(self) -> int:
        """Torch threads for each running job: $GAN_TORCH_THREADS, else the cores (one left for the web
        server) shared among the running jobs, so several jobs do not oversubscribe the CPU."""
        if os.environ.get(ENV_TORCH_THREADS):
            return max(1, int(env_float(ENV_TORCH_THREADS, 1)))
        with self._lock:
            running = max(1, len(self._running))
        return max(1, (cpu_cores() - 1) // running)

    def withdraw(self, job: Job) -> None:
        """A stop of a job that never started: it leaves the line and ends as stopped."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                job.cancel("stopped before it started")

    def release(self, job: Job) -> None:
        """A job has ended: its slot goes to the next in line."""
        with self._lock:
            self._running.discard(job)
            self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self.max_jobs and not self._closing.is_set():
                job = self._queue.pop(0)
                if self.expired(job) or time.monotonic() - job.last_seen > QUEUED_GRACE_SECONDS:
                    job.cancel("stopped before it started: the browser tab was closed")
                    continue
                self._running.add(job)
                job.start()

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
            try:  # the server (re)starts: clean up after whatever crashed last time
                log.info("runs folder recovered: %s", recover_runs_folder(_manager.root))
            except OSError as exc:
                log.warning("could not check the runs folder %s: %s", _manager.root, exc)
        return _manager


def set_manager(manager: Optional[JobManager]) -> Optional[JobManager]:
    """Replace the process-wide manager (tests); returns the previous one."""
    global _manager
    with _manager_lock:
        previous, _manager = _manager, manager
        return previous
