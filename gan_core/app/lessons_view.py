"""The Lessons page's pieces: one card per lesson (what to watch, one click to start it) and the live
panel of the lesson this session is running, with its chart marked at the moment the lesson is about.
The lessons and their checks are `gan_core.lessons` (no Streamlit)."""

from __future__ import annotations

from typing import Any, Optional

import streamlit as st

from ..lessons import LESSONS, Lesson, Moment, Side, check, lesson_for
from ..live import PairView
from ..live.verdict import score_scale
from . import charts, compare, dashboard, form, nav
from .session import current_job

KEY = "lessons"
CARD_COLUMNS = 3


def lesson_of(view: Any) -> Optional[Lesson]:
    """The lesson a run or pair view belongs to, if any."""
    if isinstance(view, PairView):
        return lesson_for(view.a.preset, view.b.preset)
    return lesson_for(view.preset) if view is not None else None


def start(lesson: Lesson) -> bool:
    """Start a training lesson as this session's run (or A/B pair), with the lesson's time budget."""
    values_a = {**form.preset_values(lesson.preset), "seconds": lesson.seconds, "steps": 0}
    if not lesson.is_pair:
        return form.start_job(lesson.preset, values_a)
    values_b = {**form.preset_values(lesson.fix), "seconds": lesson.seconds, "steps": 0}
    return form.start_pair(lesson.preset, values_a, values_b, preset_b=lesson.fix)


def cards(busy: bool) -> None:
    """The lesson path: a card per lesson, in teaching order, each with its one-click start."""
    for row in range(0, len(LESSONS), CARD_COLUMNS):
        for col, (number, lesson) in zip(st.columns(CARD_COLUMNS, gap="small"),
                                         enumerate(LESSONS[row:row + CARD_COLUMNS], start=row + 1)):
            with col.container(border=True, height="stretch"):
                st.markdown(f"**{number}. {lesson.title}**")
                st.caption(lesson.watch)
                _card_action(lesson, busy)


def _card_action(lesson: Lesson, busy: bool) -> None:
    if lesson.page:
        page = nav.page_info(lesson.page)
        st.page_link(page.path, label=page.title, icon=page.icon, help=f"Open the {page.title} page")  # fits a third of 1024 px
        return
    what = f"A/B: {lesson.preset} vs {lesson.fix}" if lesson.is_pair else f"Run {lesson.preset}"
    if st.button(f"Start: {what}", key=f"{KEY}_start_{lesson.key}", icon=":material/play_arrow:", disabled=busy,
                 width="content", help=f"{lesson.seconds:.0f} s of training; stop it any time."):
        if start(lesson):
            st.rerun()


def busy_note(job: Any, view: Any) -> None:
    """This session's run is not a lesson and is training: say so, with a button that stops it."""
    st.warning(f"Your run **{view.name}** is training: a lesson needs your training slot. Stop it (it is saved) "
               "to start one.", icon=":material/info:")
    if st.button("Stop that run", icon=":material/stop:", key=f"{KEY}_stop_other"):
        job.stop(wait=True)
        st.rerun()


def live_panel() -> None:
    """The running lesson (a fragment body): controls, what it shows so far, the marked chart."""
    header = dashboard.live_run_header(KEY)
    if header is None:
        return
    _, view = header
    lesson = lesson_of(view)
    if lesson is None:
        return
    pair = isinstance(view, PairView)
    if pair:
        compare.pair_status(view)
    else:
        dashboard.status_banner(view)
    a, b = (view.a, view.b) if pair else (view, None)
    if a.step == 0 and a.latest is None:  # queued, loading, or failed before training
        return
    moment = check(lesson, Side(a.history, a.metrics, a.config), Side(b.history, b.metrics, b.config) if b is not None else None)
    if moment is not None:
        st.success(f"**Seen at step {moment.step:,}:** {moment.text}.", icon=":material/visibility:")
    else:
        st.info(f"**Watching for:** {lesson.claim}.", icon=":material/hourglass_top:")
    if pair:
        left, right = st.columns(2, gap="medium")
        with left:
            compare.side_panel("A", a, f"{KEY}_a")
        with right:
            compare.side_panel("B", b, f"{KEY}_b")
        st.plotly_chart(lesson_figure(lesson, a, b, moment), key=f"{KEY}_chart", config=dashboard.NO_TOOLBAR)
    else:
        left, right = st.columns([1, 1.25], gap="medium")
        with left:
            if a.kind == "points":
                dashboard.lab_panel(a, KEY, height=420, options=False)
            else:
                dashboard.samples_panel(a, KEY)
        with right:
            st.plotly_chart(lesson_figure(lesson, a, None, moment), key=f"{KEY}_chart", config=dashboard.NO_TOOLBAR)
    st.caption(quality_line(a, b))
    full = "compare" if pair else "train"
    st.page_link(nav.page_path(full), label=f"Everything about this run on {nav.page_info(full).title}",
                 icon=nav.page_info(full).icon)


def lesson_figure(lesson: Lesson, a: Any, b: Any, moment: Optional[Moment], height: int = 300) -> Any:
    """The chart that carries the lesson's moment, marked there."""
    scale = score_scale(a.config["loss"])
    if lesson.chart == "grad":
        fig = charts.pair_grad_figure(a.history, b.history, height)
    elif lesson.chart == "coverage":
        fig = charts.pair_coverage_figure(a.metrics, b.metrics, height)
    elif lesson.chart == "fcd" and a.metrics is not None and a.metrics.kind == "image" and a.metrics.fcd:
        fig = charts.fcd_figure(a.metrics, height)
    elif b is not None:
        fig = charts.pair_scores_figure(a.history, b.history, scale, height)
    else:
        fig = charts.scores_figure(a.history, scale, height)
    return charts.mark_moment(fig, moment.step if moment else None, lesson.mark)


def quality_line(a: Any, b: Any) -> str:
    """The live quality numbers of the lesson's side(s), in one line."""
    parts = []
    for name, v in (("A", a), ("B", b)) if b is not None else (("", a),):
        m = v.metrics
        label = f"{name}: " if name else ""
        if m is None or not m.covered:
            parts.append(f"{label}quality measured in a moment")
        elif m.kind == "points":
            parts.append(f"{label}{m.covered[-1]} of {m.n_modes} modes covered, {m.hq_fraction[-1]:.0%} good samples")
        elif m.kind == "image":
            parts.append(f"{label}FCD {m.fcd[-1]:.0f}, {m.covered[-1]} of {m.n_modes} classes drawn")
    return " · ".join(parts) + " (measured every few seconds)."


def page() -> None:
    """The whole Lessons page below its title."""
    job = current_job()
    view = job.view() if job is not None else None
    active = view is not None and view.active
    lesson = lesson_of(view)
    if active and lesson is None:
        busy_note(job, view)
    if lesson is not None:
        with st.container(border=True):
            dashboard.live_fragment(live_panel, active, key=KEY)
    cards(busy=active)

