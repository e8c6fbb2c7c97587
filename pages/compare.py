"""A/B compare: two runs that differ in what you change for B, trained side by side (one slot, lockstep)."""

import streamlit as st

from gan_core import PRESETS
from gan_core.app import compare, dashboard, form, nav, session
from gan_core.live import PairJob, PairView

nav.require_router("compare")
st.title("A/B compare", anchor=False)
st.caption("Two runs, one difference: B is A with the settings you change. Both start from the same seed (the same "
           "initial weights), draw the same real batches and noise at every step and show the same fixed noise, so "
           "what differs is what you changed. They share one training slot and take turns, one step each.")

job = session.current_job()
view = job.view() if job else None
active = view is not None and view.active
if active and not isinstance(job, PairJob):
    dashboard.stop_page_for_run(job, f"Your run **{view.name}** is training; an A/B pair needs your training slot. "
                                     "Stop it (it is saved) first.", "Stop that run")

compare.lesson_buttons(disabled=active)
with st.expander("Setup: A, and what B changes" if not active else f"Setup (the pair **{view.name}** is using it)",
                 expanded=not active, icon=":material/tune:"):
    preset = form.preset_picker(compare.PREFIX, list(PRESETS), default="ring8")
    values_a = form.config_form(compare.PREFIX)
    st.markdown("**B** is A with these changes:")
    values_b = compare.b_changes(values_a)

with st.container(horizontal=True, vertical_alignment="center"):
    start = st.button("Start A/B", type="primary", icon=":material/compare_arrows:", disabled=active,
                      help="Check both settings and start the pair." if not active else "Stop the current pair first.")
    paused = st.toggle("Start paused", key="ab_start_paused", help="Start, then move both one step at a time with Step.")
if start and not active:
    if form.start_pair(preset, values_a, values_b, start_paused=paused):
        st.rerun()

if not isinstance(job, PairJob):
    st.info("No pair yet. Try a lesson above, or choose A and what B changes (e.g. the loss, label smoothing or the "
            "number of D steps) and press **Start A/B**.", icon=":material/arrow_upward:")
    st.stop()


def live_view() -> None:
    header = dashboard.live_run_header(compare.PREFIX)
    if header is None or not isinstance(header[1], PairView):
        return
    pair = header[1]
    compare.pair_status(pair)
    if pair.step == 0 and pair.a.latest is None:  # queued, loading, or failed before training
        return
    compare.pair_dashboard(pair)


dashboard.live_fragment(live_view, active, key=compare.PREFIX)
