"""The A/B compare page's pieces: the B side's changes, the lessons' one-click pairs, and the live pair
dashboard (both fixed-noise grids side by side, one overlaid chart per quantity, one table of numbers
with the difference). Every live piece draws from one `PairView`, built once per fragment run."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ..config import PRESETS
from ..live import JobState, PairView
from ..live.pair import comparison_rows
from ..live.verdict import score_scale
from . import charts, dashboard, form

PREFIX = "ab"
B_PREFIX = "ab_b"
DEFAULT_CHANGES = ["loss"]
LESSON_PAIRS = [(name, p.fix) for name, p in PRESETS.items() if p.lesson and p.fix]


def b_changes(values_a: dict[str, Any]) -> dict[str, Any]:
    """The fields B changes (a multiselect, then one widget each, starting at A's value); returns B's
    values: A's with those changes."""
    names = st.multiselect("B changes", [n for n in form.FORM_FIELDS if n in values_a], default=DEFAULT_CHANGES,
                           key=f"{B_PREFIX}_fields", help="Everything else, the seed and the data order included, "
                           "is the same as A's.")
    changed: dict[str, Any] = {}
    cols = st.columns(3)
    for i, name in enumerate(names):
        changed[name] = form.field_widget(B_PREFIX, name, cols[i % 3], first_other(name, values_a[name]))
    same = [n for n in names if changed[n] == values_a[n]]
    if same:
        st.caption(f"Still the same as A: {', '.join(same)}. Change the value to make B differ.")
    return {**values_a, **changed}


def first_other(name: str, value: Any) -> Any:
    """Where B's widget for `name` starts: a choice other than A's (the first one), the other side of a
    switch, else A's value (a number to edit)."""
    if name in form.FIELD_CHOICES:
        return next((o for o in form.FIELD_CHOICES[name] if o != value), value)
    if isinstance(value, bool):
        return not value
    return value


def lesson_buttons(disabled: bool) -> None:
    """One button per lesson preset: start it (A) against its fix (B)."""
    st.markdown("**Lessons, one click:** the preset that fails on purpose (A) against the one without the failure (B).")
    with st.container(horizontal=True):  # wraps on a narrow screen, never truncates
        for lesson, fix in LESSON_PAIRS:
            if st.button(f"{lesson} vs {fix}", key=f"{PREFIX}_lesson_{lesson}", icon=":material/compare_arrows:",
                         disabled=disabled, width="content",
                         help=f"A: {PRESETS[lesson].description}. B: {PRESETS[fix].description}."):
                if form.start_pair(lesson, form.preset_values(lesson), form.preset_values(fix), preset_b=fix):
                    st.rerun()


def differences_text(view: PairView) -> str:
    """'B differs from A in: loss bce → minimax, ...' (or says they are the same)."""
    diffs = [f"**{name}** {a!r} → {b!r}" for name, a, b in view.differences]
    return "B differs from A in: " + ", ".join(diffs) if diffs else "A and B have the same settings."


def pair_status(view: PairView) -> None:
    """The pair's state in words (queued, loading, ended), A's lesson, and what differs."""
    with st.container():  # one block whatever it shows, so the elements after it keep their places
        lesson = PRESETS[view.a.preset].lesson if view.a.preset in PRESETS else ""
        if lesson and view.active:
            st.info(f"**Lesson — what to watch on A:** {lesson}.", icon=":material/school:")
        if view.state == JobState.QUEUED:
            load = view.a.load
            st.info(load.queued_text(view.queue_position) + " The pair counts as one run." if load is not None else
                    f"**Queued, position {view.queue_position or '?'}.** The pair counts as one run; it starts by itself.",
                    icon=":material/hourglass_top:")
        elif view.state == JobState.LOADING:
            st.info(view.message.capitalize() + "...", icon=":material/downloading:")
        elif not view.active:
            saved = [v.name for v in view.sides if v.saved_step is not None]
            where = f" Saved as **{saved[0]}** and **{saved[1]}**, linked as a pair: see Runs." if len(saved) == 2 else ""
            failed = [v for v in view.sides if v.state in (JobState.DIVERGED, JobState.FAILED)]
            if failed:  # the failed side says why under its picture; the other side says what ended it
                message = next((v.message for v in view.sides if v not in failed), "both sides failed")
                st.warning(f"{message.capitalize()}.{where}", icon=":material/warning:")
            else:
                st.success(f"{view.message.capitalize()}.{where}", icon=":material/check_circle:")
        st.caption(differences_text(view))


def side_panel(side: str, view_side: Any, key: str) -> None:
    """One side's fixed-noise grid (or 2D plot), with its name and warnings."""
    preset = f" · {view_side.preset}" if view_side.preset else ""
    st.markdown(f"**{side}{preset}** · step {view_side.step:,}")
    if view_side.kind == "points":
        dashboard.lab_panel(view_side, key, height=380, options=False)
    else:
        dashboard.samples_panel(view_side, key)
    if view_side.metrics is not None and view_side.metrics.warning:
        st.warning(view_side.metrics.warning, icon=":material/warning:")
    if view_side.storage_problem and view_side.active:
        st.warning(f"**{view_side.storage_problem.capitalize()}.** Training goes on in memory.", icon=":material/save:")
    if view_side.state in (JobState.DIVERGED, JobState.FAILED):
        st.error(view_side.message, icon=":material/error:")


def pair_dashboard(view: PairView) -> None:
    """Both sides side by side, the overlaid charts and the table of numbers."""
    left, right = st.columns(2, gap="medium")
    with left:
        side_panel("A", view.a, f"{PREFIX}_a")
    with right:
        side_panel("B", view.b, f"{PREFIX}_b")
    scale = score_scale(view.a.config["loss"])
    c1, c2 = st.columns(2, gap="medium")
    c1.plotly_chart(charts.pair_loss_figure(view.a.history, view.b.history, 300), key=f"{PREFIX}_chart_loss",
                    config=dashboard.NO_TOOLBAR)
    c2.plotly_chart(charts.pair_scores_figure(view.a.history, view.b.history, scale, 300), key=f"{PREFIX}_chart_scores",
                    config=dashboard.NO_TOOLBAR)
    if score_scale(view.b.config["loss"]) != scale:
        c2.caption(f"D's output reads differently with B's **{view.b.config['loss']}** loss: compare the shapes, "
                   "not the levels.")
    st.dataframe(comparison_rows(view), hide_index=True, width="stretch", key=f"{PREFIX}_table")
