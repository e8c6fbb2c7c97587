"""The process boundary: a training job runs in a worker process of its own; the server keeps only its views.

Server side, `supervise(job)` runs in the job's daemon thread (Job.start): it starts a worker process from a
forkserver that has torch and gan_core imported already (a worker starts in a fraction of a second and
shares those pages), forwards the page's commands to it, applies what it streams back to the server-side
`Job` (or both sides of a `PairJob`), hands out its turns at a training slot (fair mode), and ends the run
when the process is gone. Worker side, `worker_main` runs the unchanged `loop.run_job` / `pair.run_pair`
against `RemoteJob` / `RemotePair`: a `Job` / `PairJob` whose changes are sent as messages and whose
commands arrive as messages. Workers that share the machine with other runs train at a lower CPU priority
than the web server ($GAN_WORKER_NICE, default 10), so a class's pages stay responsive; a run alone trains at
the server's priority (the browser watching it often shares the cores and would otherwise starve it).

Messages are tuples over one duplex `multiprocessing` connection (picklable values only: a transport
such as a Ray actor can carry the same tuples).

    server -> worker
      ("pause",) ("resume",) ("step",) ("speed", steps_per_s) ("stop", reason)    the page's commands
      ("go",)                        a turn at a training slot (fair mode), the answer to ("turn", ...)
      ("threads", n)                 torch threads to use from now on
      ("nice", n)                    the CPU niceness to train at from now on
    worker -> server
      ("state", side, state, message)            JobState value shown (running, paused...)
      ("update", side, {field: value})           fields of view.Progress (metrics, verdict, saved_step...)
      ("publish", side, step, payload, snapshot, {field: value})   a new sample grid / 2D lab picture
      ("records", side, [StepRecord, ...])       training steps, batched (at most every RECORDS_SECONDS)
      ("turn", kind)                 "request", "yield" (quantum over) or "done" (see scheduler.Turns)
      ("alive",)                     sent about once a second while the worker waits (paused)
      ("bye",)                       the worker is done; the process exits

`side` is 0 for a job, 0 (A) or 1 (B) for a pair. A run has ended once an update sets a final state;
a worker whose process dies before that (crash, SIGKILL, out of memory) or that sends nothing for
$GAN_WORKER_HANG_SECONDS while it trains or is paused (it is then killed) ends its run as failed, with a
message naming what happened and the last checkpoint, which stays as it was (checkpoints are written
atomically). The server and the other runs go on. The slot is given back only once the process is gone.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.spawn
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Optional, Union

from ..config import TrainConfig
from ..trainer import StepRecord
from .job import Job, JobSettings, TrainerFactory
from .pair import PairJob
from .scheduler import SlotLoad, Turns
from .view import JobState

log = logging.getLogger(__name__)

ENV_WORKER_NICE = "GAN_WORKER_NICE"
ENV_HANG_SECONDS = "GAN_WORKER_HANG_SECONDS"
DEFAULT_NICE = 10
DEFAULT_HANG_SECONDS = 120.0
RECORDS_SECONDS = 0.1  # step records are sent in batches at most this far apart
ALIVE_SECONDS = 1.0
POLL_SECONDS = 0.5
_TIMES = ("started_wall", "ended_wall")  # the worker's clock means nothing here: stamped on arrival

AnyJob = Union[Job, PairJob]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to rebuild its job (picklable; no session secret, only the owner id)."""

    job_id: str
    configs: tuple[TrainConfig, ...]  # one, or A and B of a pair
    run_dirs: tuple[Path, ...]
    presets: tuple[str, ...]
    owner: str
    pairs: tuple[Optional[dict[str, str]], ...]
    settings: JobSettings
    trainer_factory: Optional[TrainerFactory]
    threads: int
    quantum_seconds: Optional[float]  # None: no fair sharing (queue mode)
    paused: bool
    speed: float
    pending_steps: int
    env: dict[str, str] = field(default_factory=dict)  # the server's GAN_* settings
    nice: int = DEFAULT_NICE


def worker_shared_nice() -> int:
    """The niceness of workers that share the machine: $GAN_WORKER_NICE, default 10."""
    return int(_env_number(ENV_WORKER_NICE, DEFAULT_NICE))


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


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


_context: Optional[Any] = None
_context_lock = threading.Lock()


def context() -> Any:
    """The multiprocessing context of the workers: a forkserver that preloads torch and gan_core (spawn
    where there is no forkserver)."""
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                _context = multiprocessing.get_context("forkserver")
                _context.set_forkserver_preload([__name__])
            else:
                _context = multiprocessing.get_context("spawn")
        return _context


def _prepare_without_main(data: dict[str, Any], _prepare: Any = multiprocessing.spawn.prepare) -> None:
    """multiprocessing's `spawn.prepare` for our workers, minus re-running the server's main module: under
    Streamlit that module is the app's page script, which a worker must not run (it needs only this module,
    which the forkserver preloaded). Other processes are prepared as usual."""
    if str(data.get("name", "")).startswith("gan-worker-"):
        data = {k: v for k, v in data.items() if k not in ("init_main_from_name", "init_main_from_path")}
    _prepare(data)


multiprocessing.spawn.prepare = _prepare_without_main  # runs in the forkserver's children, which import this module


def _sides(job: AnyJob) -> tuple[Job, ...]:
    return tuple(getattr(job, "sides", (job,)))


# --- the server's side ---------------------------------------------------------------------------------
class _Link:
    """One end of the connection; `send` is thread-safe and quiet once the other end is gone."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._lock:
            try:
                self.conn.send(message)
            except (OSError, ValueError):  # the worker is gone: its end is reported by the supervisor
                pass

    def close(self) -> None:
        with self._lock:
            self.conn.close()


class _Watch:
    """What the supervisor knows of its worker: last sign of life, whether it waits for a turn."""

    def __init__(self) -> None:
        self.heard = time.monotonic()
        self.waiting_turn = False


def worker_spec(job: AnyJob, threads: int, quantum: Optional[float]) -> WorkerSpec:
    """The spec of `job` (called under its lock, so the commands captured here and those forwarded later
    never overlap)."""
    sides = _sides(job)
    return WorkerSpec(
        job_id=job.id, configs=tuple(s.config for s in sides), run_dirs=tuple(s.run_dir for s in sides),
        presets=tuple(s.preset for s in sides), owner=sides[0].owner, pairs=tuple(s.pair for s in sides),
        settings=job.host.settings, trainer_factory=getattr(job, "trainer_factory", None), threads=threads,
        quantum_seconds=quantum, paused=job._paused, speed=job._speed, pending_steps=job._pending_steps,
        env={k: v for k, v in os.environ.items() if k.startswith("GAN_")},
        nice=_host_nice(job.host))


def _host_nice(host: Any) -> int:
    worker_nice = getattr(host, "worker_nice", None)
    return worker_nice() if worker_nice is not None else worker_shared_nice()


def supervise(job: AnyJob) -> None:
    """Run `job` in a worker process and mirror it here until the process is gone (the job's thread)."""
    host = job.host
    sides = _sides(job)
    fair = getattr(host, "scheduling", "queue") == "fair"
    ctx = context()
    server_end, worker_end = ctx.Pipe()
    link, watch = _Link(server_end), _Watch()
    threads = host.threads_per_job()
    nice = _host_nice(host)
    with job._cond:
        job.forward = link.send
        spec = worker_spec(job, threads, host.quantum_seconds if fair else None)
    process = ctx.Process(target=worker_main, args=(worker_end, spec), name=f"gan-worker-{job.id}", daemon=True)
    failure = ""
    try:
        process.start()
    except Exception as exc:  # no process could be started (out of memory, no forkserver...)
        log.exception("could not start the worker of job %s", job.id)
        failure = f"could not start a training worker: {type(exc).__name__}: {exc}"
    worker_end.close()
    job.worker_pid = process.pid
    try:
        if not failure:
            failure = _pump(job, sides, host, process, link, watch, threads, nice)
    finally:
        job.forward = None
        if process.pid is not None:
            process.join(5.0)
            if process.is_alive():
                process.kill()
                process.join(5.0)
        link.close()
        if fair:
            host.turn(job, "done", lambda: None)
        for side in sides:
            if side.state.active:
                side._end(JobState.FAILED, _failure_message(failure or _death(process), side), "worker")
        host.release(job)


def _pump(job: AnyJob, sides: tuple[Job, ...], host: Any, process: Any, link: _Link, watch: _Watch,
          threads: int, nice: int) -> str:
    """Apply the worker's messages until it says bye or is gone; returns why it failed ("" if it did not)."""
    conn = link.conn
    hang_seconds = _env_number(ENV_HANG_SECONDS, DEFAULT_HANG_SECONDS)
    checked = time.monotonic()

    def grant() -> None:
        watch.waiting_turn, watch.heard = False, time.monotonic()
        link.send(("go",))

    while True:
        try:
            ready = conn.poll(POLL_SECONDS)
            message = conn.recv() if ready else None
        except (EOFError, OSError):
            return ""
        now = time.monotonic()
        if message is not None:
            watch.heard = now
            kind = message[0]
            if kind == "bye":
                return ""
            if kind == "turn":
                watch.waiting_turn = message[1] != "done"
                host.turn(job, message[1], grant)
            else:
                _apply(sides, message)
        elif not process.is_alive():
            return ""
        elif (not watch.waiting_turn and now - watch.heard > hang_seconds
              and any(s.state in (JobState.RUNNING, JobState.PAUSED) for s in sides)):
            process.kill()
            return (f"the training worker stopped answering (nothing for {hang_seconds:.0f} s) and was ended")
        if now - checked >= POLL_SECONDS:
            checked = now
            wanted = host.threads_per_job()
            if wanted != threads:
                threads = wanted
                link.send(("threads", threads))
            if (wanted_nice := _host_nice(host)) != nice:
                nice = wanted_nice
                link.send(("nice", nice))


def _apply(sides: tuple[Job, ...], message: tuple) -> None:
    kind, side = message[0], sides[message[1]] if len(message) > 1 else None
    if kind == "state":
        with side._cond:
            side._set_state(JobState(message[2]), message[3])
    elif kind == "update":
        side.update(**_stamped(message[2]))
    elif kind == "publish":
        _, _, step, payload, snapshot, changes = message
        side.publish(step, payload, snapshot, **_stamped(changes))
    elif kind == "records":
        for rec in message[2]:
            side.record(rec)


def _stamped(changes: dict[str, Any]) -> dict[str, Any]:
    return {k: (time.monotonic() if k in _TIMES and v is not None else v) for k, v in changes.items()}


def _death(process: Any) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        oom = ", perhaps out of memory" if -code == signal.SIGKILL else ""
        return f"the training worker was killed ({name}{oom})"
    return f"the training worker exited unexpectedly (exit code {code})"


def _failure_message(what: str, side: Job) -> str:
    step, _ = side.trained()
    saved = side.saved_step
    kept = f"its last checkpoint (step {saved:,}) is kept" if saved is not None else "nothing was saved"
    return f"{what} at step {step:,}; {kept}. The other runs go on."


# --- the worker's side ----------------------------------------------------------------------------------
class _WorkerLink(_Link):
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


def _build(spec: WorkerSpec, link: _WorkerLink) -> Union[RemoteJob, RemotePair]:
    host = RemoteHost(spec.settings, spec.threads)
    if len(spec.configs) == 2:
        job: Union[RemoteJob, RemotePair] = RemotePair(
            host, "", spec.configs[0], spec.configs[1], spec.run_dirs[0], spec.run_dirs[1], spec.presets[0],
            spec.presets[1], trainer_factory=spec.trainer_factory, owner=spec.owner)
    else:
        job = RemoteJob(host, "", spec.configs[0], spec.run_dirs[0], spec.presets[0],
                        trainer_factory=spec.trainer_factory, owner=spec.owner)
    for index, side in enumerate(_sides(job)):
        side.link, side.side, side.pair, side.id = link, index, spec.pairs[index], spec.job_id
    link.last_side = len(_sides(job)) - 1
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
            job.stop(wait=False, reason="stopped: the server went away")
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


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
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
