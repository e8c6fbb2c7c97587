"""Picking and loading trained generators for the explorer pages (latent walks, class control, runs): a run,
the step of its timeline to explore, and the replay of its training."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any, Optional

import streamlit as st
import torch
from PIL import Image

from ..checkpoint import WEIGHTS_FILE
from ..data import ToyData
from ..export import export_run
from ..errors import GanError
from ..generator import Generator, load_generator
from ..images import sample_picture
from ..paths import runs_dir
from ..replay import mp4_available, replay_frames, replay_gif, replay_mp4
from ..runs import RunInfo, list_runs, visible_runs
from ..timeline import TIMELINE_FILE, open_timeline
from .session import has_session_value, is_teacher, manager, owner, session_value, set_session_value


@dataclass
class LoadedRun:
    """A generator loaded once and shared by all sessions (guard sampling with `lock`)."""

    generator: Generator
    path: str
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@st.cache_resource(max_entries=6, show_spinner="Loading the generator...")
def load_run(path: str, mtime: float) -> LoadedRun:
    """Load a run's generator on the app's device once per (path, file time)."""
    return LoadedRun(load_generator(path, device="auto"), path)


@st.cache_data(max_entries=8, show_spinner=False)
def onnx_bundle(path: str, mtime: float) -> bytes:
    """A run's generator as ONNX with its README, zipped (gan_core.export), built once per (path, file time)."""
    return export_run(path).zip_bytes()


def short_error(exc: BaseException, path: str) -> str:
    """An error's message with the run folder's path left out (file names inside it stay)."""
    return str(exc).replace(path.rstrip("/") + "/", "")


def timeline_mtime(path: str) -> float:
    """Modification time of a run's timeline file (0 if it has none): a cache key."""
    try:
        return (Path(path) / TIMELINE_FILE).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_data(max_entries=64, show_spinner=False)
def timeline_steps(path: str, mtime: float) -> tuple[tuple[int, ...], str]:
    """The steps a run's timeline holds and, if it cannot be read, why (never raises)."""
    try:
        timeline = open_timeline(path)
    except GanError as exc:
        return (), short_error(exc, path)
    return (timeline.steps if timeline is not None else ()), ""


@st.cache_resource(max_entries=8, show_spinner="Loading the generator at that step...")
def load_snapshot(path: str, step: int, mtime: float) -> LoadedRun:
    """The generator of a run as it was at `step` of its timeline, loaded once per (path, step, file time)."""
    timeline = open_timeline(path)
    if timeline is None:
        raise GanError(f"{Path(path).name} has no timeline")
    return LoadedRun(timeline.build(step, device="auto"), path)


def generator_picker(run: RunInfo, key: str) -> tuple[LoadedRun, int]:
    """A "Generator at step ..." slider over the snapshots of the run's timeline (the final checkpoint by
    default); returns the generator at the chosen step and that step. Runs without a timeline (pretrained,
    uploaded) get the final generator and no slider; an unreadable timeline is said in one line."""
    final = load_run(str(run.path), run.mtime)
    path, mtime = str(run.path), timeline_mtime(str(run.path))
    steps, problem = timeline_steps(path, mtime)
    if problem:
        st.caption(f"The timeline of this run cannot be read ({problem}); showing the final generator.")
    options = sorted(set(steps) | {run.step})
    if len(options) < 2:
        return final, run.step
    if session_value(f"{key}_for", "") != path or session_value(key) not in options:
        set_session_value(key, run.step)  # another run: start from its final generator
        set_session_value(f"{key}_for", path)
    step = st.select_slider("Generator at step", options, key=key, format_func=lambda s: f"{s:,}",
                            help="The run kept snapshots of its generator while it trained: go back and see what "
                                 "it drew earlier (the rightmost is the final checkpoint).")
    if step == run.step:
        return final, step
    try:
        return load_snapshot(path, step, mtime), step
    except GanError as exc:
        st.warning(f"Cannot load the snapshot at step {step:,}: {short_error(exc, path)}", icon=":material/broken_image:")
        return final, run.step


@st.cache_data(max_entries=8, show_spinner=False)
def replay_bytes(path: str, mtime: float, checkpoint_mtime: float) -> tuple[bytes, tuple[int, ...]]:
    """The run's replay as GIF bytes and the steps of its frames (raises GanError if it has no usable timeline)."""
    frames = replay_frames(path)
    return replay_gif(frames), tuple(step for step, _ in frames)


def replay_panel(path: str, name: str, key: str) -> None:
    """The "Replay" button and, once pressed, the training replayed: the run's fixed-noise grid at every
    snapshot of its timeline as an animation in the page, with GIF and (with PyAV) MP4 downloads."""
    if st.button("Replay", key=f"{key}_replay_btn", icon=":material/replay:",
                 help="Animate the fixed-noise samples across the snapshots the run kept while training."):
        set_session_value(f"{key}_replay", path)
    if session_value(f"{key}_replay", "") != path:
        return
    try:
        with st.spinner("Rendering the replay..."):
            checkpoint = Path(path) / WEIGHTS_FILE
            data, steps = replay_bytes(path, timeline_mtime(path), checkpoint.stat().st_mtime if checkpoint.exists() else 0.0)
    except GanError as exc:
        st.info(f"No replay: {short_error(exc, path)}", icon=":material/info:")
        return
    left, right = st.columns([1.4, 1], gap="large")
    # width="content": a narrower width makes Streamlit resize the picture, which keeps the GIF's first frame only
    left.image(data, caption=f"{name}: the same fixed noise, {len(steps)} snapshots from step {steps[0]:,} "
                                    f"to step {steps[-1]:,}", width="content")
    right.markdown("Each frame is the generator as it was at the step written above it, drawing the run's **fixed "
                   "noise** (the same z's, and for a conditional run the same class per row), so the frames compare "
                   "like for like. Early frames are close together: that is where a GAN changes most.")
    right.download_button("Download the replay (GIF)", data, file_name=f"{name}-replay.gif", mime="image/gif",
                          icon=":material/download:", key=f"{key}_replay_gif", on_click="ignore")
    if mp4_available():  # rendered only when asked for: the callable runs when the button is pressed
        right.download_button("Download the replay (MP4)", lambda: replay_mp4(replay_frames(path)),
                              file_name=f"{name}-replay.mp4", mime="video/mp4", icon=":material/movie:",
                              key=f"{key}_replay_mp4", on_click="ignore",
                              help="H.264 video for slides and players that do not loop GIFs.")


def runs_for_session(include_others: bool = False, include_unreadable: bool = False) -> list[RunInfo]:
    """Pretrained generators and the saved runs this session may see (not runs still training); runs whose
    checkpoint is unreadable only if asked (the Runs page lists them, nothing loads them)."""
    busy = {str(p) for p in manager().active_run_dirs()}
    runs = [r for r in list_runs(runs_dir()) if str(r.path) not in busy and (include_unreadable or not r.error)]
    return visible_runs(runs, owner(), include_others, teacher=is_teacher())


def run_picker(runs: list[RunInfo], key: str, label: str = "Generator") -> Optional[RunInfo]:
    """Select box over runs, defaulting to the run chosen on the Runs page, else the first one."""
    if not runs:
        return None
    paths = [str(r.path) for r in runs]
    wanted = session_value("selected_run", "")
    if not has_session_value(key) or session_value(key) not in paths:
        set_session_value(key, wanted if wanted in paths else paths[0])
    chosen = st.selectbox(label, paths, key=key, format_func=lambda p: runs[paths.index(p)].label)
    set_session_value("selected_run", chosen)
    return runs[paths.index(chosen)]


def owner_text(run: RunInfo) -> str:
    """Who made a run, from this session's point of view."""
    if run.source == "pretrained":
        return "pretrained"
    if not run.owner:
        return "command line"
    return "you" if run.owner == owner() else "another session"


def latent(z_dim: int, seed: int) -> torch.Tensor:
    """A reproducible latent vector z ~ N(0, I) for a seed."""
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed)))


def samples_picture(generator: Generator, n: int = 64, seed: int = 0) -> Image.Image:
    """A grid of n samples (images) or a scatter of 1,024 samples over real data (2D toys), reproducible."""
    if generator.spec.kind == "points":
        real, _ = ToyData(generator.config.dataset, torch.device("cpu")).sample_real(1024)
        return sample_picture(generator.sample(1024, seed=seed), real)
    return sample_picture(generator.sample(n, seed=seed))


class Timer:
    """Measures how long a page section took (shown so slow renders are visible)."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.ms = (time.perf_counter() - self.start) * 1000
