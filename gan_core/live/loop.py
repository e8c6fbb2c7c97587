"""The worker of a training job: load, then `trainer.step()` in a loop, with side tasks each on its
own cadence (live view, metrics, checkpoint, thread count; see gan_core.cadence, the mechanism the
CLI's RunWriter uses too), then save. Runs in the job's thread; never touches the UI.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Optional

import torch

from .. import metrics
from ..cadence import Cadence, SideTask
from ..device import describe_device
from ..errors import DataUnavailable, EvaluatorError, GanError
from ..images import png, sample_picture
from ..paths import data_cache_dir
from ..runner import RunWriter
from ..trainer import GRID_COLUMNS, Diverged, Trainer
from .job import Command, Job, folder_bytes
from .lab2d import LabView, lab_view, split_step
from .quality import measure, with_collapse_warning
from .threads import ThreadTuner, fixed_by_operator
from .verdict import police_verdict
from .view import JobState

log = logging.getLogger(__name__)

# The live view and the metrics may each use at most this share of the worker's time: their interval
# grows when a pass is slow, so watching costs only a few percent of training speed.
VIEW_SHARE = 0.05
METRICS_SHARE = 0.025


def run_job(job: Job) -> None:
    """The whole life of a started job; always ends it (saved, stopped, diverged or failed)."""
    trainer: Optional[Trainer] = None
    writer: Optional[RunWriter] = None
    final, message, error_kind = JobState.STOPPED, "", ""
    try:
        torch.set_num_threads(job.host.threads_per_job())
        trainer = load_trainer(job)
        if trainer is None:
            return
        # The job saves its own checkpoints (with owner and name in the metadata), not RunWriter's cadence.
        writer = RunWriter(trainer, job.run_dir, checkpoint_seconds=0)
        save(job, writer, "running")  # a loadable checkpoint exists from the start
        final, message = TrainingLoop(job, trainer, writer).run()
    except Exception as exc:
        final, message, error_kind = outcome(job, exc)
    finally:
        finish(job, trainer, writer, final, message, error_kind)


def cpu_label(threads: int) -> str:
    """What the page says of a CPU run's device: 'CPU · 2 threads'."""
    return f"CPU · {threads} thread{'s' * (threads > 1)}"


def outcome(job: Job, exc: Exception) -> tuple[JobState, str, str]:
    """How a job ends after `exc`: (final state, message, error kind). A bug is logged, never raised:
    the app stays alive and says what happened."""
    if isinstance(exc, Diverged):
        step = job.saved_step
        kept = f"the last good checkpoint (step {step:,}) is kept" if step is not None else "nothing was saved"
        return JobState.DIVERGED, f"{exc}. Training stopped; {kept}.", "diverged"
    if isinstance(exc, DataUnavailable):
        return JobState.FAILED, str(exc), "data"
    if isinstance(exc, GanError):
        return JobState.FAILED, str(exc), "error"
    log.error("training job %s crashed", job.id, exc_info=exc)
    return JobState.FAILED, f"training crashed: {type(exc).__name__}: {exc}", "error"


def load_trainer(job: Job) -> Optional[Trainer]:
    """Build the trainer (loading, maybe downloading, the data); None if the job was stopped meanwhile."""
    spec = job.spec
    if spec.source == "download":
        job.update(message=f"loading {spec.name} (downloads {spec.download_mb} MB the first time)",
                   download_base=folder_bytes(data_cache_dir()))
    else:
        job.update(message=f"loading {spec.name}")
    try:
        trainer = job.trainer_factory(job.config)
        trainer.data  # noqa: B018 - load now, not in the first step
    finally:
        job.update(download_base=None)
    if spec.kind == "image" and metrics.has_evaluator(job.config.dataset):
        job.update(message="preparing the quality metrics")
        try:  # computed once per process; done now so the first live pass costs no more than later ones
            metrics.fcd_floor(metrics.LIVE_FCD_N, job.config.dataset)
        except (EvaluatorError, ValueError) as exc:
            log.warning("no FCD floor: %s", exc)
    if job.stop_requested:
        return None
    device = describe_device(trainer.device) if trainer.device.type != "cpu" else cpu_label(torch.get_num_threads())
    job.update(device=device, parameters=trainer.num_parameters, class_names=tuple(trainer.class_names),
               started_wall=time.monotonic())
    return trainer


class TrainingLoop:
    """Steps one job's trainer while it runs; each side task keeps to its own cadence."""

    def __init__(self, job: Job, trainer: Trainer, writer: RunWriter):
        self.job, self.trainer, self.writer = job, trainer, writer
        s = job.host.settings
        self.view_rng = torch.Generator().manual_seed(job.config.seed + 7)
        self.metrics_rng_seed = job.config.seed + 11
        self.frames: Optional[list[LabView]] = None
        # The view keeps to wall time (a shared run refreshes it at each turn); the other tasks count the run's
        # own time at a slot, so that sharing does not make them due at every turn.
        clock = job.turns.own_time if job.turns is not None else time.monotonic
        self.view = SideTask("view", Cadence(seconds=s.view_seconds, share=VIEW_SHARE), self.refresh)
        self.tasks = [
            SideTask("metrics", Cadence(seconds=s.metrics_seconds, share=METRICS_SHARE, first=min(2.0, s.metrics_seconds),
                                        clock=clock), self.measure),
            SideTask("checkpoint", Cadence(seconds=s.checkpoint_seconds, clock=clock), self.checkpoint),
            SideTask("threads", Cadence(seconds=1.0), self.tune_threads),
        ]
        self.thread_tuner = ThreadTuner(clock=lambda: trainer.seconds)  # time in training steps alone

    def run(self) -> tuple[JobState, str]:
        """Train until stopped or the budget is used up; returns the final state and its message."""
        self.view.run(0)
        while True:
            command = self.job.next_command()
            if command.stop:
                return JobState.STOPPED, command.reason or f"stopped at step {self.trainer.step_count:,}"
            ended = self.budget_end()
            if ended is not None:
                return ended
            if not self.job.take_turn():  # fair sharing: wait for a turn at a slot (stopped meanwhile: see above)
                continue
            self.advance(command)

    def tune_threads(self) -> None:
        """Train with the thread count that is fastest now, among those the host allows (see threads.py)."""
        allowed = self.job.host.threads_per_job()
        tuned = self.trainer.device.type == "cpu" and not fixed_by_operator()
        threads = self.thread_tuner.choose(allowed, self.trainer.step_count) if tuned else allowed
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            self.job.update(device=cpu_label(threads))

    def budget_end(self) -> Optional[tuple[JobState, str]]:
        """(FINISHED, why) once the trainer's step or time budget is used up, else None."""
        trainer = self.trainer
        if not trainer.budget_reached():
            return None
        c = trainer.config
        budget = f"{c.steps:,} steps" if c.steps and trainer.step_count >= c.steps else f"{c.seconds:g} s"
        return JobState.FINISHED, f"finished: reached the budget of {budget}"

    def advance(self, command: Command) -> None:
        """One training step, recorded, then the side tasks that are due."""
        trainer = self.trainer
        if command.single and self.job.spec.kind == "points":
            rec, self.frames = split_step(trainer)
        else:
            rec, self.frames = trainer.step(), None
        try:
            self.writer.record(rec)
        except GanError as exc:  # metrics.csv or a grid could not be written: say so, train on
            self.job.update(storage_problem=str(exc))
        self.job.record(rec)
        step = trainer.step_count
        if command.single or command.speed:  # every step is shown in slow motion
            self.view.run(step)
        else:
            self.view.run_if_due(step)
        for task in self.tasks:
            if not (command.single and task.name == "metrics"):
                task.run_if_due(step)

    def refresh(self) -> None:
        """Recompute the sample grid / 2D lab and the police's verdict."""
        trainer, frames = self.trainer, self.frames
        verdict = police_verdict(trainer, self.view_rng)
        changes: dict[str, Any] = {"verdict": verdict}
        if self.job.spec.kind == "points":
            payload: Any = frames[-1] if frames else lab_view(trainer)
            changes["lab"] = payload
            if frames:
                changes["step_frames"] = frames
        else:
            payload = png(sample_picture(trainer.sample_fixed(), nrow=GRID_COLUMNS), fast=True)
        self.job.publish(trainer.step_count, payload, snapshot=bool(frames) or trainer.step_count == 0, **changes)

    def checkpoint(self) -> None:
        """The periodic save. A full or read-only disk does not stop training: the page says so, the last
        good checkpoint stays as it was, and the next save tries again."""
        try:
            save(self.job, self.writer, "running")
        except GanError as exc:
            self.job.update(storage_problem=str(exc))
        else:
            self.job.update(storage_problem="")

    def measure(self) -> None:
        """One metrics pass (FCD-1k and class histogram, or 2D mode coverage)."""
        measure_into(self.job, self.trainer, torch.Generator().manual_seed(self.metrics_rng_seed))


def measure_into(job: Job, trainer: Trainer, rng: torch.Generator) -> None:
    """Measure the trainer's quality now and show it with the job (with the mode-collapse warning)."""
    started = time.monotonic()
    new = with_collapse_warning(measure(trainer, rng, job.metrics, keep=job.host.settings.metrics_history),
                                trainer.step_count)
    job.update(metrics=dataclasses.replace(new, seconds=time.monotonic() - started))


def save(job: Job, writer: RunWriter, status: str) -> None:
    """Checkpoint the run now with the job's metadata."""
    writer.checkpoint(job.run_metadata(status))
    job.update(saved_step=writer.trainer.step_count)


def finish(job: Job, trainer: Optional[Trainer], writer: Optional[RunWriter], final: JobState, message: str,
           error_kind: str) -> None:
    """Save the run (unless it diverged: the last good checkpoint stays) and free the slot."""
    try:
        if writer is not None and final != JobState.DIVERGED:
            try:
                if trainer is not None and trainer.step_count > 0:
                    try:  # the final numbers saved with the run
                        measure_into(job, trainer, torch.Generator().manual_seed(job.config.seed + 11))
                    except Exception:
                        log.exception("final metrics of job %s failed", job.id)
                writer.snapshot()
                lost = final == JobState.STOPPED and job.server_lost
                save(job, writer, "interrupted" if lost else final.value)
            except GanError as exc:
                message = f"{message} ({exc})"
        if writer is not None:
            writer.close()
    except Exception:  # never let saving kill the bookkeeping below
        log.exception("saving job %s failed", job.id)
    job.end(final, message, error_kind)
