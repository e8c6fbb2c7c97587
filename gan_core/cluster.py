"""Training on a Ray cluster: connecting, each run's declared resources, and the files a run sends home.

`GAN_RAY_ADDRESS` (e.g. `auto`, `ray://host:10001`) switches the app's job backend to Ray
(gan_core/live/ray_worker.py); the CLI's `train --ray ADDRESS` does the same for one run. Ray is imported
only by the functions here that need it, so without either nothing about Ray is loaded.

A run trains in a Ray actor on whichever node has the resources, in a scratch folder of that node; the
folder's new and changed files (checkpoint, timeline, metrics.csv, sample grids) travel back as bytes over
Ray calls after each checkpoint and at the end (`FolderSync`), and are written atomically into the run
folder here: the nodes need no shared filesystem. Every node runs a checkout of this project with the same
packages (see the README); the actor imports gan_core from there.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

from .checkpoint import WEIGHTS_FILE, atomic_write_bytes
from .config import TrainConfig
from .errors import GanError

ENV_RAY_ADDRESS = "GAN_RAY_ADDRESS"
ENV_GPU_FRACTION = "GAN_RAY_GPU_FRACTION"
DEFAULT_GPU_FRACTION = 0.25  # four small runs share one GPU
RUN_CPUS = 1
# Files of a run folder in the order they are written here: the timeline last (its steps never run ahead of
# the checkpoint's), the weights before config.json (which repair_config_json can rebuild from them).
_LAST = ("timeline.safetensors", "config.json")
_FIRST = (WEIGHTS_FILE,)


class ClusterError(GanError):
    """Ray is missing, the cluster cannot be reached, or a run's node was lost."""


def ray_address() -> Optional[str]:
    """$GAN_RAY_ADDRESS, or None: the app trains in its own worker processes."""
    address = os.environ.get(ENV_RAY_ADDRESS, "").strip()
    return address or None


def gpu_fraction() -> float:
    """The share of one GPU a GPU run declares ($GAN_RAY_GPU_FRACTION, default 0.25, within (0, 1])."""
    try:
        value = float(os.environ.get(ENV_GPU_FRACTION, DEFAULT_GPU_FRACTION))
    except ValueError:
        raise ClusterError(f"{ENV_GPU_FRACTION} must be a number in (0, 1], "
                           f"got {os.environ.get(ENV_GPU_FRACTION)!r}") from None
    if not 0 < value <= 1:
        raise ClusterError(f"{ENV_GPU_FRACTION} must be in (0, 1], got {value:g}")
    return value


_connect_lock = threading.Lock()


def connect(address: str) -> Any:
    """Connect this process to the Ray cluster at `address` (once; later calls reuse it) and return `ray`."""
    try:
        import ray
    except ImportError:
        raise ClusterError("training on a Ray cluster needs Ray: pip install ray==2.60.0") from None
    with _connect_lock:
        if not ray.is_initialized():
            try:
                ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                         configure_logging=True)
            except Exception as exc:  # ConnectionError, ValueError, RuntimeError... all mean "not reachable"
                raise ClusterError(f"could not connect to the Ray cluster at {address!r}: {exc}") from None
    return ray


def run_resources(ray: Any, config: TrainConfig) -> dict[str, float]:
    """What one run declares: 1 CPU, plus `gpu_fraction()` of a GPU when it trains on one (device cuda, or
    auto on a cluster that has GPUs). A GPU the cluster does not have is a ClusterError now, not a run
    that waits forever."""
    cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
    if config.device in ("cpu", "mps") or (config.device == "auto" and cluster_gpus == 0):
        return {"num_cpus": RUN_CPUS, "num_gpus": 0}
    if cluster_gpus == 0:
        raise ClusterError("device 'cuda' was asked for but the Ray cluster has no GPU: use device=auto or cpu")
    return {"num_cpus": RUN_CPUS, "num_gpus": gpu_fraction()}


def actor_class(ray: Any, cls: type, resources: dict[str, float]) -> Any:
    """`cls` as a Ray actor with `resources`: threaded (commands and polls arrive while it trains), never
    restarted (a run whose node is lost ends; its last checkpoint is here already)."""
    return ray.remote(max_concurrency=4, max_restarts=0, **resources)(cls)


def node_lost_message(exc: BaseException) -> str:
    """What a failed Ray call means for the run, in one line."""
    name = type(exc).__name__
    if "Unavailable" in name or "Died" in name or "ActorError" in name or "NodeDied" in name:
        return "the Ray node running this run was lost (or its worker died)"
    return f"the Ray cluster failed this run ({name}: {str(exc).splitlines()[0] if str(exc) else ''})"


# --- a run folder's files, across machines -------------------------------------------------------------
class FolderSync:
    """The new and changed files of a folder since the last call (by size and modification time)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._seen: dict[str, tuple[int, int]] = {}

    def changed(self) -> dict[str, bytes]:
        """{relative path: bytes} of every file that is new or changed since the last call (temp files of an
        atomic write in progress excluded)."""
        out: dict[str, bytes] = {}
        for path in sorted(self.folder.rglob("*")):
            if not path.is_file() or path.name.endswith(".tmp"):
                continue
            rel = path.relative_to(self.folder).as_posix()
            try:
                stat = path.stat()
                key = (stat.st_size, stat.st_mtime_ns)
                if self._seen.get(rel) == key:
                    continue
                data = path.read_bytes()
            except OSError:  # replaced while reading: the next call sends it
                continue
            out[rel], self._seen[rel] = data, key
        return out


def write_files(folder: Path, files: dict[str, bytes]) -> None:
    """Write a run's files that came from a node into `folder`, each atomically, in an order that keeps the
    folder loadable at every instant (weights first, then the rest, then config.json and the timeline).
    A path that would leave the folder is refused."""
    folder = Path(folder)
    root = folder.resolve()

    def rank(rel: str) -> int:
        name = rel.rsplit("/", 1)[-1]
        return 0 if name in _FIRST else 2 if name in _LAST else 1

    for rel in sorted(files, key=lambda r: (rank(r), r)):
        target = (folder / rel).resolve()
        if root not in target.parents:
            raise ClusterError(f"a Ray node sent a file outside its run folder: {rel!r}")
        atomic_write_bytes(target, files[rel])


def read_folder(folder: Path, skip: tuple[str, ...] = ("samples",)) -> dict[str, bytes]:
    """{relative path: bytes} of a run folder, for a node to resume it (the sample grids stay here)."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] not in skip and not path.name.endswith(".tmp"):
            out[rel.as_posix()] = path.read_bytes()
    return out


def scratch_folder(name: str) -> Path:
    """A fresh folder on this node for a run to write into (removed with `remove_scratch`)."""
    return Path(tempfile.mkdtemp(prefix=f"gan-ray-{name}-")) / name


def remove_scratch(run_dir: Path) -> None:
    """Remove a scratch folder made by `scratch_folder`."""
    shutil.rmtree(Path(run_dir).parent, ignore_errors=True)


def drain(messages: "queue.Queue", timeout: float) -> list:
    """Everything in `messages` now, waiting up to `timeout` s for the first item (an actor's poll: one call
    brings back a batch)."""
    try:
        out = [messages.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            out.append(messages.get_nowait())
        except queue.Empty:
            return out
