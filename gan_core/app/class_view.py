"""The teacher's class view: the teacher key prompt, and a live wall of every session's active run (its
latest grid or 2D points, step, quality, state, queue place) with a Stop button each. Only a session that
gave the teacher key sees any of it (students never see another student's run or controls)."""

from __future__ import annotations

import re
import time
from typing import Union

import streamlit as st
import torch

from .. import images
from ..live import Job, JobState, JobView, PairJob
from ..live.pair import PairView
from .dashboard import STATE_BADGES
from .session import become_teacher, is_teacher, manager

WALL_SECONDS = 3.0  # the wall's refresh: each refresh only reads views the workers already made
COLUMNS = 4
WRONG_KEY_DELAY = 1.0  # seconds: guessing the key by trying is slow


def teacher_gate() -> bool:
    """True for the teacher; otherwise the key prompt (once per session: the server remembers the session)."""
    if is_teacher():
        return True
    st.info("This page is for the teacher: enter the teacher key (the server's GAN_TEACHER_KEY) once for this "
            "browser session.", icon=":material/lock:")
    with st.form("teacher_key_form", border=False):
        entered = st.text_input("Teacher key", type="password", key="teacher_key_entered")
        if st.form_submit_button("Open the class view", icon=":material/key:"):
            if become_teacher(entered or ""):
                st.rerun()
            time.sleep(WRONG_KEY_DELAY)
            st.error("That is not the teacher key.", icon=":material/block:")
    return False


def stop_by_teacher(job: Union[Job, PairJob]) -> None:
    """Stop a student's run (it is saved, as when the student stops it)."""
    job.stop(wait=False, reason="stopped by the teacher")


def _order(job: Union[Job, PairJob]) -> tuple[int, str]:
    return (1 if job.state == JobState.QUEUED else 0), job.name  # training first


@st.cache_data(max_entries=256, show_spinner=False)
def _points_png(run_id: str, step: int, _fake: object, _real: object) -> bytes:
    """A small scatter of a 2D run's generated (orange) and real (grey) points, drawn once per step shown."""
    return images.png(images.scatter_image(torch.as_tensor(_fake), torch.as_tensor(_real), size=240), fast=True)


def _quality(view: JobView) -> str:
    m = view.metrics
    if m is None or m.kind == "none" or not m.covered:
        return ""
    if m.kind == "image":
        return f"FCD {m.fcd[-1]:.1f} · {m.covered[-1]} of {m.n_modes} classes"
    return f"{m.covered[-1]} of {m.n_modes} modes · {m.hq_fraction[-1]:.0%} good samples"


def _picture(view: JobView, caption: str) -> None:
    latest = view.latest
    if latest is None:
        st.caption("No picture yet.")
    elif view.kind == "points":
        st.image(_points_png(view.id, view.latest_step, latest.fake, latest.real), caption=caption, width="stretch")
    else:
        st.image(latest, caption=caption, width="stretch")


def card_key(name: str) -> str:
    """The key of a run's card (its element gets the CSS class `st-key-<key>`)."""
    return "run_card_" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _card(job: Union[Job, PairJob]) -> None:
    view = job.view()
    sides = view.sides if isinstance(view, PairView) else (view,)
    text, colour = STATE_BADGES[view.state]
    with st.container(border=True, key=card_key(view.name)):
        st.markdown(f"**{view.name}**")
        st.badge(text, color=colour)
        if view.state == JobState.QUEUED:
            st.caption(f"Queued, position {view.queue_position or '?'}")
        else:
            st.caption(f"Step {view.step:,}")
        for column, side in zip(st.columns(len(sides)), sides):
            with column:
                _picture(side, f"{side.preset or side.config['dataset']} · step {side.latest_step:,}")
                quality = _quality(side)
                if quality:
                    st.caption(quality)
        st.button("Stop", key=f"teacher_stop_{view.id}", icon=":material/stop:", width="content",
                  help="Stop and save this run (its student sees it stopped by the teacher).",
                  on_click=stop_by_teacher, args=(job,))


def run_wall() -> None:
    """Every active run of the server, refreshed every few seconds (the teacher only)."""
    jobs = sorted(manager().active_jobs(), key=_order)
    counts = manager().counts()
    st.caption(f"{counts['running']} training, {counts['queued']} queued; the server trains up to "
               f"{counts['max_jobs']} at once. Refreshed every {WALL_SECONDS:g} s.")
    if not jobs:
        st.info("No run is training or queued right now.", icon=":material/hourglass_empty:")
        return
    for start in range(0, len(jobs), COLUMNS):
        for column, job in zip(st.columns(COLUMNS), jobs[start:start + COLUMNS]):
            with column:
                _card(job)


def live_wall() -> None:
    """The wall as a fragment that reruns on its own every WALL_SECONDS."""
    st.fragment(run_every=WALL_SECONDS)(run_wall)()
