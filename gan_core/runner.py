"""A run folder on disk: metrics.csv, sample PNGs at intervals, periodic atomic checkpoints.

Used by the CLI and by the app's training jobs, so both leave the same kind of folder:
    RUN/model.safetensors  RUN/config.json  RUN/metrics.csv  RUN/samples/step_000100.png ...
    RUN/timeline.safetensors (the generator at up to 16 steps, see timeline.py)
"""

from __future__ import annotations

import csv
from dataclasses import fields
from pathlib import Path
from typing import Any, Optional

from PIL import Image

from .cadence import Cadence, GrowingSteps, SideTask, run_due
from .checkpoint import WEIGHTS_FILE, save_checkpoint, storage_problem
from .errors import CheckpointError, GanError
from .images import sample_picture
from .runs import METRICS_FILE
from .timeline import TimelineRecorder
from .trainer import GRID_COLUMNS, StepRecord, Trainer

SAMPLES_DIR = "samples"
RECORD_FIELDS = [f.name for f in fields(StepRecord)]


def snapshot_image(trainer: Trainer) -> Image.Image:
    """The fixed-noise picture of a run right now: an image grid, or real vs fake points for 2D toys."""
    fake = trainer.sample_fixed()
    real = trainer.data.sample_real(len(fake))[0] if trainer.spec.kind == "points" else None
    return sample_picture(fake, real, nrow=GRID_COLUMNS)


class RunWriter:
    """Writes one run folder. `resume=False` refuses to overwrite a folder that already holds a run.

    After each recorded step its side tasks run when due: flush metrics.csv (every second), the
    sample grid (every `snapshot_every` steps), a timeline snapshot of the generator (at geometrically
    growing steps, thinned to 16) and the checkpoint (every `checkpoint_seconds`; 0 = only when
    `checkpoint()` is called), which writes the timeline next to it."""

    def __init__(self, trainer: Trainer, out_dir: str | Path, resume: bool = False, checkpoint_seconds: float = 60.0):
        self.trainer = trainer
        self.out = Path(out_dir)
        if (self.out / WEIGHTS_FILE).exists() and not resume:
            raise GanError(f"{self.out} already holds a run: choose another folder, or resume it")
        (self.out / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)
        if resume:
            _drop_rows_after(self.out / METRICS_FILE, trainer.step_count)
        new_file = not (self.out / METRICS_FILE).exists()
        self._metrics = open(self.out / METRICS_FILE, "a", newline="")
        self._csv = csv.DictWriter(self._metrics, fieldnames=RECORD_FIELDS)
        if new_file:
            self._csv.writeheader()
        self.last_record: Optional[StepRecord] = None
        self.timeline = TimelineRecorder(trainer, self.out, resume=resume)
        self.timeline.capture()  # step 0: the untrained generator's noise is the first frame of a replay
        self.tasks = [SideTask("flush", Cadence(seconds=1.0), self._metrics.flush),
                      SideTask("snapshot", Cadence(steps=trainer.config.snapshot_every), self.snapshot),
                      SideTask("timeline", GrowingSteps(next_step=trainer.step_count + 1), self.timeline.capture),
                      SideTask("checkpoint", Cadence(seconds=checkpoint_seconds), self.checkpoint)]

    def record(self, rec: StepRecord) -> None:
        """Append one step to metrics.csv; snapshot and checkpoint when they are due. A full or read-only
        disk is a CheckpointError saying what to do (the trainer itself is unharmed)."""
        self.last_record = rec
        try:
            self._csv.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in rec.to_dict().items()})
            run_due(self.tasks, rec.step)
        except OSError as exc:
            raise CheckpointError(storage_problem(self.out, exc)) from None

    def snapshot(self) -> Path:
        """Write the fixed-noise grid as samples/step_NNNNNN.png (and samples/latest.png)."""
        img = snapshot_image(self.trainer)
        path = self.out / SAMPLES_DIR / f"step_{self.trainer.step_count:06d}.png"
        img.save(path)
        img.save(self.out / SAMPLES_DIR / "latest.png")
        return path

    def checkpoint(self, extra_meta: Optional[dict[str, Any]] = None) -> Path:
        """Save the checkpoint now (atomic), with the last record as the run's final numbers, then the
        timeline up to this step (written second: its steps never run ahead of the checkpoint's)."""
        self._metrics.flush()
        meta = {"last_record": self.last_record.to_dict() if self.last_record else None, **(extra_meta or {})}
        path = save_checkpoint(self.trainer, self.out, meta)
        self.timeline.save()
        return path

    def close(self) -> None:
        """Flush and close metrics.csv."""
        if not self._metrics.closed:
            self._metrics.close()


def _drop_rows_after(file: Path, step: int) -> None:
    """Resuming from a checkpoint at `step`: the rows a crash left after it would be written twice."""
    if not file.is_file():
        return
    with open(file, newline="") as f:
        rows = list(csv.reader(f))
    kept = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(kept) < len(rows):
        with open(file, "w", newline="") as f:
            csv.writer(f).writerows(kept)
