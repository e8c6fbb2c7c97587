"""Streamlit helpers shared by the pages: session state, the training form, the live dashboard
pieces, run pickers and model loading. The training itself lives in gan_core (jobs.py); nothing
here trains, and the worker threads never call Streamlit.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

import streamlit as st
import torch
from PIL import Image

import charts
from gan_core import PRESETS, TrainConfig
from gan_core.checkpoint import load_checkpoint
from gan_core.config import ARCHS, LOSS_NAMES
from gan_core.data import DATASETS
from gan_core.device import describe_device, resolve_device
from gan_core.errors import GanError
from gan_core.images import grid_image, scatter_image
from gan_core.jobs import Job, JobManager, JobState, JobView, cpu_cores, get_manager
from gan_core.live import score_scale
from gan_core.losses import LOSSES
from gan_core.paths import runs_dir
from gan_core.runs import RunInfo, list_runs, visible_runs

SESSION_COOKIE = "gan_playground_session"
POLL_SECONDS = 1.0
QUALITY_POLL_SECONDS = 4.0
SIDEBAR_POLL_SECONDS = 5.0
DEFAULT_BUDGET_SECONDS = 600.0
TOY_PRESETS = [name for name, p in PRESETS.items() if p.overrides.get("arch") == "toy"]
PAGES = {
    "home": "pages/home.py",
    "train": "pages/train.py",
    "lab": "pages/lab.py",
    "latent": "pages/latent.py",
    "class": "pages/class_control.py",
    "runs": "pages/runs.py",
}
STATE_BADGES = {
    JobState.QUEUED: ("queued", "gray"), JobState.LOADING: ("loading", "blue"), JobState.RUNNING: ("training", "green"),
    JobState.PAUSED: ("paused", "orange"), JobState.FINISHED: ("finished", "violet"), JobState.STOPPED: ("stopped", "gray"),
    JobState.DIVERGED: ("diverged", "red"), JobState.FAILED: ("failed", "red"),
}


# --- session state: every read goes through here ----------------------------------------------------
def session_value(key: str, default: Any = None) -> Any:
    """This browser session's value for `key`, set to `default` first if absent (a callable default is called)."""
    if key not in st.session_state:
        st.session_state[key] = default() if callable(default) else default
    return st.session_state[key]


def set_session_value(key: str, value: Any) -> None:
    """Store a value in this browser session's state."""
    st.session_state[key] = value


def session_id() -> str:
    """A random id for this browser (owns its training job and its saved runs). Kept in a session
    cookie (see `remember_session`), so reloading the page finds the same run again."""
    def fresh() -> str:
        remembered = _cookie()
        return remembered if re.fullmatch(r"[0-9a-f]{32}", remembered) else uuid.uuid4().hex

    return session_value("session_id", fresh)


def _cookie() -> str:
    """The session cookie sent by the browser ('' without one, or without a browser: tests, bare mode)."""
    try:
        value = st.context.cookies.get(SESSION_COOKIE, "")
    except Exception:
        return ""
    return value if isinstance(value, str) else ''


def remember_session() -> None:
    """Write the session id into a browser session cookie once (st.context.cookies only reads them)."""
    sid = session_id()
    if _cookie() != sid and not session_value("_cookie_written", False):
        set_session_value("_cookie_written", True)
        with st.sidebar:
            st.html(f"<script>document.cookie = '{SESSION_COOKIE}={sid}; path=/; SameSite=Strict';</script>",
                    unsafe_allow_javascript=True)


def manager() -> JobManager:
    """The process-wide training job manager."""
    return get_manager()


def current_job() -> Optional[Job]:
    """This session's training job (running or last finished), if any."""
    return manager().job_for(session_id())


def heartbeat() -> None:
    """Tell the job manager this session's tab is still open."""
    manager().touch(session_id())


def flash(text: str, kind: str = "success") -> None:
    """Keep a message to show on the next run of the page (it survives an st.rerun())."""
    set_session_value("_flash", (kind, text))


def show_flash() -> None:
    """Show (once) the message kept by `flash`."""
    kind, text = session_value("_flash", None) or (None, None)
    if text:
        set_session_value("_flash", None)
        getattr(st, kind)(text)


def device_text() -> str:
    """'GPU: name (cuda)' or 'CPU, N threads' (the machine's, not one thread's torch setting)."""
    device = resolve_device("auto")
    return describe_device(device) if device.type != "cpu" else f"CPU, {cpu_cores()} threads"


# --- routing ---------------------------------------------------------------------------------------------
def mark_routed(current: str) -> None:
    """Called by playground.py after st.navigation with the current page's key (see PAGES): pages may
    now run. Finishes a pending redirect."""
    set_session_value("_routed", True)
    wanted, params = session_value("_wanted_page", None) or ("", {})
    if wanted:
        set_session_value("_wanted_page", None)
        if wanted in PAGES and wanted != current:
            st.switch_page(PAGES[wanted], query_params=params)


def require_router(page: str) -> None:
    """Run a page only inside playground.py's navigation. Right after a server start, before any session
    has called st.navigation, Streamlit runs a deep-linked file of pages/ on its own: go through the
    router first, then come back here."""
    if not session_value("_routed", False):
        params = st.query_params.to_dict()
        set_session_value("_wanted_page", (page, params))
        st.switch_page("playground.py", query_params=params)


# --- the sidebar: heartbeat and the state of your run, on every page ---------------------------
def sidebar_status() -> None:
    """Show this session's run in the sidebar and keep its heartbeat going while it is active."""
    job = current_job()
    active = job is not None and job.state.active
    with st.sidebar:
        st.fragment(run_every=SIDEBAR_POLL_SECONDS if active else None)(_sidebar_body)()


def _sidebar_body() -> None:
    heartbeat()
    job = current_job()
    counts = manager().counts()
    with st.container(border=True):
        if job is None:
            st.caption("No run yet in this session.")
        else:
            view = job.view()
            text, colour = STATE_BADGES[view.state]
            st.markdown(f"**Your run** :{colour}-badge[{text}]")
            position = f", queue position {view.queue_position}" if view.queue_position else ""
            st.caption(f"{view.name}  \nstep {view.step:,}{position}")
        st.caption(f"Training slots: {counts['running']}/{counts['max_jobs']} busy, {counts['queued']} waiting  \n"
                   f"Device: {device_text()}")


# --- the training form ---------------------------------------------------------------------------
FORM_FIELDS = ("dataset", "arch", "conditional", "loss", "lr_g", "lr_d", "batch_size", "d_steps", "label_smoothing",
               "z_dim", "seed", "g_width", "d_width", "ema", "dropout", "gp_weight", "seconds", "steps", "device", "data_dir")
_FIELD_INFO = {f.name: f for f in fields(TrainConfig)}


def field_help(name: str) -> str:
    """The help text of a TrainConfig field."""
    return _FIELD_INFO[name].metadata.get("help", "")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def preset_values(preset: str) -> dict[str, Any]:
    """The form values of a preset: its overrides over the defaults, with a default time budget."""
    values = TrainConfig.from_dict(dict(PRESETS[preset].overrides)).to_dict()
    if not values["seconds"] and not values["steps"]:
        values["seconds"] = DEFAULT_BUDGET_SECONDS
    return values


def load_preset_into_form(prefix: str, preset: str) -> None:
    """Set every form widget to the preset's value (a widget callback)."""
    for name, value in preset_values(preset).items():
        if name in FORM_FIELDS:
            kind = _FIELD_INFO[name].type
            st.session_state[_key(prefix, name)] = float(value) if kind in ("float", float) else value


def _on_preset_change(prefix: str) -> None:
    load_preset_into_form(prefix, st.session_state[_key(prefix, "preset")])


def preset_picker(prefix: str, options: list[str], default: str) -> str:
    """Preset select box; choosing one loads it into the form. Shows the description and lesson."""
    key = _key(prefix, "preset")
    linked = st.query_params.get("preset")  # e.g. /train?preset=ring8-saturating, a link a teacher can share
    if linked in options and session_value(f"_{prefix}_linked_preset", "") != linked:
        set_session_value(f"_{prefix}_linked_preset", linked)
        st.session_state[key] = linked
        load_preset_into_form(prefix, linked)
    if key not in st.session_state or st.session_state[key] not in options:
        st.session_state[key] = default if default in options else options[0]
        load_preset_into_form(prefix, st.session_state[key])
    name = st.selectbox("Preset", options, key=key, on_change=_on_preset_change, args=(prefix,), persist_state="session",
                        format_func=lambda n: f"{n}  ·  lesson" if PRESETS[n].lesson else n,
                        help="A named starting configuration. Choosing one fills in every setting below.")
    preset = PRESETS[name]
    st.caption(preset.description)
    if preset.lesson:
        st.info(f"**What to watch:** {preset.lesson}", icon=":material/school:")
    return name


def config_form(prefix: str, toy: bool = False) -> dict[str, Any]:
    """Widgets for the tunable TrainConfig fields (help text from the field metadata); returns raw values.

    Values are not clamped here: `TrainConfig.validate()` is the one judge of what is allowed."""
    def number(name: str, label: str, col, fmt: Optional[str] = None, step: Any = None) -> None:
        col.number_input(label, key=_key(prefix, name), help=field_help(name), format=fmt, step=step, persist_state="session")

    datasets = [n for n, s in DATASETS.items() if s.kind == "points" or not toy]  # the 2D lab: toys only
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Dataset", datasets, key=_key(prefix, "dataset"), help=field_help("dataset"), persist_state="session",
                 format_func=lambda n: f"{n}  ({DATASETS[n].description})")
    if not toy:
        c2.selectbox("Architecture", ARCHS, key=_key(prefix, "arch"), help=field_help("arch"), persist_state="session")
        c3.toggle("Conditional (choose the class)", key=_key(prefix, "conditional"), help=field_help("conditional"),
                  persist_state="session")
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Loss", LOSS_NAMES, key=_key(prefix, "loss"), help=field_help("loss"), persist_state="session",
                 format_func=lambda n: f"{n}: {LOSSES[n].description}")
    number("lr_g", "Learning rate G", c2, "%.1e", 1e-4)
    number("lr_d", "Learning rate D", c3, "%.1e", 1e-4)
    c1, c2, c3 = st.columns(3)
    number("batch_size", "Batch size", c1, step=16)
    number("d_steps", "D steps per G step", c2, step=1)
    number("label_smoothing", "Label smoothing", c3, "%.2f", 0.05)
    c1, c2, c3 = st.columns(3)
    number("z_dim", "Latent size (z)", c1, step=8)
    number("seed", "Seed", c2, step=1)
    number("seconds", "Stop after (seconds, 0 = never)", c3, "%.0f", 60.0)
    with st.expander("More settings"):
        c1, c2, c3 = st.columns(3)
        number("g_width", "G width", c1, step=8)
        number("d_width", "D width", c2, step=8)
        number("steps", "Stop after (steps, 0 = never)", c3, step=100)
        c1, c2, c3 = st.columns(3)
        number("ema", "EMA of G weights", c1, "%.4f", 0.001)
        number("dropout", "Dropout in D", c2, "%.2f", 0.05)
        number("gp_weight", "Gradient-penalty weight", c3, "%.1f", 1.0)
        c1, c2, _ = st.columns(3)
        c1.selectbox("Device", ["auto", "cpu", "cuda", "mps"], key=_key(prefix, "device"), help=field_help("device"),
                     persist_state="session")
        if not toy:
            c2.text_input("Image folder (dataset = folder)", key=_key(prefix, "data_dir"), help=field_help("data_dir"),
                          persist_state="session")
    return {name: st.session_state[_key(prefix, name)] for name in FORM_FIELDS if _key(prefix, name) in st.session_state}


def build_config(preset: str, values: dict[str, Any]) -> tuple[Optional[TrainConfig], str]:
    """The validated config of the preset with the form's values, or (None, the error message)."""
    try:
        return TrainConfig.from_dict({**PRESETS[preset].overrides, **values}).validate(), ""
    except GanError as exc:
        return None, str(exc)


def start_job(preset: str, values: dict[str, Any], start_paused: bool = False) -> bool:
    """Validate and submit this session's run; shows the error (and starts nothing) if invalid."""
    config, error = build_config(preset, values)
    if config is None:
        st.error(f"Not started: {error}", icon=":material/error:")
        return False
    try:
        manager().submit(session_id(), config, preset=preset, start_paused=start_paused)
    except GanError as exc:
        st.error(f"Not started: {exc}", icon=":material/error:")
        return False
    return True


# --- the live dashboard pieces ------------------------------------------------------------------------
def live_fragment(body: Callable[[], None], active: bool, every: float = POLL_SECONDS, key: str = "") -> None:
    """Run `body` as a fragment that re-runs every `every` seconds while the run is active. With a `key`,
    the fragment redraws the whole page once when the run ends (see `rerun_if_ended`)."""
    if key:
        set_session_value(f"_was_active_{key}", active)
    st.fragment(run_every=every if active else None)(body)()


def quality_fragment(key: str, active: bool) -> None:
    """The quality panel, polled less often than the dashboard: metrics change every few seconds only."""
    def body() -> None:
        job = current_job()
        if job is not None:
            view = job.view()
            if view.step or view.metrics is not None:
                quality_panel(view, key)

    live_fragment(body, active, QUALITY_POLL_SECONDS)


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


def job_controls(job: Job, view: JobView, key: str, step_label: str = "Step") -> None:
    """Pause / Resume / Step / Stop for the session's run (inside the polling fragment)."""
    running = view.state == JobState.RUNNING
    paused = view.state == JobState.PAUSED
    cols = st.columns([1, 1, 1.4, 1, 3])
    if cols[0].button("Pause", key=f"{key}_btn_pause", icon=":material/pause:", disabled=not running, width="stretch"):
        version = job.view().version
        job.pause()
        job.wait_for_view(version, timeout=1.0)  # show the new state at once, not a poll later
    if cols[1].button("Resume", key=f"{key}_btn_resume", icon=":material/play_arrow:", disabled=not paused, width="stretch"):
        version = job.view().version
        job.resume()
        job.wait_for_view(version, timeout=1.0)
    if cols[2].button(step_label, key=f"{key}_btn_step", icon=":material/skip_next:", disabled=not (running or paused),
                      help="Exactly one training iteration: D's update(s), then G's update. The run pauses after it.",
                      width="stretch"):
        version = job.view().version
        job.step_once()
        job.wait_for_view(version, timeout=3.0)
    if cols[3].button("Stop", key=f"{key}_btn_stop", icon=":material/stop:", disabled=not view.active, width="stretch",
                      help="Stop and save the run (it appears under Runs)."):
        job.stop(wait=True)
        _rerun_app(key)


def status_banner(view: JobView) -> None:
    """What the run is doing, in words: queued (position), loading/downloading, finished, errors;
    and, for a lesson preset, what to watch."""
    with st.container():  # one block whatever it shows, so the elements after it keep their places
        _status_banner_body(view)


def _status_banner_body(view: JobView) -> None:
    counts = manager().counts()
    lesson = PRESETS[view.preset].lesson if view.preset in PRESETS else ""
    if lesson and view.active:
        st.info(f"**Lesson — what to watch:** {lesson}.", icon=":material/school:")
    if view.state == JobState.QUEUED:
        slots = "The server's only training slot is" if counts["max_jobs"] == 1 else f"All {counts['max_jobs']} training slots are"
        st.info(f"**Queued, position {view.queue_position or '?'}.** {slots} busy with other sessions' runs. Yours starts "
                f"by itself when a slot frees up; keep this tab open.", icon=":material/hourglass_top:")
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
    if view.metrics is not None and view.metrics.warning:
        st.warning(f"**{view.metrics.warning}**", icon=":material/warning:")


def stats_row(view: JobView) -> None:
    """Step, speed, elapsed time, device."""
    text, _ = STATE_BADGES[view.state]
    cols = st.columns([1, 1, 1, 1, 1.6])
    cols[0].metric("Status", text.capitalize())
    cols[1].metric("Step", f"{view.step:,}")
    cols[2].metric("Images / s", f"{view.images_per_s:,.0f}" if view.state == JobState.RUNNING else "–",
                   help="Real + generated images the discriminator sees per second, overheads included.")
    cols[3].metric("Elapsed", _duration(view.wall_seconds), help=f"Pure training time: {_duration(view.train_seconds)}")
    cols[4].metric("Device", view.device or device_text())


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def charts_panel(view: JobView, key: str, height: int = 250) -> None:
    """Loss curves and the police's average verdict on real and fake bills."""
    scale = score_scale(view.config["loss"])
    st.plotly_chart(charts.loss_figure(view.history, height), key=f"{key}_chart_loss", config={"displayModeBar": False})
    st.plotly_chart(charts.scores_figure(view.history, scale, height), key=f"{key}_chart_scores", config={"displayModeBar": False})
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
    st.image(png, caption=f"Step {step:,}{' (now)' if live else ''}: the same latent vectors z at every snapshot, "
                          f"so you watch the same fakes improve.{cond}", width="stretch")


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
    title = f"step {step:,}{' (now)' if live else ''}"
    st.plotly_chart(charts.lab_figure(lab, show_surface=surface, show_arrows=arrows, height=height, title=title),
                    key=f"{key}_chart_plot", config={"displayModeBar": False})


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
        c1.image(v.fake_png, caption="Fakes: G(z)", width="stretch")
        c2.image(v.real_png, caption="Real images from the dataset", width="stretch")


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
            st.plotly_chart(charts.fcd_figure(m), key=f"{key}_chart_fcd", config={"displayModeBar": False})
        with c2:
            st.plotly_chart(charts.histogram_figure(m, view.class_names), key=f"{key}_chart_hist", config={"displayModeBar": False})
    else:
        c1, c2 = st.columns(2)
        c1.metric("Modes covered", f"{m.covered[-1]} of {m.n_modes}", help="Modes that received at least one good sample.")
        c2.metric("Good samples", f"{m.hq_fraction[-1]:.0%}", help="Share of generated points within 3 std of a mode.")
        c1, c2 = st.columns(2)
        with c1:
            st.plotly_chart(charts.coverage_figure(m), key=f"{key}_chart_cov", config={"displayModeBar": False})
        with c2:
            st.plotly_chart(charts.per_mode_figure(m), key=f"{key}_chart_modes", config={"displayModeBar": False})
    st.caption(f"Measured in the training thread every few seconds (last pass: {m.seconds:.2f} s).")


# --- runs and generators ----------------------------------------------------------------------------
@dataclass
class LoadedRun:
    """A checkpoint loaded for sampling, shared by all sessions (guard sampling with `lock`)."""

    trainer: Any
    info_path: str

    def __post_init__(self) -> None:
        import threading

        self.lock = threading.Lock()


@st.cache_resource(max_entries=6, show_spinner="Loading the generator...")
def load_run(path: str, mtime: float) -> LoadedRun:
    """Load a run's checkpoint on the app's device once per (path, file time)."""
    return LoadedRun(load_checkpoint(path, device="auto"), path)


def runs_for_session(include_others: bool = False) -> list[RunInfo]:
    """Pretrained generators and the saved runs this session may see (not runs still training)."""
    busy = {str(p) for p in manager().active_run_dirs()}
    runs = [r for r in list_runs(runs_dir()) if str(r.path) not in busy]
    return visible_runs(runs, session_id(), include_others)


def run_picker(runs: list[RunInfo], key: str, label: str = "Generator") -> Optional[RunInfo]:
    """Select box over runs, defaulting to the run chosen on the Runs page, else the first pretrained one."""
    if not runs:
        return None
    paths = [str(r.path) for r in runs]
    wanted = session_value("selected_run", "")
    if st.session_state.get(key) not in paths:
        st.session_state[key] = wanted if wanted in paths else paths[0]
    chosen = st.selectbox(label, paths, key=key, format_func=lambda p: runs[paths.index(p)].label)
    set_session_value("selected_run", chosen)
    return runs[paths.index(chosen)]


def owner_text(run: RunInfo) -> str:
    """Who made a run, from this session's point of view."""
    if run.source == "pretrained":
        return "pretrained"
    if not run.owner:
        return "command line"
    return "you" if run.owner == session_id() else "another session"


def latent(z_dim: int, seed: int) -> torch.Tensor:
    """A reproducible latent vector z ~ N(0, I) for a seed."""
    return torch.randn(z_dim, generator=torch.Generator().manual_seed(int(seed)))


def upscale(img: Image.Image, side: int) -> Image.Image:
    """Nearest-neighbour upscale so that the shorter side is about `side` pixels (crisp pixels)."""
    factor = max(1, round(side / min(img.size)))
    return img.resize((img.width * factor, img.height * factor), Image.NEAREST)


def single_image(sample: torch.Tensor, side: int = 256) -> Image.Image:
    """One [-1, 1] image tensor (C, H, W) as an upscaled PIL image."""
    return upscale(grid_image(sample.unsqueeze(0), nrow=1, padding=0), side)


def samples_picture(trainer: Any, n: int = 64, seed: int = 0) -> Image.Image:
    """A grid of n samples (images) or a scatter of samples over real data (2D toys), reproducible by seed."""
    count = n if trainer.spec.kind == "image" else 1024
    z = torch.randn(count, trainer.config.z_dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(len(z)) % trainer.num_classes if trainer.num_classes else None
    samples = trainer.sample(z=z, labels=labels)
    if trainer.spec.kind == "points":
        from gan_core.data import ToyData

        real, _ = ToyData(trainer.config.dataset, torch.device("cpu")).sample_real(1024)
        return scatter_image(samples, real)
    return grid_image(samples, nrow=8, scale=2 if samples.shape[-1] <= 32 else 1)


def labelled_rows(images: torch.Tensor, names: list[str] | tuple[str, ...], columns: int,
                  highlight: Optional[int] = None, scale: int = 3) -> Image.Image:
    """A grid with one row per class and the class names written on the left (the chosen one highlighted)."""
    from PIL import ImageDraw, ImageFont

    padding = 2
    grid = grid_image(images, nrow=columns, padding=padding, scale=scale).convert("RGB")
    try:
        font, bold = ImageFont.load_default(size=17), ImageFont.load_default(size=19)
    except (TypeError, OSError):
        font = bold = ImageFont.load_default()
    label_width = 130
    canvas = Image.new("RGB", (grid.width + label_width, grid.height), "white")
    canvas.paste(grid, (label_width, 0))
    draw = ImageDraw.Draw(canvas)
    side = images.shape[-1]
    for i, name in enumerate(names):
        y = (padding + i * (side + padding) + side / 2) * scale
        chosen = i == highlight
        draw.text((label_width - 12, y), name, anchor="rm", font=bold if chosen else font,
                  fill=(79, 70, 229) if chosen else (75, 85, 99))
    return canvas


def png(img: Image.Image) -> bytes:
    """PNG bytes of a PIL image."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def gif(frames: list[Image.Image], seconds_per_frame: float = 0.08) -> bytes:
    """An endlessly looping animated GIF of the frames."""
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0,
                   duration=int(seconds_per_frame * 1000), disposal=2)
    return buffer.getvalue()


class Timer:
    """Measures how long a page section took (shown so slow renders are visible)."""

    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.ms = (time.perf_counter() - self.start) * 1000


def live_run_header(key: str, step_label: str = "Step") -> Optional[tuple[Job, JobView]]:
    """Top of a live fragment: this session's job (None if there is none), heartbeat, title and controls."""
    job = current_job()
    if job is None:
        return None
    heartbeat()
    view = job.view()
    rerun_if_ended(view, key)
    st.markdown(f"### {view.name}")
    job_controls(job, view, key, step_label=step_label)
    return job, job.view()
