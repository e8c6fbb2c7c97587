"""Replay: the run's fixed-noise sample grid at every snapshot of its timeline, as labelled frames and an
animated GIF or an MP4 video (H.264, when PyAV is installed), so a class can watch noise turn into digits (or points find the ring's modes) again."""

from __future__ import annotations

import tempfile
from fractions import Fraction
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


def mp4_available() -> bool:
    """True when an MP4 can be written: PyAV (FFmpeg's libraries in a wheel) is installed with an H.264 encoder."""
    try:
        import av
        av.codec.Codec("libx264", "w")
    except Exception:  # not installed, or a build without the encoder
        return False
    return True


def replay_mp4(frames: list[tuple[int, Image.Image]]) -> bytes:
    """The frames as an H.264 MP4 that browsers and slide decks play (each frame shown FRAME_SECONDS, the last
    LAST_FRAME_SECONDS; odd sizes padded by a pixel, as yuv420p needs even sides). Raises RuntimeError when
    `mp4_available()` is False."""
    if not mp4_available():
        raise RuntimeError("MP4 needs PyAV with an H.264 encoder: pip install av")
    import av
    width, height = frames[0][1].size
    even = (width + width % 2, height + height % 2)
    with tempfile.TemporaryDirectory() as folder:  # +faststart (playable while loading) rewrites a real file
        path = Path(folder) / "replay.mp4"
        _encode(av, path, frames, even)
        return path.read_bytes()


def _encode(av, path: Path, frames: list[tuple[int, Image.Image]], size: tuple[int, int]) -> None:
    with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 10)
        pts = 0
        for index, (_, picture) in enumerate(frames):
            canvas = Image.new("RGB", size, "white")
            canvas.paste(picture.convert("RGB"), (0, 0))
            seconds = LAST_FRAME_SECONDS if index == len(frames) - 1 else FRAME_SECONDS
            for _ in range(round(seconds * 10)):  # repeats cost almost nothing in H.264, and play everywhere
                frame = av.VideoFrame.from_image(canvas)
                frame.pts = pts
                pts += 1
                container.mux(stream.encode(frame))
        container.mux(stream.encode())
