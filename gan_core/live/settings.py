"""What this server allows, from its operator's environment variables and the machine's size: training
slots, the admission cap, the scheduling mode, the session timeout, the folders a `folder` dataset may
read. JobManager (manager.py) reads these when it is built; nothing here holds state.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..budget import MACHINE_SHARE, machine_memory_bytes
from ..config import TrainConfig
from ..errors import GanError
from .scheduler import REFRESH_TARGET_SECONDS

log = logging.getLogger(__name__)

ENV_MAX_JOBS = "GAN_MAX_JOBS"
ENV_SESSION_TIMEOUT = "GAN_SESSION_TIMEOUT"
ENV_METRICS_SECONDS = "GAN_METRICS_SECONDS"
ENV_CHECKPOINT_SECONDS = "GAN_CHECKPOINT_SECONDS"
ENV_DATA_ROOTS = "GAN_DATA_ROOTS"
ENV_MAX_ADMITTED = "GAN_MAX_ADMITTED"
ENV_SCHEDULING = "GAN_SCHEDULING"  # "fair" (default) or "queue"
ENV_QUANTUM = "GAN_QUANTUM_SECONDS"
ENV_WORKERS = "GAN_WORKERS"  # "process" (default) or "thread"
SCHEDULING_MODES = ("fair", "queue")
WORKER_MODES = ("process", "thread")
# Memory an admitted run may take on this server: a worker process (measured by benchmarks/classroom.py with
# 20 mnist-dcgan runs: up to 504 MB resident each, but 92 MB each proportionally (PSS), torch's pages being
# shared with the forkserver and the other workers) plus its views and history on the server; the default
# admission cap keeps that many runs within budget.MACHINE_SHARE of the memory (a safe margin over the PSS).
ADMITTED_RUN_BYTES = 400 * 2**20
DEFAULT_SESSION_TIMEOUT = 120.0
RAY_MAX_ADMITTED = 64  # runs a server follows on a Ray cluster (views only: the training is on the nodes)
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
    """$GAN_MAX_JOBS, else 3 on a GPU, else one job per CPU core. The web server itself needs little CPU
    (pages only read views the workers made), and workers that share the machine run at a lower priority
    (`worker_nice`), so a core per slot keeps pages responsive and no core idle."""
    if os.environ.get(ENV_MAX_JOBS):
        return max(1, int(env_float(ENV_MAX_JOBS, 1)))
    if torch.cuda.is_available():
        return 3
    return cpu_cores()


def env_choice(name: str, choices: tuple[str, ...]) -> str:
    """$name if it is one of `choices`, else the first choice (another value is logged and ignored)."""
    value = os.environ.get(name, "").strip().lower()
    if value and value not in choices:
        log.warning("ignoring %s=%r: expected one of %s", name, value, ", ".join(choices))
    return value if value in choices else choices[0]


def default_max_admitted(slots: int, quantum_seconds: float) -> int:
    """$GAN_MAX_ADMITTED, else as many runs as the memory holds (ADMITTED_RUN_BYTES each within
    budget.MACHINE_SHARE of the machine) and as can share the slots with every view refreshed within
    REFRESH_TARGET_SECONDS (one quantum per run per round); at least `slots`."""
    if os.environ.get(ENV_MAX_ADMITTED):
        return max(1, int(env_float(ENV_MAX_ADMITTED, slots)))
    by_memory = int(machine_memory_bytes() * MACHINE_SHARE // ADMITTED_RUN_BYTES)
    by_refresh = int(slots * REFRESH_TARGET_SECONDS // max(quantum_seconds, 1e-3))
    return max(slots, min(by_memory, by_refresh))
