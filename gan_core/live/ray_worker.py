"""The Ray backend: with `GAN_RAY_ADDRESS` set, each training job runs in a Ray actor on a node of the cluster
instead of a worker process of this server (worker.py); the server keeps only the views.

The actor (`RayWorker`) hosts the unchanged worker loop (`worker.worker_main`: `loop.run_job` or
`pair.run_pair` on a `RemoteJob` / `RemotePair`), and the same messages as worker.py's connection travel
over Ray calls: the page's commands go out with `RayWorker.command` (numbered, so they are applied in the
order sent), and this side's supervisor polls `RayWorker.poll(timeout)` for what the worker streams back
(states, view updates, published pictures, step records). Nothing is shared but those messages:

- the run trains in a scratch folder of its node; after each checkpoint (the worker's update that sets
  `saved_step`) and at the end, the folder's new and changed files come back first, as ("files", side,
  {path: bytes}), and are written atomically into the run folder here (cluster.write_files), so no shared
  filesystem is needed and the checkpoint the page names is on this server when it names it;
- each actor declares 1 CPU (and `GAN_RAY_GPU_FRACTION` of a GPU for a GPU run: cluster.run_resources);
  until Ray has placed it, the run shows as queued, with its place among this server's waiting runs;
- a lost node (or a killed actor, or a poll that does not come back) ends that run as failed with a
  message naming what happened and its last checkpoint, which is here already; the other runs go on.

Nothing about Ray is imported until the first job starts with the variable set.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sys
import threading
import time
from typing import Any, Optional

from ..cluster import (RUN_CPUS, FolderSync, actor_class, connect, drain, node_lost_message, remove_scratch,
                       run_resources, scratch_folder, write_files)
from .view import JobState
from .worker import WorkerSpec, _apply, _failure_message, _sides, worker_main, worker_spec

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # one poll waits this long for the worker's next messages
CALL_TIMEOUT = 60.0  # a poll that has not come back after this long: the node is gone
PLACED_CHECK_SECONDS = 1.0
# Until the actor answers, the run waits for a CPU or its node is still starting the actor's process (a few
# seconds: Python, torch): Ray does not tell the two apart without its dashboard, so the message says both.
WAITING_MESSAGE = "waiting for a free CPU on the Ray cluster (then its node starts the run)"
# The server's settings a node must not take over: paths of this machine (the node has its own).
_LOCAL_ONLY = ("GAN_DATA_DIR", "GAN_RUNS_DIR", "GAN_DATA_ROOTS", "GAN_RAY_ADDRESS")

_pending: list[Any] = []  # this server's jobs whose actor Ray has not placed yet, oldest first
_pending_lock = threading.Lock()


def pending_position(job: Any) -> Optional[int]:
    """1-based place of `job` among this server's runs waiting for cluster resources, else None."""
    with _pending_lock:
        return _pending.index(job) + 1 if job in _pending else None


def pending_count() -> int:
    """How many of this server's runs wait for cluster resources."""
    with _pending_lock:
        return len(_pending)


def cluster_cpus() -> int:
    """CPUs of the whole cluster (0 before this process has connected; cached for a few seconds: the page
    asks on every refresh)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return 0
    now = time.monotonic()
    if now - _cpus_cache[0] >= 5.0:
        try:
            _cpus_cache[:] = [now, int(ray.cluster_resources().get("CPU", 0))]
        except Exception:  # the cluster is unreachable right now: the runs say so themselves
            return int(_cpus_cache[1])
    return int(_cpus_cache[1])


_cpus_cache: list[float] = [-1e9, 0]


# --- the actor, on a node ----------------------------------------------------------------------------
class _QueueConn:
    """The worker loop's connection, on queues: `send` is what the server polls, `recv` the commands. A
    checkpoint's files go out just before the update that names it; the last files before ("bye",)."""

    def __init__(self, syncs: list[FolderSync]):
        self.inbox: queue.Queue = queue.Queue()
        self.outbox: queue.Queue = queue.Queue()
        self.syncs = syncs
        self._lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._lock:
            kind = message[0]
            if kind == "update" and "saved_step" in message[2]:
                self._ship(message[1])
            elif kind == "bye":
                for side in range(len(self.syncs)):
                    self._ship(side)
            self.outbox.put(message)

    def _ship(self, side: int) -> None:
        files = self.syncs[side].changed()
        if files:
            self.outbox.put(("files", side, files))

    def recv(self) -> tuple:
        message = self.inbox.get()
        if message is None:
            raise EOFError("the server closed the connection")
        return message

    def close(self) -> None:
        self.inbox.put(None)


class RayWorker:
    """One training job on a Ray node (made a Ray actor by cluster.actor_class)."""

    def __init__(self) -> None:
        self._conn: Optional[_QueueConn] = None
        self._order_lock = threading.Lock()
        self._next_command = 0
        self._early: dict[int, tuple] = {}

    def start(self, spec: WorkerSpec) -> dict[str, str]:
        """Train `spec` here in scratch folders (the worker loop in a thread); returns the node it runs on."""
        import ray

        scratch = tuple(scratch_folder(d.name) for d in spec.run_dirs)
        spec = dataclasses.replace(spec, run_dirs=scratch, threads=RUN_CPUS)
        conn = _QueueConn([FolderSync(d) for d in scratch])
        with self._order_lock:  # commands that arrived before this call go first
            self._conn = conn
            self._deliver()

        def train() -> None:
            try:
                worker_main(conn, spec)
            except Exception as exc:  # worker_main ends its job itself; this is a bug in the boundary
                log.exception("the Ray worker failed")
                conn.outbox.put(("fatal", f"{type(exc).__name__}: {exc}"))
            finally:
                for folder in scratch:
                    remove_scratch(folder)

        threading.Thread(target=train, name="gan-ray-worker", daemon=True).start()
        return {"node": ray.get_runtime_context().get_node_id(), "address": ray.util.get_node_ip_address()}

    def command(self, number: int, message: tuple) -> None:
        """The server's `number`-th command (pause, resume, step, speed, stop): applied in number order,
        whatever order Ray delivers concurrent calls in."""
        with self._order_lock:
            self._early[number] = message
            self._deliver()

    def _deliver(self) -> None:
        while self._next_command in self._early and self._conn is not None:
            self._conn.inbox.put(self._early.pop(self._next_command))
            self._next_command += 1

    def poll(self, timeout: float) -> list[tuple]:
        """What the worker sent since the last poll (waits up to `timeout` s for the first message)."""
        return drain(self._conn.outbox, timeout) if self._conn is not None else []


# --- the server's side -------------------------------------------------------------------------------
class _Commands:
    """The job's `forward`: numbered commands to the actor (Ray calls, not waited for)."""

    def __init__(self, actor: Any):
        self.actor = actor
        self._lock = threading.Lock()
        self._number = 0

    def send(self, message: tuple) -> None:
        if message[0] in ("go", "threads"):  # no slots to share and one CPU declared: nothing to say
            return
        with self._lock:
            self.actor.command.remote(self._number, message)
            self._number += 1


def supervise(job: Any) -> None:
    """Run `job` in a Ray actor and mirror it here until it ends (the job's thread)."""
    host = job.host
    sides = _sides(job)
    failure, actor, ray = "", None, None
    try:
        ray = connect(host.ray_address)
        actor = actor_class(ray, RayWorker, run_resources(ray, sides[0].config)).remote()
        commands = _Commands(actor)
        with job._cond:
            job.forward = commands.send
            spec = worker_spec(job, RUN_CPUS, None)
        env = {k: v for k, v in spec.env.items() if k not in _LOCAL_ONLY}
        started = actor.start.remote(dataclasses.replace(spec, env=env))
        if _wait_placed(ray, job, sides, started):
            node = ray.get(started)
            job.node = node
            failure = _pump(ray, actor, job, sides, node)
    except Exception as exc:  # no cluster, no resources of that kind, a bug: the run ends with the reason
        log.exception("Ray job %s failed", job.id)
        failure = str(exc) if getattr(exc, "__module__", "").startswith("gan_core") else node_lost_message(exc)
    finally:
        job.forward = None
        with _pending_lock:
            if job in _pending:
                _pending.remove(job)
        if actor is not None and ray is not None:
            try:
                ray.kill(actor)
            except Exception:  # already gone with its node
                pass
        for side in sides:
            if side.state.active:
                side._end(JobState.FAILED, _failure_message(failure or "the Ray actor ended without a word", side),
                          "worker")
        host.release(job)


def _wait_placed(ray: Any, job: Any, sides: tuple, started: Any) -> bool:
    """Show the run as queued until Ray has placed its actor and started the job there (True), or until it
    is stopped while it waits (False: it ends as stopped)."""
    queued = False
    while not ray.wait([started], timeout=PLACED_CHECK_SECONDS)[0]:
        if job.stop_requested:
            for side in sides:
                side._end(JobState.STOPPED, "stopped before it started", "")
            return False
        if not queued:
            queued = True
            with _pending_lock:
                _pending.append(job)
            for side in sides:
                with side._cond:
                    side._set_state(JobState.QUEUED, WAITING_MESSAGE)
    with _pending_lock:
        if job in _pending:
            _pending.remove(job)
    return True


def _pump(ray: Any, actor: Any, job: Any, sides: tuple, node: dict[str, str]) -> str:
    """Apply the actor's messages until the worker says bye; returns why the run failed ("" if it did not)."""
    exceptions = ray.exceptions
    where = f"Ray node {node['address']} ({node['node'][:8]})"
    while True:
        try:
            messages = ray.get(actor.poll.remote(POLL_SECONDS), timeout=CALL_TIMEOUT)
        except (exceptions.RayActorError, exceptions.GetTimeoutError, exceptions.RaySystemError) as exc:
            return f"{node_lost_message(exc)}: {where}"
        for message in messages:
            kind = message[0]
            if kind == "bye":
                return ""
            if kind == "fatal":
                return f"the training worker on {where} failed: {message[1]}"
            if kind == "files":
                write_files(sides[message[1]].run_dir, message[2])
            elif kind == "update" and "device" in message[2]:
                _apply(sides, ("update", message[1], {**message[2], "device": f"{message[2]['device']} · {where}"}))
            elif kind not in ("turn", "alive"):
                _apply(sides, message)
