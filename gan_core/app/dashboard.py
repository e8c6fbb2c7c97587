"""The live dashboard: polling fragments, the run's controls, status banner, stats, charts, sample
grids, the 2D lab plot, the police's verdict and the quality panel. Every piece draws from one
`JobView`, built once per fragment run."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import plotly.graph_objects as go
import streamlit as st

from ..config import PRESETS
from ..live import Job, JobState, JobView, PairJob
from ..live.verdict import score_scale
from ..metrics import coverage_text, is_diffuse
from . import charts
from .nav import page_path
from .session import (current_job, device_text, forget_shared_view, heartbeat, manager, presenter_mode, session_value,
                      set_session_value, shared_view)

POLL_SECONDS = 2.0  # the live pages' refresh with a few runs on the server (see refresh_seconds)
STATE_BADGES = {
    JobState.QUEUED: ("queued", "gray"), JobState.LOADING: ("loading", "blue"), JobState.RUNNING: ("training", "green"),
    JobState.PAUSED: ("paused", "orange"), JobState.FINISHED: ("finished", "violet"), JobState.STOPPED: ("stopped", "gray"),
    JobState.DIVERGED: ("diverged", "red"), JobState.FAILED: ("failed", "red"),
}
NO_TOOLBAR = {"displayModeBar": False}
PRESENTER_SCALE = 1.4  # the live charts this much taller in presenter mode


def scaled(height: int) -> int:
    """A chart's height: larger in presenter mode."""
    return round(height * PRESENTER_SCALE) if presenter_mode() else height


def refresh_seconds(live_runs: int) -> float:
    """How often the live pages redraw while `live_runs` runs (admitted or queued) are on this server: every
    POLL_SECONDS with up to 4, 3 s with up to 8, 4 s beyond, so a view is never more than 5 s old. Every
    redraw costs the server a script run per fragment and the browser a redraw of its plotly charts: 20 tabs
    of a class at 2 s kept a 2-core server that also held their browsers saturated (page answers p95 5-6 s)."""
    if live_runs <= 4:
        return POLL_SECONDS
    return 3.0 if live_runs <= 8 else 4.0


def poll_seconds() -> float:
    """The live pages' refresh interval now, by the server's load (see `refresh_seconds`)."""
    counts = manager().counts()
    return refresh_seconds(counts["running"] + counts["queued"])


def plot(figure: go.Figure, key: str) -> None:
    """Draw a plotly figure of the live pages (larger text in presenter mode)."""
    if presenter_mode():
        figure.update_layout(font_size=16, title_font_size=19, legend_font_size=15)
    st.plotly_chart(figure, key=key, config=NO_TOOLBAR)


def inline_png(png: bytes) -> str:
    """PNG bytes as a data: URL for st.image. A live picture must not go through Streamlit's media files:
    each fragment run replaces the previous file and drops it, and a browser still loading it gets a 404
    (a broken image). A data URL travels inside the page's own message and never expires."""
    return charts.png_data_url(png)


def live_run_header(key: str, step_label: str = "Step") -> Optional[tuple[Job, JobView]]:
    """Top of a live fragment: this session's job and its one view for this run (None without a job),
    heartbeat, title and controls. When the run has ended since the page was drawn, the whole page is
    redrawn once."""
    job = current_job()
    if job is None:
        return None
    heartbeat()
    view = shared_view(job, "page", 2 * POLL_SECONDS)  # the one the sidebar draws too
    rerun_if_ended(view, key)
    st.markdown(f"### {view.name}")
    job_controls(job, view, key, step_label=step_label)
    return job, view


def stop_page_for_run(job: Job | PairJob, message: str, button: str) -> None:
    """This session's run is in the way of what the page starts: say why (`message`), offer a button that
    stops it (it is saved), and end the page here."""
    st.warning(message, icon=":material/info:")
    if st.button(button, icon=":material/stop:"):
        job.stop(wait=True)
        st.rerun()
    st.stop()


def single_run(job: Optional[Job | PairJob]) -> Optional[Job]:
    """This session's run for a single-run page (Train, 2D lab). An A/B pair lives on its own page: while it
    trains, this page says so, links there and stops; a pair that has ended counts as no run."""
    if not isinstance(job, PairJob):
        return job
    if job.state.active:
        st.info(f"Your A/B pair **{job.name}** is training: watch it on the A/B compare page (stop it there to start "
                "a single run here).", icon=":material/compare_arrows:")
        st.page_link(page_path("compare"), label="Open A/B compare", icon=":material/compare_arrows:")
        st.stop()
    return None


def live_fragment(body: Callable[[], None], active: bool, key: str = "") -> None:
    """Run `body` as a fragment that re-runs every `poll_seconds()` while the run is active. With a `key`,
    the fragment redraws the whole page once when the run ends (see `rerun_if_ended`) and when the server's
    load calls for another interval (a fragment keeps the interval it was drawn with until the whole page
    runs again). One fragment per page: each fragment run costs a browser about 40 ms of CPU however
    little it draws (headless Chromium, 2-core VM), so the quality panel is drawn inside it too
    (`quality_section`: its charts change only at a metrics pass, and a browser does not redraw a plotly
    chart whose figure is unchanged)."""
    every = poll_seconds()
    if key:
        set_session_value(f"_was_active_{key}", active)

    def polled() -> None:
        if key and active and _should_change_interval(every):
            _rerun_app(key)
        body()

    st.fragment(run_every=every if active else None)(polled)()


INTERVAL_CHANGE_SECONDS = 20.0  # at most one whole-page redraw per this long to follow the server's load


def _should_change_interval(every: float) -> bool:
    now = time.monotonic()
    if poll_seconds() == every or now - session_value("_interval_changed_at", 0.0) < INTERVAL_CHANGE_SECONDS:
        return False
    set_session_value("_interval_changed_at", now)
    return True


def quality_section(view: JobView, key: str) -> None:
    """The quality panel at the end of a live page's fragment, once there is something to show."""
    if view.step or view.metrics is not None:
        quality_panel(view, key)


def rerun_if_ended(view: JobView, key: str) -> None:
    """Inside a polling fragment: when the run has ended since the page was last drawn in full, redraw the
    whole page (once: the full run records the new state through `live_fragment`)."""
    if session_value(f"_was_active_{key}", False) and not view.active:
        _rerun_app(key)


def _rerun_app(key: str) -> None:
    # One full rerun, never a second one from inside it: a rerun that starts while the previous one is
    # still drawing can leave Streamlit's browser tree inconsistent (a blank page).
    set_session_value(f"_was_active_{key}", False)
    st.rerun(scope="app")


def _command(job: Job, command: Callable[[], None], timeout: float) -> None:
    """Send a command from a button callback and wait (briefly) until the view shows its effect, so the
    fragment run that follows draws the new state at once."""
    version = job.view().version
    command()
    job.wait_for_view(version, timeout=timeout)
    forget_shared_view()


def _stop(job: Job) -> None:
    job.stop()
    forget_shared_view()


def job_controls(job: Job, view: JobView, key: str, step_label: str = "Step") -> None:
    """Pause / Resume / Step / Stop for the session's run (inside the polling fragment). The commands run
    in the buttons' callbacks, before the fragment draws its one view of the run."""
    running = view.state == JobState.RUNNING
    paused = view.state == JobState.PAUSED
    with st.container(horizontal=True, vertical_alignment="center"):  # wraps on a narrow screen, never truncates
        st.button("Pause", key=f"{key}_btn_pause", icon=":material/pause:", disabled=not running, width="content",
                  on_click=_command, args=(job, job.pause, 1.0))
        st.button("Resume", key=f"{key}_btn_resume", icon=":material/play_arrow:", disabled=not paused,
                  width="content", on_click=_command, args=(job, job.resume, 1.0))
        st.button(step_label, key=f"{key}_btn_step", icon=":material/skip_next:", disabled=not (running or paused),
                  help="Exactly one training iteration: D's update(s), then G's update. The run pauses after it.",
                  width="content", on_click=_command, args=(job, job.step_once, 3.0))
        st.button("Stop", key=f"{key}_btn_stop", icon=":material/stop:", disabled=not view.active, width="content",
                  help="Stop and save the run (it appears under Runs).", on_click=_stop, args=(job,))


def status_banner(view: JobView) -> None:
    """What the run is doing, in words: queued (position), loading/downloading, finished, errors;
    and, for a lesson preset, what to watch."""
    with st.container():  # one block whatever it shows, so the elements after it keep their places
        _status_banner_body(view)


def _status_banner_body(view: JobView) -> None:
    lesson = PRESETS[view.preset].lesson if view.preset in PRESETS else ""
    if lesson and view.active:
        st.info(f"**Lesson — what to watch:** {lesson}.", icon=":material/school:")
    if view.state == JobState.QUEUED:
        load = view.load or manager().load()
        st.info(load.queued_text(view.queue_position), icon=":material/hourglass_top:")
    elif view.state == JobState.LOADING:
        if view.download is not None:
            done, total = view.download
            st.progress(min(done / max(total, 1e-9), 0.99),
                        text=f"Downloading {view.config['dataset']}: {done:.1f} of about {total:.0f} MB")
        else:
            st.info(view.message.capitalize() + "...", icon=":material/downloading:")
    elif view.state == JobState.FINISHED or view.state == JobState.STOPPED:
        saved = ""
        if view.saved_step is not None:
            saved = f" Saved as **{view.name}** (step {view.saved_step:,}): explore it in the Latent explorer or under Runs."
        st.success(f"{view.message.capitalize()}.{saved}", icon=":material/check_circle:")
    elif view.state == JobState.DIVERGED:
        st.error(f"**The run diverged** (NaN or infinite values). {view.message}", icon=":material/error:")
    elif view.state == JobState.FAILED:
        st.error(view.message, icon=":material/error:")
    if view.storage_problem and view.active:
        kept = f"the last good checkpoint (step {view.saved_step:,}) stays loadable" if view.saved_step is not None else "nothing is saved yet"
        st.warning(f"**{view.storage_problem.capitalize()}.** Training goes on in memory; {kept}.", icon=":material/save:")
    if view.metrics is not None and view.metrics.warning:
        st.warning(f"**{view.metrics.warning}**", icon=":material/warning:")


def stats_row(view: JobView) -> None:
    """State, step, speed, wall clock and training time (which the time budget counts), device. The
    metrics sit in a row that wraps when narrow, so none is ever cut off."""
    text, colour = STATE_BADGES[view.state]
    budget = float(view.config.get("seconds") or 0)
    with st.container(horizontal=True, gap="medium", vertical_alignment="center"):
        st.markdown(f"#### :{colour}-badge[{text}]", width="content")
        st.metric("Step", f"{view.step:,}", width="content")
        st.metric("Images / s", f"{view.images_per_s:,.0f}" if view.state == JobState.RUNNING else "–", width="content",
                  help="Real + generated images the discriminator sees per second, overheads included.")
        st.metric("Wall clock", _duration(view.wall_seconds), width="content",
                  help="Time since training started, pauses included.")
        st.metric("Training time", _duration(view.train_seconds) + (f" of {_duration(budget)}" if budget else ""),
                  width="content", help="Time spent in the training steps themselves: the time budget counts this. "
                  "The live pictures, the quality metrics and the saves run in between, so the wall clock runs ahead.")
    sharing = view.load is not None and view.state in (JobState.RUNNING, JobState.PAUSED)
    # the speed above is what this run gets of the server: say with how many it shares it
    st.caption(f"Device: {view.device or device_text()}" + (f" · speed: {view.load.sharing_text()}." if sharing else ""))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def charts_panel(view: JobView, key: str, height: int = 250) -> None:
    """Loss curves and the police's average verdict on real and fake bills."""
    scale = score_scale(view.config["loss"])
    plot(charts.loss_figure(view.history, scaled(height)), f"{key}_chart_loss")
    plot(charts.scores_figure(view.history, scale, scaled(height)), f"{key}_chart_scores")
    if not scale.probability:
        st.caption(f"With the **{view.config['loss']}** loss, D's output is {scale.label}: not a probability.")


def scrub(view: JobView, key: str) -> tuple[int, Any, bool]:
    """A 'look back' slider over the kept snapshots: (step, payload, is_live)."""
    snapshots = view.snapshots
    if not snapshots:
        return view.latest_step, view.latest, True
    percent = st.slider("Look back in time", 0, 100, 100, key=f"{key}_look_back", format="%d%%",
                        help="100% is now. Drag left to replay how the samples improved (up to 100 snapshots, evenly spread).")
    if percent >= 100:
        if view.latest is None:
            return snapshots[-1][0], snapshots[-1][1], True
        return view.latest_step, view.latest, True
    index = round(percent / 100 * (len(snapshots) - 1))
    step, payload = snapshots[index]
    return step, payload, False


def samples_panel(view: JobView, key: str) -> None:
    """The fixed-noise sample grid (the same 'bills' every time), with the look-back slider."""
    step, png, live = scrub(view, key)
    if png is None:
        st.caption("The first samples appear in a moment.")
        return
    cond = " Each row is one class." if view.class_names and view.config.get("conditional") else ""
    st.image(inline_png(png), caption=f"{frame_label(view, step, live).capitalize()}: the same latent vectors z at every "
                                      f"snapshot, so you watch the same fakes improve.{cond}", width="stretch")


def frame_label(view: JobView, step: int, live: bool) -> str:
    """'step N (now)' only when the picture shows the run's current step; the newest picture of a run that
    has moved on since says so, and a look-back frame is just its step."""
    if not live:
        return f"step {step:,}"
    if step == view.step:
        return f"step {step:,} (now)"
    return f"step {step:,} (newest picture; the run is at step {view.step:,})"


def lab_panel(view: JobView, key: str, height: int = 520, options: bool = True) -> None:
    """The 2D plot: D's surface, real and generated points, G's pushes; with the look-back slider."""
    step, lab, live = scrub(view, key)
    if lab is None:
        st.caption("The first picture appears in a moment.")
        return
    surface, arrows = True, True
    if options:
        c1, c2, _ = st.columns([1, 1, 2])
        surface = c1.toggle("D's surface", value=True, key=f"{key}_show_surface",
                            help="Where the police say 'real' (green) or 'fake' (violet).")
        arrows = c2.toggle("G's push", value=True, key=f"{key}_show_arrows",
                           help="-d loss_G / d x: where the generator's gradient moves each fake.")
    # Not scaled in presenter mode: the plane is square, so the column's width (wider without the sidebar) sets its size.
    plot(charts.lab_figure(lab, show_surface=surface, show_arrows=arrows, height=height,
                           title=frame_label(view, step, live)), f"{key}_chart_plot")


def verdict_panel(view: JobView) -> None:
    """The police's verdict on a fresh batch: framed fakes and reals, and the share of fakes that pass."""
    v = view.verdict
    st.subheader("The police's verdict", anchor=False)
    if v is None:
        st.caption("The first verdict appears in a moment.")
        return
    what = "probability that it is real" if v.probability else "raw score"
    st.caption(f"A fresh batch, judged by D right now. Under each image: D's {what}. Green frame = **passed** as "
               f"real (at least {v.threshold:.2f}), red = **caught**. A counterfeiter that is winning gets more fakes "
               f"past; at the equilibrium the police can only guess, and about half of everything passes.")
    c1, c2 = st.columns(2)
    c1.metric("Fakes that pass", f"{v.fake_pass_share:.0%}")
    c2.metric("Real images recognised", f"{v.real_pass_share:.0%}")
    if v.fake_png:
        c1.image(inline_png(v.fake_png), caption="Fakes: G(z)", width="stretch")
        c2.image(inline_png(v.real_png), caption="Real images from the dataset", width="stretch")


def quality_panel(view: JobView, key: str) -> None:
    """Live quality numbers: FCD trend and class histogram, or 2D mode coverage."""
    st.subheader("Quality", anchor=False)
    m = view.metrics
    if m is None:
        st.caption("Measured every few seconds in the background; the first numbers come shortly.")
        return
    if m.kind == "none":
        st.info(f"{m.message}: no quality numbers for this run. The samples and the police's verdict still tell the story.",
                icon=":material/info:")
        return
    if m.kind == "image":
        c1, c2, c3 = st.columns(3)
        delta = m.fcd[-1] - m.fcd[-2] if len(m.fcd) > 1 else None
        c1.metric(f"FCD ({m.fcd_n:,} samples)", f"{m.fcd[-1]:.1f}", delta=f"{delta:+.1f}" if delta is not None else None,
                  delta_color="inverse", help="Fréchet distance between features of generated and real images, "
                  "from a small classifier bundled with the app. Lower is better.")
        c2.metric("FCD of real images", f"{m.fcd_floor:.2f}" if m.fcd_floor is not None else "–",
                  help="The same measure for real images: the best a generator can reach.")
        c3.metric("Classes drawn", f"{m.covered[-1]} of {m.n_modes}", help="Classes that get at least 2% of the samples.")
        c1, c2 = st.columns(2)
        with c1:
            plot(charts.fcd_figure(m, scaled(240)), f"{key}_chart_fcd")
        with c2:
            plot(charts.histogram_figure(m, view.class_names, scaled(240)), f"{key}_chart_hist")
    else:
        c1, c2 = st.columns(2)
        mode_metrics(m, c1, c2)
        coverage_note(m)
        c1, c2 = st.columns(2)
        with c1:
            plot(charts.coverage_figure(m, scaled(240)), f"{key}_chart_cov")
        with c2:
            plot(charts.per_mode_figure(m, scaled(240)), f"{key}_chart_modes")
    st.caption(f"Measured in the training thread every few seconds (last pass: {m.seconds:.2f} s).")


def mode_metrics(m: Any, left: Any, right: Any) -> None:
    """A 2D toy's mode count and, beside it, the share of samples near a mode (the count alone flatters a
    diffuse cloud: one nearby sample covers a mode)."""
    left.metric("Modes covered", f"{m.covered[-1]} of {m.n_modes}", help="Modes with at least one generated point "
                "within 3 std of their centre: a single point is enough, so read it with the share beside it.")
    right.metric("Near a mode", f"{m.hq_fraction[-1]:.0%}", help="Share of generated points within 3 std of a mode.")


def coverage_note(m: Any) -> None:
    """The mode count in one sentence with its quality share; a warning when most samples are near no mode."""
    text = coverage_text(m.covered[-1], m.n_modes, m.hq_fraction[-1])
    if is_diffuse(m.hq_fraction[-1]):
        st.warning(f"**{text}**: most samples are near no mode, a diffuse cloud rather than the modes themselves.",
                   icon=":material/blur_on:")
    else:
        st.caption(f"**{text}**.")
