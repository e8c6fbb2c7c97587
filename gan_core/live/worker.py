"""The process boundary: a training job runs in a worker process of its own; the server keeps only its views.

Server side, `supervise(job)` runs in the job's daemon thread (Job.start): it starts a worker process from a
forkserver that has torch and gan_core imported already (a worker starts in a fraction of a second and
shares those pages), forwards the page's commands to it, applies what it streams back to the server-side
`Job` (or both sides of a `PairJob`), hands out its turns at a training slot (fair mode), and ends the run
when the process is gone. Worker side (worker_process.py), `worker_main` runs the unchanged `loop.run_job` / `pair.run_pair`
against `RemoteJob` / `RemotePair`: a `Job` / `PairJob` whose changes are sent as messages and whose
commands arrive as messages. Workers that share the machine with other runs train at a lower CPU priority
than the web server ($GAN_WORKER_NICE, default 10), and all workers sit in a scheduler group of their own
(worker_group.py: Linux shares the CPU between sessions first), so a class's pages stay responsive; a run alone trains at
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
from pathlib import Path
from typing import Any, Optional, Union

from ..config import TrainConfig
from .job import Job, JobSettings, TrainerFactory
from .pair import PairJob
from .link import Link
from .view import JobState
from .worker_process import worker_main

log = logging.getLogger(__name__)

ENV_WORKER_NICE = "GAN_WORKER_NICE"
ENV_HANG_SECONDS = "GAN_WORKER_HANG_SECONDS"
DEFAULT_NICE = 10
DEFAULT_HANG_SECONDS = 120.0
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
                _context.set_forkserver_preload([__name__, f"{__package__}.worker_group"])
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
    link, watch = Link(server_end), _Watch()
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


def _pump(job: AnyJob, sides: tuple[Job, ...], host: Any, process: Any, link: Link, watch: _Watch,
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
