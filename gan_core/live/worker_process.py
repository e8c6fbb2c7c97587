"""The worker side of the process boundary (see worker.py for the protocol): `worker_main` rebuilds the job
in the worker process and trains it with the unchanged `loop.run_job` / `pair.run_pair` against `RemoteJob`
/ `RemotePair`, a `Job` / `PairJob` whose changes are sent to the server as messages and whose commands
arrive as messages."""

from __future__ import annotations

import os
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from ..trainer import StepRecord
from .job import Job, JobSettings
from .link import Link
from .pair import PairJob
from .scheduler import SlotLoad, Turns
from .view import JobState

if TYPE_CHECKING:
    from .worker import WorkerSpec

RECORDS_SECONDS = 0.1  # step records are sent in batches at most this far apart
ALIVE_SECONDS = 1.0

_base_nice: Optional[int] = None  # the niceness the worker started with: the server's


def set_nice(nice: int) -> None:
    """Train at this niceness above the server's from now on (lowering it again may be refused without
    privileges: then the worker stays where it is). On Linux niceness belongs to each thread, so every
    thread of the process gets it (the command arrives in the reader thread, the training runs in others)."""
    global _base_nice
    try:
        if _base_nice is None:
            _base_nice = os.getpriority(os.PRIO_PROCESS, 0)
        value = min(19, _base_nice + nice)
        tasks = Path("/proc/self/task")
        for tid in ([int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [0]):
            try:
                os.setpriority(os.PRIO_PROCESS, tid, value)
            except OSError:
                pass
    except OSError:
        pass


class _WorkerLink(Link):
    """The worker's end: step records are batched; every other message sends the pending records first."""

    def __init__(self, conn: Connection):
        super().__init__(conn)
        self._records: dict[int, list[StepRecord]] = {}
        self._flushed = time.monotonic()
        self._alive = 0.0
        self.last_side = 0  # a pair's B: records go out after B's step, so both sides' rounds arrive together

    def send(self, message: tuple) -> None:
        with self._lock:
            self._flush()
            self._send(message)

    def record(self, side: int, rec: StepRecord) -> None:
        with self._lock:
            self._records.setdefault(side, []).append(rec)
            if side == self.last_side and time.monotonic() - self._flushed >= RECORDS_SECONDS:
                self._flush()

    def alive(self) -> None:
        """A sign of life, at most once a second (the worker waits)."""
        now = time.monotonic()
        if now - self._alive >= ALIVE_SECONDS:
            self._alive = now
            self.send(("alive",))

    def _flush(self) -> None:
        for side, recs in self._records.items():
            if recs:
                self._send(("records", side, recs))
        self._records, self._flushed = {}, time.monotonic()

    def _send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except (OSError, ValueError):
            pass  # the server is gone: the command reader stops the job


class RemoteHost:
    """The host of a job in a worker: the server decides admission, expiry and turns; this answers the rest."""

    def __init__(self, settings: JobSettings, threads: int):
        self.settings = settings
        self.threads = threads

    def queue_position(self, job: Any) -> Optional[int]:
        return None

    def withdraw(self, job: Any) -> None:
        """Nothing to leave: the job was admitted."""

    def release(self, job: Any) -> None:
        """The server frees the slot once this process is gone."""

    def expired(self, job: Any) -> bool:
        return False  # the server's reaper sends ("stop", ...) for a closed tab

    def threads_per_job(self) -> int:
        return self.threads

    def load(self, job: Any) -> Optional[SlotLoad]:
        return None


class RemoteJob(Job):
    """A `Job` in a worker process: what it shows is sent to the server (the view is built there)."""

    link: _WorkerLink
    side = 0

    def update(self, **changes: Any) -> None:
        """Change what the page shows (here, for the worker's own reads, and on the server)."""
        super().update(**changes)
        self.link.send(("update", self.side, changes))

    def publish(self, step: int, payload: Any, snapshot: bool, **changes: Any) -> None:
        """A new picture: the server keeps it and the look-back snapshots."""
        self.link.send(("publish", self.side, step, payload, snapshot, changes))

    def record(self, rec: StepRecord) -> None:
        """One training step: sent to the server in the next batch."""
        with self._cond:
            self._progress.step, self._progress.train_seconds = rec.step, rec.seconds
        self.link.record(self.side, rec)

    def _set_state(self, state: JobState, message: str) -> None:
        super()._set_state(state, message)
        self.link.send(("state", self.side, state.value, message))

    def _waiting(self) -> None:
        self.link.alive()


class RemotePair(PairJob):
    """A `PairJob` in a worker process; its sides are `RemoteJob`s."""

    side_class = RemoteJob

    def _waiting(self) -> None:
        self.a.link.alive()


def _build(spec: "WorkerSpec", link: _WorkerLink) -> Union[RemoteJob, RemotePair]:
    host = RemoteHost(spec.settings, spec.threads)
    if len(spec.configs) == 2:
        job: Union[RemoteJob, RemotePair] = RemotePair(
            host, "", spec.configs[0], spec.configs[1], spec.run_dirs[0], spec.run_dirs[1], spec.presets[0],
            spec.presets[1], trainer_factory=spec.trainer_factory, owner=spec.owner)
    else:
        job = RemoteJob(host, "", spec.configs[0], spec.run_dirs[0], spec.presets[0],
                        trainer_factory=spec.trainer_factory, owner=spec.owner)
    for index, side in enumerate(getattr(job, "sides", (job,))):
        side.link, side.side, side.pair, side.id = link, index, spec.pairs[index], spec.job_id
    link.last_side = len(getattr(job, "sides", (job,))) - 1
    job.id = spec.job_id
    job._paused, job._speed, job._pending_steps = spec.paused, spec.speed, spec.pending_steps
    if spec.quantum_seconds is not None:
        job.turns = Turns(lambda kind: link.send(("turn", kind)), spec.quantum_seconds)
    return job


def _read_commands(conn: Connection, job: Union[RemoteJob, RemotePair], host: RemoteHost) -> None:
    """The worker's reader thread: the server's commands and turns, applied to the local job."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server is gone: save and end
            for lost in job.sides if isinstance(job, RemotePair) else (job,):  # the jobs that save a run
                lost.server_lost = True
            job.stop(wait=False, reason="interrupted: the server went away")
            return
        kind = message[0]
        if kind == "go":
            if job.turns is not None:
                job.turns.grant()
        elif kind == "threads":
            host.threads = int(message[1])
        elif kind == "nice":
            set_nice(int(message[1]))
        elif kind == "pause":
            job.pause()
        elif kind == "resume":
            job.resume()
        elif kind == "step":
            job.step_once()
        elif kind == "speed":
            job.set_speed(message[1])
        elif kind == "stop":
            job.stop(wait=False, reason=message[1])


def worker_main(conn: Connection, spec: "WorkerSpec") -> None:
    """The worker process: rebuild the job, train it with the usual loop, say bye, exit."""
    for name in [k for k in os.environ if k.startswith("GAN_") and k not in spec.env]:
        del os.environ[name]
    os.environ.update(spec.env)
    set_nice(spec.nice)
    link = _WorkerLink(conn)
    job = _build(spec, link)
    reader = threading.Thread(target=_read_commands, args=(conn, job, job.host), name="gan-worker-commands",
                              daemon=True)
    reader.start()
    try:
        if isinstance(job, RemotePair):
            from .pair import run_pair

            run_pair(job)
        else:
            from .loop import run_job

            run_job(job)
    finally:
        if job.turns is not None:
            job.turns.idle()
        link.send(("bye",))
