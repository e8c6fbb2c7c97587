"""`python -m gan_core train ... --ray ADDRESS`: the CLI's training run on a node of a Ray cluster.

The run trains in a `TrainRunActor` (1 CPU, or a share of a GPU: cluster.run_resources) with the CLI's own
loop (cli.train_loop) in a scratch folder of its node; this process draws the progress bar from the
actor's progress messages and writes the run folder from the files the actor sends after every checkpoint
and at the end (cluster.FolderSync), so --out is a local folder like without --ray. Ctrl-C stops the
run there and waits for its final checkpoint. A node lost mid-run is one line naming the checkpoint kept.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from .cluster import (ClusterError, FolderSync, actor_class, connect, drain, node_lost_message, read_folder,
                      remove_scratch, run_resources, scratch_folder, write_files)
from .config import TrainConfig
from .errors import GanError

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 0.25  # the actor sends the bar's position at most this often
POLL_SECONDS = 1.0
CALL_TIMEOUT = 60.0  # a poll that does not come back in this long: the node is gone


class TrainRunActor:
    """A CLI training run on a Ray node (made a Ray actor by cluster.actor_class). The caller polls
    `poll(timeout)` for messages: ("progress", step, seconds, postfix), ("files", {path: bytes}, step),
    ("end", "done" | "diverged" | "error", message, step, seconds)."""

    def __init__(self) -> None:
        self._messages: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self, config: dict[str, Any], name: str, files: dict[str, bytes], resume: bool,
              checkpoint_seconds: float) -> dict[str, Any]:
        """Build the trainer in a scratch folder holding `files` (a run to resume) and start training;
        returns what the CLI prints (node, device, parameters) and where the bar starts."""
        import ray
        import torch

        from .cli import trainer_to_train
        from .runner import RunWriter

        torch.set_num_threads(1)  # the one CPU the actor declared
        out = scratch_folder(name)
        write_files(out, files)
        sync = FolderSync(out)
        sync.changed()  # what came from the caller is there already

        messages = self._messages

        class ShippingWriter(RunWriter):
            def checkpoint(self, extra_meta: Optional[dict[str, Any]] = None) -> Path:
                path = super().checkpoint(extra_meta)
                messages.put(("files", sync.changed(), self.trainer.step_count))
                return path

        try:
            trainer = trainer_to_train(TrainConfig.from_dict(config), out, resume)
            writer = ShippingWriter(trainer, out, resume=resume, checkpoint_seconds=checkpoint_seconds)
        except BaseException:
            remove_scratch(out)
            raise
        self._thread = threading.Thread(target=self._train, args=(trainer, writer, sync), daemon=True)
        self._thread.start()
        context = ray.get_runtime_context()
        return {"config": trainer.config.to_dict(), "step": trainer.step_count, "seconds": trainer.seconds,
                "device": str(trainer.device), "node": context.get_node_id(),
                "node_address": ray.util.get_node_ip_address(), "parameters": dict(trainer.num_parameters)}

    def _train(self, trainer: Any, writer: Any, sync: FolderSync) -> None:
        from .cli import step_postfix, train_loop
        from .trainer import Diverged

        shown = [0.0]

        def on_step(rec: Any, speed: float) -> None:
            now = time.monotonic()
            if now - shown[0] >= PROGRESS_SECONDS:
                shown[0] = now
                self._messages.put(("progress", rec.step, trainer.seconds, step_postfix(rec, speed)))

        end: tuple = ("done", "")
        try:
            writer.snapshot()
            train_loop(trainer, writer, on_step, self._stop.is_set)
            writer.snapshot()
            writer.checkpoint()
        except Diverged as exc:
            end = ("diverged", str(exc))
        except GanError as exc:
            end = ("error", str(exc))
        except Exception as exc:  # a bug: said in one line there, logged here
            log.exception("training on the Ray node crashed")
            end = ("error", f"training crashed on the Ray node: {type(exc).__name__}: {exc}")
        finally:
            writer.close()
            try:
                self._messages.put(("files", sync.changed(), None))
            finally:
                remove_scratch(writer.out)
                last = writer.last_record
                postfix = step_postfix(last, last.images_per_s) if last is not None else ""
                self._messages.put(("progress", trainer.step_count, trainer.seconds, postfix))
                self._messages.put(("end", *end, trainer.step_count, trainer.seconds))

    def poll(self, timeout: float) -> list[tuple]:
        """The messages since the last poll (waits up to `timeout` s for the first)."""
        return drain(self._messages, timeout)

    def stop(self) -> None:
        """Stop after the current step; the run is saved and its last files sent."""
        self._stop.set()


def train_on_ray(address: str, config: TrainConfig, preset: str, out: Path, resume: bool,
                 checkpoint_seconds: float) -> int:
    """The CLI's `train --ray`: train on the cluster at `address` into the local folder `out`; the exit code."""
    from .checkpoint import WEIGHTS_FILE, remove_orphan_temp_files, repair_config_json
    from .cli import ProgressBar, done_line

    if out.is_dir():
        remove_orphan_temp_files(out, older_than=0)
        repair_config_json(out)
    if not resume and (out / WEIGHTS_FILE).exists():
        raise GanError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    files = read_folder(out) if resume and out.is_dir() else {}
    ray = connect(address)
    actor = actor_class(ray, TrainRunActor, run_resources(ray, config)).remote()
    follower = _Follower(ray, actor, out)
    try:
        info = follower.started(actor.start.remote(config.to_dict(), out.name, files, resume, checkpoint_seconds))
        c = TrainConfig.from_dict(info["config"])
        params = info["parameters"]
        print(f"training {preset} on the Ray cluster ({info['node_address']}, node {info['node'][:8]}): {c.arch}"
              f"{' (conditional)' if c.conditional else ''} on {c.dataset}, loss {c.loss}, device {info['device']}, "
              f"G {params['G']:,} / D {params['D']:,} parameters -> {out}", file=sys.stderr)
        bar = ProgressBar(c, info["step"], info["seconds"])
        code = 0
        try:
            end = follower.follow(bar)
        except KeyboardInterrupt:
            code = 130
            print("\ninterrupted: stopping the run on the cluster and saving its checkpoint", file=sys.stderr)
            actor.stop.remote()
            end = follower.follow(bar)
        bar.close()
    finally:
        ray.kill(actor)
    kind, message, steps, seconds = end[1:]
    if kind == "diverged":
        kept = f"the last good checkpoint in {out} is kept" if (out / WEIGHTS_FILE).exists() else "nothing was saved"
        print(f"error: {message}; {kept}.", file=sys.stderr)
        return 3
    if kind == "error":
        raise GanError(message)
    print(done_line(steps, seconds, c, out), file=sys.stderr)
    return code


class _Follower:
    """The caller's side of a TrainRunActor: waits for it to start, then applies its messages."""

    def __init__(self, ray: Any, actor: Any, out: Path):
        self.ray, self.actor, self.out = ray, actor, out
        self.step = 0
        self.saved_step: Optional[int] = None

    def started(self, ref: Any) -> dict[str, Any]:
        """Wait (saying so) until the cluster has room for the run and the actor has built it."""
        said = False
        while not self.ray.wait([ref], timeout=2.0)[0]:
            if not said:
                said = True
                print("waiting for a free CPU on the Ray cluster (the run is queued)...", file=sys.stderr)
        return self._get(ref)

    def follow(self, bar: Any) -> tuple:
        """Apply progress and files until the run ends; returns its ("end", ...) message."""
        while True:
            for message in self._get(self.actor.poll.remote(POLL_SECONDS), timeout=CALL_TIMEOUT):
                kind = message[0]
                if kind == "progress":
                    self.step = message[1]
                    bar.show(message[1], message[2], message[3])
                elif kind == "files":
                    write_files(self.out, message[1])
                    if message[2] is not None:
                        self.saved_step = message[2]
                elif kind == "end":
                    return message

    def _get(self, ref: Any, timeout: Optional[float] = None) -> Any:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref, timeout=timeout)
        except exceptions.RayTaskError as exc:  # the actor raised: a GanError there is one line here
            cause = getattr(exc, "cause", None)
            if isinstance(cause, GanError):
                raise cause from None
            raise ClusterError(f"training on the Ray cluster failed: {cause or exc}") from None
        except (exceptions.RayActorError, exceptions.GetTimeoutError) as exc:
            kept = (f"the last checkpoint in {self.out} (step {self.saved_step:,}) is kept" if self.saved_step is not None
                    else "no checkpoint had come back yet")
            raise ClusterError(f"{node_lost_message(exc)} at step {self.step:,}; {kept}") from None
