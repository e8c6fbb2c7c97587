"""Picking and loading trained generators for the explorer pages (latent walks, class control, runs)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import streamlit as st
import torch
from PIL import Image

from ..data import ToyData
from ..export import export_run
from ..generator import Generator, load_generator
from ..images import sample_picture
from ..paths import runs_dir
from ..runs import RunInfo, list_runs, visible_runs
from .session import has_session_value, manager, owner, session_value, set_session_value


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


def runs_for_session(include_others: bool = False, include_unreadable: bool = False) -> list[RunInfo]:
    """Pretrained generators and the saved runs this session may see (not runs still training); runs whose
    checkpoint is unreadable only if asked (the Runs page lists them, nothing loads them)."""
    busy = {str(p) for p in manager().active_run_dirs()}
    runs = [r for r in list_runs(runs_dir()) if str(r.path) not in busy and (include_unreadable or not r.error)]
    return visible_runs(runs, owner(), include_others)


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
