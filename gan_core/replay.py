"""Replay: the run's fixed-noise sample grid at every snapshot of its timeline, as labelled frames and an
animated GIF, so a class can watch noise turn into digits (or points find the ring's modes) again."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch
from PIL import Image

from .data import DATASETS, ToyData
from .errors import CheckpointError
from .images import captioned, gif, labelled_rows, sample_picture
from .models import build_generator
from .sampling import checked_labels, eval_mode
from .timeline import Timeline, TimelineChanged, iter_snapshots, open_timeline
from .trainer import GRID_COLUMNS

FRAME_SECONDS = 0.6
LAST_FRAME_SECONDS = 2.0  # the finished generator stays up a moment before the loop starts again


def frame_picture(timeline: Timeline, samples: torch.Tensor, real: Optional[torch.Tensor]) -> Image.Image:
    """One frame's picture: points over the real data, class rows with their names, or the 8-wide grid."""
    if timeline.config.conditional and samples.ndim == 4:
        return labelled_rows(samples, timeline.class_names, GRID_COLUMNS, scale=2)
    return sample_picture(samples, real, nrow=GRID_COLUMNS).convert("RGB")


@torch.no_grad()
def replay_frames(run_dir: str | Path, progress: Optional[Callable[[int, int], None]] = None) -> list[tuple[int, Image.Image]]:
    """(step, labelled picture) for every snapshot of the run in `run_dir`, oldest first, all drawn from
    the run's own fixed noise so that frames are comparable. `progress(done, total)` after each frame.
    Raises CheckpointError when the run has no timeline or it is unreadable."""
    for _ in range(2):
        try:
            return _render(run_dir, progress)
        except TimelineChanged:  # a training run saved meanwhile: read the new one
            pass
    return _render(run_dir, progress)


def _render(run_dir: str | Path, progress: Optional[Callable[[int, int], None]]) -> list[tuple[int, Image.Image]]:
    timeline = open_timeline(run_dir)
    if timeline is None:
        raise CheckpointError(f"{Path(run_dir).name} has no timeline yet (runs saved before timelines, uploads and exports have none)")
    z, labels = timeline.fixed_inputs()
    names = timeline.class_names
    labels = checked_labels(labels, len(z), len(names) if timeline.config.conditional else 0, names, torch.device("cpu"))
    real = None
    if DATASETS[timeline.config.dataset].kind == "points":
        real = ToyData(timeline.config.dataset, torch.device("cpu")).sample_real(len(z))[0]
    net = build_generator(timeline.config, timeline.sample_shape, len(timeline.class_names))
    frames = []
    with eval_mode(net):
        for step in iter_snapshots(timeline, net):
            samples = net(z, labels).float()
            last = step == timeline.meta.get("step")
            training = timeline.meta.get("status") == "running"  # saved by a run still training (or interrupted)
            text = f"step {step:,}" + ((" (last save)" if training else " (final)") if last else "")
            frames.append((step, captioned(frame_picture(timeline, samples, real), text)))
            if progress is not None:
                progress(len(frames), len(timeline.steps))
    return frames


def replay_gif(frames: list[tuple[int, Image.Image]]) -> bytes:
    """The frames as a looping GIF (the last one held longer)."""
    seconds = [FRAME_SECONDS] * (len(frames) - 1) + [LAST_FRAME_SECONDS]
    return gif([picture for _, picture in frames], seconds)
