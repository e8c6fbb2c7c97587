"""One training run of one browser session: its commands (pause, resume, step, speed, stop), its
state, and `view()`, the immutable picture the page polls. The training loop itself is in
`loop.py`; admission and the queue in `manager.py`. Nothing here imports Streamlit.
"""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from ..config import TrainConfig
from ..data import DATASETS
from ..identity import owner_id
from ..paths import data_cache_dir
from ..trainer import StepRecord, Trainer
from .quality import LiveMetrics
from .scheduler import SlotLoad, Turns
from .view import JobState, JobView, Progress, RecordHistory, SnapshotHistory

TrainerFactory = Callable[[TrainConfig], Trainer]


@dataclass(frozen=True)
class JobSettings:
    """How often a job's side tasks run and how much history it keeps (the manager's settings)."""

    view_seconds: float = 1.0  # sample grid, verdict, 2D lab
    metrics_seconds: float = 5.0  # FCD / mode coverage
    checkpoint_seconds: float = 20.0
    snapshot_cap: int = 100  # look-back snapshots kept
    history_cap: int = 1000  # rows of the loss / verdict history
    metrics_history: int = 200  # metrics passes kept


class JobHost(Protocol):
    """What a job needs from whoever admitted it (the JobManager)."""

    settings: JobSettings

    def queue_position(self, job: "Job") -> Optional[int]: ...
    def withdraw(self, job: "Job") -> None: ...
    def release(self, job: "Job") -> None: ...
    def expired(self, job: "Job") -> bool: ...
    def threads_per_job(self) -> int: ...
    def load(self, job: "Job") -> Optional[SlotLoad]: ...


@dataclass(frozen=True)
class Command:
    """What the worker does next: stop (with a reason), or one step (a single step pauses after it)."""

    stop: bool = False
    reason: str = ""
    single: bool = False
    speed: float = 0.0


class Controls:
    """The commands a page sends to a training job and the worker's side of them (`next_command`): shared
    by a `Job` and an A/B pair (pair.py), which hold one worker thread each. Subclasses call
    `_init_controls` and say how their state is shown (`_shown_state`, `_set_state`)."""

    host: "JobHost"

    def _init_controls(self, cond: threading.Condition, start_paused: bool) -> None:
        self.last_seen = time.monotonic()
        self._cond = cond
        self._thread: Optional[threading.Thread] = None
        self._paused, self._stop, self._stop_reason = start_paused, False, ""
        self.server_lost = False  # a worker whose server went away saves its run as "interrupted", not "stopped"
        self._pending_steps, self._speed, self._last_step = 0, 0.0, 0.0
        # Fair sharing (scheduler.py): the worker's turns at a slot; None when the job trains without sharing.
        self.turns: Optional[Turns] = None
        # A job trained in a worker process (worker.py): its commands are forwarded there as messages (under
        # the lock, so the state the worker starts from and the commands it receives later never overlap).
        self.forward: Optional[Callable[[tuple], None]] = None
        self.worker_pid: Optional[int] = None  # the worker process's id while it runs (process mode)

    def _forward(self, *message: Any) -> None:
        forward = self.forward
        if forward is not None:
            forward(message)

    def take_turn(self) -> bool:
        """The worker's gate before each step: wait for a share of a training slot (fair mode); False if the
        job was stopped while it waited."""
        return self.turns.take(lambda: self._stop) if self.turns is not None else True

    def _shown_state(self) -> JobState:
        raise NotImplementedError

    def _waiting(self) -> None:
        """Called (under the lock) each time the worker waits in `next_command` (a worker process says it is alive)."""

    def _set_state(self, state: JobState, message: str) -> None:
        """Show `state` (called under the lock)."""
        raise NotImplementedError

    def pause(self) -> None:
        """Pause after the current step."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()
            self._forward("pause")

    def resume(self) -> None:
        """Continue training."""
        with self._cond:
            self._paused, self._pending_steps = False, 0
            self._cond.notify_all()
            self._forward("resume")

    def step_once(self) -> None:
        """Run exactly one D+G iteration (the job pauses first if it was running)."""
        with self._cond:
            self._paused = True
            self._pending_steps += 1
            self._cond.notify_all()
            self._forward("step")

    def set_speed(self, steps_per_second: float) -> None:
        """Slow motion: at most this many steps per second (0 = full speed)."""
        with self._cond:
            self._speed = max(0.0, float(steps_per_second))
            self._cond.notify_all()
            self._forward("speed", self._speed)

    def stop(self, wait: bool = True, timeout: float = 30.0, reason: str = "") -> None:
        """Stop the job (a queued one never starts); the worker saves the run. Joins the thread if `wait`."""
        with self._cond:
            self._stop = True
            self._stop_reason = self._stop_reason or reason
            self._cond.notify_all()
            self._forward("stop", reason)
        self.host.withdraw(self)
        thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def touch(self) -> None:
        """A heartbeat from the session's page: the tab is still open."""
        self.last_seen = time.monotonic()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the worker thread to end; True if it has (or never started)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    @property
    def thread(self) -> Optional[threading.Thread]:
        """The worker thread (None while queued)."""
        return self._thread

    @property
    def stop_requested(self) -> bool:
        """True once `stop()` was called."""
        return self._stop

    def next_command(self) -> Command:
        """Block until the worker may act: a stop (asked for, or the tab was closed) or one step. Marks the
        job paused while it waits, running when it goes on; slow motion waits between steps here."""
        with self._cond:
            while True:
                if self._stop:
                    return Command(stop=True, reason=self._stop_reason)
                if self.host.expired(self):
                    return Command(stop=True, reason="stopped: the browser tab was closed (no heartbeat)")
                single = self._pending_steps > 0
                if single or not self._paused:
                    wait = self._last_step + 1.0 / self._speed - time.monotonic() if self._speed and not single else 0
                    if wait <= 0:
                        break
                else:
                    if self._shown_state() != JobState.PAUSED:
                        self._set_state(JobState.PAUSED, "paused")
                    wait = 0.5
                if self.turns is not None:  # nobody trains in a slot while it waits
                    self.turns.idle()
                self._waiting()
                self._cond.wait(wait)
            if single:
                self._pending_steps -= 1
            elif self._shown_state() != JobState.RUNNING:
                self._set_state(JobState.RUNNING, "training")
            self._last_step = time.monotonic()
            return Command(single=single, speed=self._speed)


class Job(Controls):
    """One training run of one session. Commands are thread-safe; `view()` never blocks for long."""

    def __init__(self, host: JobHost, session: str, config: TrainConfig, run_dir: Path, preset: str = "",
                 start_paused: bool = False, trainer_factory: Optional[TrainerFactory] = None,
                 lock: Optional[threading.Condition] = None, owner: Optional[str] = None):
        """`lock`: a condition shared with other jobs (the two sides of an A/B pair share their pair's).
        `owner`: the one-way owner id saved with the run (default: computed from `session`)."""
        self.host = host
        self.id = uuid.uuid4().hex[:12]
        self.session = session
        self.config = config
        self.run_dir = Path(run_dir)
        self.name = self.run_dir.name
        self.preset = preset
        self.spec = DATASETS[config.dataset]
        self.trainer_factory: TrainerFactory = trainer_factory or Trainer
        self.owner = owner if owner is not None else owner_id(session, self.run_dir.parent)  # never the secret
        self._init_controls(lock or threading.Condition(), start_paused)
        self.pair: Optional[dict[str, str]] = None  # {"id", "side", "other"} for a side of an A/B pair (pair.py)
        self._progress = Progress()
        self._version = 0
        self._history = RecordHistory(cap=host.settings.history_cap)
        self._snapshots = SnapshotHistory(cap=host.settings.snapshot_cap, every_seconds=host.settings.view_seconds)
        self._rate_window: deque[tuple[float, int]] = deque(maxlen=64)  # (time, images so far)
        self._images = 0

    def wait_for_view(self, version: int, timeout: float = 2.0) -> bool:
        """Wait until the view has changed since `version` (e.g. a requested step is shown) or the job ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._version <= version and self._progress.state.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    @property
    def state(self) -> JobState:
        """The current state."""
        return self._progress.state

    @property
    def run_dirs(self) -> tuple[Path, ...]:
        """The run folders this job writes (one; a pair has two)."""
        return (self.run_dir,)

    def trained(self) -> tuple[int, float]:
        """(steps done, training seconds so far): cheap, for the manager's wait estimate."""
        with self._cond:
            return self._progress.step, self._progress.train_seconds

    @property
    def metrics(self) -> Optional[LiveMetrics]:
        """The latest quality numbers, if measured yet."""
        return self._progress.metrics

    @property
    def saved_step(self) -> Optional[int]:
        """The step of the last checkpoint written, if any."""
        return self._progress.saved_step

    # --- the picture for the page ----------------------------------------------------------
    def view(self) -> JobView:
        """An immutable snapshot of everything the page shows (build it once per page run)."""
        position = self.host.queue_position(self)  # before taking our lock: the manager's lock comes first
        load = self.host.load(self)
        with self._cond:
            p, now = self._progress, time.monotonic()
            wall = (p.ended_wall or now) - p.started_wall if p.started_wall is not None else 0.0
            return JobView(
                id=self.id, session=self.session, name=self.name, preset=self.preset, config=self.config.to_dict(),
                kind=self.spec.kind, class_names=p.class_names, state=p.state, message=p.message,
                error_kind=p.error_kind, queue_position=position, download=self._download_progress(),
                step=p.step, train_seconds=p.train_seconds, wall_seconds=wall, images_per_s=self._rate(now),
                device=p.device, parameters=dict(p.parameters), history=self._history.columns(),
                snapshots=self._snapshots.items(), latest=p.latest, latest_step=p.latest_step, verdict=p.verdict,
                lab=p.lab, step_frames=list(p.step_frames), metrics=p.metrics, run_dir=str(self.run_dir),
                saved_step=p.saved_step, storage_problem=p.storage_problem, speed=self._speed, version=self._version,
                load=load,
            )

    def _rate(self, now: float) -> float:
        if self._progress.state != JobState.RUNNING or len(self._rate_window) < 2:
            return 0.0
        recent = [(t, n) for t, n in self._rate_window if now - t < 10.0] or list(self._rate_window)[-2:]
        (t0, n0), (t1, n1) = recent[0], recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _download_progress(self) -> Optional[tuple[float, float]]:
        if self._progress.download_base is None:
            return None
        done = max(0, folder_bytes(data_cache_dir()) - self._progress.download_base) / 1e6
        return done, float(self.spec.download_mb)

    # --- the worker's side (see loop.py) ----------------------------------------------------
    def update(self, **changes: Any) -> None:
        """Change what the page shows (fields of `Progress`) and wake anyone waiting for a new view."""
        with self._cond:
            self._progress = dataclasses.replace(self._progress, **changes)
            self._version += 1
            self._cond.notify_all()

    def publish(self, step: int, payload: Any, snapshot: bool, **changes: Any) -> None:
        """Show a new picture (`payload`: PNG bytes or a LabView) of `step`, kept for look-back if `snapshot`
        or due."""
        now = time.monotonic()
        with self._cond:  # the condition's lock is re-entrant: snapshot and view change as one
            if snapshot or self._snapshots.due(now):
                self._snapshots.add(step, payload, now)
            self.update(latest=payload, latest_step=step, **changes)

    def record(self, rec: StepRecord) -> None:
        """Add one training step to the history and the speed window."""
        with self._cond:
            self._history.add(rec)
            self._images += self.config.batch_size * self.config.d_steps
            self._rate_window.append((time.monotonic(), self._images))
            self._progress.step, self._progress.train_seconds = rec.step, rec.seconds

    def _shown_state(self) -> JobState:
        return self._progress.state

    def _set_state(self, state: JobState, message: str) -> None:
        self._progress.state, self._progress.message = state, message
        self._version += 1
        self._cond.notify_all()

    def run_metadata(self, status: str) -> dict[str, Any]:
        """What a checkpoint of this job saves besides the trainer's own metadata."""
        meta: dict[str, Any] = {"name": self.name, "preset": self.preset, "status": status,
                                "owner": self.owner}
        final = self.metrics.final().to_meta() if self.metrics is not None else {}
        if final:
            meta["final_metrics"] = final
        if self.pair:
            meta["pair"] = dict(self.pair)
        return meta

    # --- life cycle (from the manager and the worker) ----------------------------------------
    def start(self, worker: Optional[Callable[["Job"], None]] = None) -> None:
        """Start `worker(job)` (default: loop.run_job) in the job's thread (the manager calls this when a
        slot is free)."""
        if worker is None:
            from .loop import run_job  # loop imports this module
            worker = run_job
        with self._cond:
            if self._stop:
                return
            self._set_state(JobState.LOADING, "preparing")
        self._thread = threading.Thread(target=worker, args=(self,), name=f"gan-job-{self.id}", daemon=True)
        self._thread.start()

    def cancel(self, message: str) -> None:
        """End a job that never started (it held no slot)."""
        self._end(JobState.STOPPED, message, "")

    def end(self, final: JobState, message: str, error_kind: str) -> None:
        """The worker is done: record how it ended and give the slot back."""
        self._end(final, message, error_kind)
        self.host.release(self)

    def _end(self, final: JobState, message: str, error_kind: str) -> None:
        self.update(state=final, message=message or final.value, error_kind=error_kind, ended_wall=time.monotonic())


def folder_bytes(folder: Path) -> int:
    """Bytes in the files below `folder` (0 if it does not exist)."""
    total = 0
    if folder.is_dir():
        for path in folder.rglob("*"):
            try:
                if path.is_file():
                    total += path.stat().st_size
            except OSError:
                pass
    return total
