"""2D lab: a GAN on 2D points, with D's decision surface, G's gradient arrows, and slow motion."""

import streamlit as st

from gan_core.app import charts, dashboard, form, nav, session
from gan_core.live import JobState
from gan_core.live.lab2d import mean_displacement

PREFIX = "lab"
SPEED_KEY = f"{PREFIX}_slow_motion"
SPEEDS = {"full speed": 0.0, "20 steps/s": 20.0, "5 steps/s": 5.0, "1 step/s": 1.0}

nav.require_router("lab")
st.title("2D lab", anchor=False)
st.caption("A GAN learning a distribution of 2D points, the way GAN Lab shows it. The background is the police's "
           "opinion of every spot on the plane (**green**: D says *real*, **violet**: *fake*, dotted line: D's decision "
           "boundary). Real points are green, the counterfeiter's points violet, and each **arrow** shows where G's gradient "
           "pushes that fake (−∂loss_G/∂x): towards where the police say *real*.")

job = dashboard.single_run(session.current_job())
view = job.view() if job else None
active = view is not None and view.active

if active and view.kind != "points":
    dashboard.stop_page_for_run(job, f"Your run **{view.name}** trains on images; the 2D lab needs a 2D toy run. "
                                     "Stop it (it is saved) to start one here.", "Stop the image run")

with st.expander("Start a 2D run" if not active else f"Setup (the run **{view.name}** is using it)", expanded=not active,
                 icon=":material/tune:"):
    preset = form.preset_picker(PREFIX, form.TOY_PRESETS, default="ring8")
    values = form.config_form(PREFIX, toy=True)
row = st.container(horizontal=True, vertical_alignment="center")  # wraps when narrow, never truncates
if row.button("Start", type="primary", icon=":material/play_arrow:", disabled=active):
    if form.start_job(preset, values):
        st.rerun()
if row.button("Start paused (step by step)", icon=":material/slow_motion_video:", disabled=active):
    if form.start_job(preset, values, start_paused=True):
        st.rerun()

if view is None or view.kind != "points":
    st.info("Start a 2D run: **ring8** finds its 8 modes in about a minute; the **lesson** presets go wrong on purpose.",
            icon=":material/arrow_upward:")
    st.stop()


def lab() -> None:
    job = session.current_job()
    if job is not None:  # the speed chosen last time applies before this run's one view is built
        job.set_speed(SPEEDS.get(session.peek_session_value(SPEED_KEY) or "full speed", 0.0))
    header = dashboard.live_run_header(PREFIX, step_label="Step: D, then G")
    if header is None:
        return
    job, view = header
    st.segmented_control("Speed", list(SPEEDS), default="full speed", key=SPEED_KEY, persist_state="session",
                         help="Slow motion: limit the training steps per second so you can follow each update.")
    dashboard.status_banner(view)
    if view.lab is None:
        return
    plot, side = st.columns([1.5, 1], gap="medium")
    with plot:
        dashboard.lab_panel(view, PREFIX, height=560)
    with side:
        m = view.metrics
        c1, c2 = st.columns(2)
        c1.metric("Step", f"{view.step:,}")
        c2.metric("G's push", f"{view.lab.push_norm:.2f}", help="Mean length of −∂loss_G/∂x over the arrows: how strongly "
                  "the generator is being pushed. Near 0, G has stopped learning (the saturating lesson).")
        if m is not None and m.kind == "points":
            dashboard.mode_metrics(m, c1, c2)
        if view.verdict is not None:
            c1.metric("Fakes that pass", f"{view.verdict.fake_pass_share:.0%}")
            c2.metric("Reals recognised", f"{view.verdict.real_pass_share:.0%}")
        if m is not None and m.kind == "points":
            dashboard.coverage_note(m)
        dashboard.charts_panel(view, f"{PREFIX}_side", height=210)

    frames = view.step_frames
    if frames and view.state == JobState.PAUSED:
        st.subheader("The last step in slow motion", anchor=False)
        moved = mean_displacement(frames[1], frames[2])
        st.caption("One training iteration, split in two: first the police update D on real and fake points (the "
                   "surface changes, the fakes stay put); then the counterfeiter follows the arrows of the *new* D "
                   f"(the surface stays, the fakes move: on average by {moved:.4f}).")
        cols = st.columns(3)
        for col, frame, n in zip(cols, frames, ("1", "2", "3")):
            with col:
                st.plotly_chart(charts.lab_figure(frame, height=330, compact=True, title=f"{n}. {frame.label}"),
                                key=f"{PREFIX}_frame{n}", config={"displayModeBar": False})
    elif view.state == JobState.PAUSED:
        st.caption("Press **Step: D, then G** to see one update of each network, before and after.")
    dashboard.quality_section(view, PREFIX)


dashboard.live_fragment(lab, active, key=PREFIX)
