"""Admission of training jobs: a process-wide `JobManager` (see `get_manager()`) admits up to
`max_admitted` runs, which share `max_jobs` training slots round-robin in short quanta (fair mode, the
default: scheduler.py), queues the rest in order with an estimated wait, and reaps jobs whose browser
tab was closed. `GAN_SCHEDULING=queue` restores first come, first served: `max_jobs` runs train at
once, each with a slot to itself, the others wait.

Pages never train: they submit a job, send it commands (pause, resume, step, stop) and poll
`job.view()`. Each poll is also a heartbeat; a job whose session has not been seen for
`session_timeout` seconds is stopped and saved. Each job trains in a worker process of its own
(worker.py, the default) or, with `workers="thread"`, in a thread of this process; either is watched
by a daemon thread that is joined on stop. With a Ray cluster's address ($GAN_RAY_ADDRESS) each job
trains in a Ray actor on a node of the cluster instead (ray_worker.py): Ray decides where and when,
`GAN_MAX_ADMITTED` (default RAY_MAX_ADMITTED) caps the runs this server follows. Nothing here imports
Streamlit, nor Ray without that address.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Union

from ..budget import check_run_budget, default_run_budget_bytes
from ..cluster import ray_address as env_ray_address
from ..config import TrainConfig
from ..data import DATASETS
from ..device import resolve_device
from ..errors import GanError
from ..paths import runs_dir
from ..runs import new_run_dir, recover_runs_folder
from .job import Job, JobSettings, TrainerFactory
from .pair import PairJob
from .scheduler import (DEFAULT_QUANTUM_SECONDS, FairShare, SlotLoad, Turns,
                        estimated_waits, remaining_train_seconds)
from .settings import (DEFAULT_SESSION_TIMEOUT, ENV_CHECKPOINT_SECONDS, ENV_MAX_ADMITTED, ENV_METRICS_SECONDS,
                       ENV_QUANTUM, ENV_SCHEDULING, ENV_SESSION_TIMEOUT, ENV_WORKERS, QUEUED_GRACE_SECONDS,
                       RAY_MAX_ADMITTED, SCHEDULING_MODES, WORKER_MODES, check_data_folder, cpu_cores,
                       default_max_admitted, default_max_jobs, env_choice, env_float)
from .threads import ENV_TORCH_THREADS

log = logging.getLogger(__name__)


class JobManager:
    """Admits training jobs (fair share of the slots, or first come first served), queues the rest, reaps
    abandoned ones."""

    def __init__(self, max_jobs: Optional[int] = None, session_timeout: Optional[float] = None,
                 root: Optional[Path] = None, checkpoint_seconds: Optional[float] = None, view_seconds: float = 1.0,
                 metrics_seconds: Optional[float] = None, snapshot_cap: int = 100, history_cap: int = 1000,
                 metrics_history: int = 200, reaper_interval: Optional[float] = None,
                 scheduling: Optional[str] = None, max_admitted: Optional[int] = None,
                 quantum_seconds: Optional[float] = None, workers: Optional[str] = None,
                 ray_address: Optional[str] = None):
        """`max_jobs`: training slots ($GAN_MAX_JOBS); `scheduling`: "fair" or "queue" ($GAN_SCHEDULING);
        `max_admitted`: runs sharing the slots in fair mode ($GAN_MAX_ADMITTED, default from memory);
        `quantum_seconds`: a run's turn at a slot ($GAN_QUANTUM_SECONDS); `workers`: "process" (a worker
        process per job, worker.py) or "thread" (in this process: for tests that inject trainer factories
        or patch the engine in-process, which a separate process cannot see) ($GAN_WORKERS);
        `ray_address`: train on that Ray cluster instead ($GAN_RAY_ADDRESS; each job a Ray actor that trains
        without sharing, as many at once as the cluster has room for, up to `max_admitted`)."""
        self.ray_address = ray_address or env_ray_address()
        self.max_jobs = max_jobs if max_jobs is not None else default_max_jobs()
        self.scheduling = scheduling or env_choice(ENV_SCHEDULING, SCHEDULING_MODES)
        self.workers = workers or env_choice(ENV_WORKERS, WORKER_MODES)
        if self.scheduling not in SCHEDULING_MODES or self.workers not in WORKER_MODES:
            raise ValueError(f"scheduling must be one of {SCHEDULING_MODES}, workers one of {WORKER_MODES}")
        self.quantum_seconds = quantum_seconds if quantum_seconds is not None else env_float(ENV_QUANTUM, DEFAULT_QUANTUM_SECONDS)
        if self.ray_address:  # Ray places the runs on its nodes: this server only caps how many it follows
            self.workers, self.scheduling = "ray", "queue"
            if max_admitted is None:
                max_admitted = max(1, int(env_float(ENV_MAX_ADMITTED, RAY_MAX_ADMITTED)))
            self.max_jobs = self.max_admitted = max_admitted
        elif self.scheduling == "queue":
            self.max_admitted = self.max_jobs
        else:
            self.max_admitted = max_admitted if max_admitted is not None else default_max_admitted(self.max_jobs, self.quantum_seconds)
        self.share = FairShare(self.max_jobs)
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
        if self.workers == "ray" and config.dataset == "folder":
            raise GanError("training on a folder of images is off on a Ray cluster (its nodes do not have this "
                           "server's files); use one of the bundled datasets")
        admitted = 1 if self.workers == "ray" else self.max_admitted  # on Ray, each run has its node's memory
        check_run_budget(config, shape, default_run_budget_bytes(admitted) // share, len(spec.class_names) or 10)
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

    def load(self, job: Optional[Any] = None) -> SlotLoad:
        """How the slots are shared now; for a queued `job`, with its estimated wait."""
        with self._lock:
            admitted, queue = list(self._running), list(self._queue)
        wait = None
        if job is not None and job in queue:
            wait = self._estimated_wait(admitted, queue, queue.index(job))
        if self.workers == "ray":  # the cluster's CPUs; runs Ray has not placed yet count as queued
            from .ray_worker import cluster_cpus, pending_count

            cpus, waiting = cluster_cpus(), pending_count()
            return SlotLoad(mode="ray", slots=cpus, cores=cpus, admitted=len(admitted) - waiting,
                            queued=len(queue) + waiting, max_admitted=self.max_admitted)
        return SlotLoad(mode=self.scheduling, slots=self.max_jobs, cores=cpu_cores(), admitted=len(admitted),
                        queued=len(queue), max_admitted=self.max_admitted, estimated_wait=wait)

    def _estimated_wait(self, admitted: list[Any], queue: list[Any], index: int) -> Optional[float]:
        """Seconds until the `index`-th queued job is admitted (see scheduler.estimated_waits); None without
        a measured speed to go by."""
        done = {side: side.trained() for job in admitted for side in _sides(job)}
        rates = [seconds / step for step, seconds in done.values() if step > 0]
        per_step = sorted(rates)[len(rates) // 2] if rates else None
        remaining = []
        for job in admitted:
            left = [remaining_train_seconds(side.config, *done[side], per_step) for side in _sides(job)]
            if any(x is None for x in left):
                return None
            remaining.append(sum(left))  # a pair trains its two sides in turn
        budgets = []
        for job in queue[:index + 1]:
            need = [remaining_train_seconds(side.config, 0, 0.0, per_step) for side in _sides(job)]
            if any(x is None for x in need):
                return None
            budgets.append(sum(need))
        return estimated_waits(remaining, budgets, self.max_jobs, self.max_admitted)[index]

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
        """1-based place of a queued job in the line (on Ray: among the runs waiting for the cluster's
        resources, then those waiting here), else None."""
        waiting = 0
        if self.workers == "ray":
            from .ray_worker import pending_count, pending_position

            position = pending_position(job)
            if position is not None:
                return position
            waiting = pending_count()
        with self._lock:
            return waiting + self._queue.index(job) + 1 if job in self._queue else None

    def threads_per_job(self) -> int:
        """Torch threads each training job may use: $GAN_TORCH_THREADS, else the cores shared among the jobs
        that train at the same instant (at most `max_jobs`), so several jobs do not oversubscribe the CPU.
        A job trains with as many of them as are fastest (threads.ThreadTuner); the web server needs
        little CPU, and workers that share the machine yield to it (`worker_nice`)."""
        if os.environ.get(ENV_TORCH_THREADS):
            return max(1, int(env_float(ENV_TORCH_THREADS, 1)))
        with self._lock:
            running = max(1, min(len(self._running), self.max_jobs))
        return max(1, cpu_cores() // running)

    def worker_nice(self) -> int:
        """The CPU niceness of training workers now: 0 while one run is admitted (it has the machine; the
        browser watching it may share the cores and must not starve it; queued runs do not train),
        $GAN_WORKER_NICE (default 10) once several share it, so that the pages of a class stay responsive."""
        with self._lock:
            crowded = len(self._running) > 1
        if not crowded:
            return 0
        from .worker import worker_shared_nice

        return worker_shared_nice()

    def turn(self, job: Any, kind: str, grant: Callable[[], None]) -> None:
        """A worker's turn at a slot (fair mode; see scheduler.Turns): kind is "request", "yield" or "done"."""
        if kind == "request":
            self.share.request(job, grant)
        elif kind == "yield":
            self.share.yield_turn(job, grant)
        else:
            self.share.done(job)

    def withdraw(self, job: Job) -> None:
        """A stop of a job that never started: it leaves the line and ends as stopped."""
        with self._lock:
            if job in self._queue:
                self._queue.remove(job)
                job.cancel("stopped before it started")

    def release(self, job: Job) -> None:
        """A job has ended: its slot goes to the next in line."""
        self.share.done(job)
        with self._lock:
            self._running.discard(job)
            self._schedule()

    def _schedule(self) -> None:
        with self._lock:
            while self._queue and len(self._running) < self.max_admitted and not self._closing.is_set():
                job = self._queue.pop(0)
                if self.expired(job) or time.monotonic() - job.last_seen > QUEUED_GRACE_SECONDS:
                    job.cancel("stopped before it started: the browser tab was closed")
                    continue
                self._running.add(job)
                self._start(job)

    def _start(self, job: Any) -> None:
        """Start an admitted job in a worker process (worker.py) or thread; in fair mode it trains in turns."""
        if self.workers in ("process", "ray"):  # the process boundary, loaded with the first job
            if self.workers == "ray":
                from .ray_worker import supervise
            else:
                from .worker import supervise

            job.start(supervise)
            return
        if self.scheduling == "fair":
            turns = Turns(lambda kind: self.turn(job, kind, turns.grant), self.quantum_seconds)
            job.turns = turns
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


def _sides(job: Any) -> tuple[Job, ...]:
    return tuple(getattr(job, "sides", (job,)))


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
