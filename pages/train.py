"""Train: choose a preset or tune it, start, and watch the run learn (polled every second)."""

import streamlit as st

from gan_core import PRESETS
from gan_core.app import dashboard, explore, form, nav, session
from gan_core.data import DATASETS
from gan_core.live import JobState

PREFIX = "train"

nav.require_router("train")
st.title("Train", anchor=False)
st.caption("Choose a preset (or tune it), press **Start**, and watch the counterfeiter (G) learn against the police (D). "
           "Training runs on the server in the background: you can switch pages and come back.")

job = dashboard.single_run(session.current_job())
view = job.view() if job else None
active = view is not None and view.active
ended_badly = view is not None and view.state in (JobState.FAILED, JobState.DIVERGED)


def use_bundled_mnist() -> None:
    """The dataset could not be downloaded: switch the form to mnist-5k and start again."""
    session.set_session_value(f"{PREFIX}_dataset", "mnist-5k")
    session.set_session_value("train_fallback", True)


if ended_badly:  # say it first, above the settings that will be changed
    dashboard.status_banner(view)
    if view.error_kind == "data":
        st.button("Train on the bundled mnist-5k instead", icon=":material/inventory_2:", on_click=use_bundled_mnist)

link_notice = st.container()  # above the setup: a link that could not be used says so even while it is collapsed
with st.expander("Setup" if not active else f"Setup (the run **{view.name}** is using it)", expanded=not active,
                 icon=":material/tune:"):
    preset = form.preset_picker(PREFIX, list(PRESETS), default="mnist-dcgan", share_links=True)
    values = form.config_form(PREFIX)
    spec = DATASETS.get(values.get("dataset", ""))
    if spec is not None and spec.source == "download":
        st.info(f"**{spec.name}** ({spec.download_mb} MB) is downloaded the first time it is used. "
                "Without internet, use the bundled **mnist-5k** instead.", icon=":material/cloud_download:")
    form.sync_link(PREFIX, preset, values)  # the URL is this setup: a reload keeps the edits
    form.share_panel(PREFIX, preset, values)
if problem := form.link_error(PREFIX):
    link_notice.error(f"**This link could not be used:** {problem}. The form shows the defaults.", icon=":material/link_off:")

row = st.container(horizontal=True, vertical_alignment="center", gap="medium")  # wraps when narrow, never truncates
start = row.button("Start", type="primary", icon=":material/play_arrow:", disabled=active,
                   help="Check the settings and start training." if not active else "Stop the current run first.")
paused = row.toggle("Start paused", key="train_start_paused", help="Start, then move one step at a time with Step.")
if session.session_value("train_fallback", False):  # "use mnist-5k instead" was pressed
    session.set_session_value("train_fallback", False)
    start = True
if start and not active:
    if form.start_job(preset, values, start_paused=paused):
        st.rerun()

if view is None:
    st.info("No run yet. The presets are ready to go: **mnist-dcgan** shows digits appearing within a minute on a CPU; "
            "**ring8** trains on 2D points in seconds.", icon=":material/arrow_upward:")
    st.stop()


def live_view() -> None:
    header = dashboard.live_run_header(PREFIX)
    if header is None:
        return
    job, view = header
    if view.state not in (JobState.FAILED, JobState.DIVERGED):  # those are told at the top of the page
        dashboard.status_banner(view)
    if view.step == 0 and view.latest is None:  # queued, loading, or failed before training
        return
    dashboard.stats_row(view)
    left, right = st.columns([1, 1.25], gap="medium")
    with left:
        if view.kind == "points":
            dashboard.lab_panel(view, PREFIX, height=470, options=False)
        else:
            st.markdown("**The counterfeiter's bills** (fixed noise)")
            dashboard.samples_panel(view, PREFIX)
    with right:
        dashboard.charts_panel(view, PREFIX, height=250)
    if view.kind == "points":
        v = view.verdict
        if v is not None:
            st.caption(f"**The police's verdict** on a fresh batch: {v.fake_pass_share:.0%} of the generated points pass as real, "
                       f"{v.real_pass_share:.0%} of the real ones are recognised. Green background: D says *real*; "
                       "violet: D says *fake*. The **2D lab** page shows this plane larger, with slow motion.")
    else:
        dashboard.verdict_panel(view)
    dashboard.quality_section(view, PREFIX)


dashboard.live_fragment(live_view, active, key=PREFIX)

if view.step > 0 or not active:
    with st.expander("Replay the training so far" if active else "Replay the training", icon=":material/replay:"):
        every = job.host.settings.checkpoint_seconds
        st.caption("The fixed-noise samples at each snapshot of the generator the run kept" + (
            f" up to its last save (every {every:g} s while it trains): press Replay again for a newer one." if active else "."))
        explore.replay_panel(view.run_dir, view.name, key=PREFIX)
