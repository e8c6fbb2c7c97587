"""Live views that never lie: '(now)' only on the current frame, the sidebar and the page drawing one
view, loss charts that a spike does not flatten, the 2D mode count always with its quality share, and
presenter mode's larger charts."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
from gan_test_utils import wait_until

from gan_core.app import charts
from gan_core.app.dashboard import frame_label
from gan_core.live import JobState
from gan_core.metrics import coverage_text, is_diffuse
from test_app import button, manager, open_page, session_job  # noqa: F401 - manager is a fixture

STEP = re.compile(r"^Step ([\d,]+)")


def noisy_history(n: int = 400, seed: int = 0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {"step": list(range(1, n + 1)), "loss_d": list(1.3 + 0.05 * rng.standard_normal(n)),
            "loss_g": list(0.8 + 0.1 * rng.standard_normal(n))}


def test_a_loss_spike_is_clipped_and_marked_not_flattening_the_chart():
    history = noisy_history()
    history["loss_g"][200], history["loss_d"][300] = 2000.0, -50.0
    figure = charts.loss_figure(history)
    low, high = figure.layout.yaxis.range
    assert 0.3 < low < 0.7 and 1.4 < high < 1.8, "the axis follows the curves, not the spikes"
    spikes = figure.data[-1]
    assert spikes.name == "spike off the scale (2e+03)"
    assert list(spikes.x) == [301, 201] and sorted(spikes.customdata) == [-50.0, 2000.0]  # the real values, on hover
    assert list(spikes.marker.symbol) == ["triangle-down", "triangle-up"] and all(low <= y <= high for y in spikes.y)
    pair = charts.pair_loss_figure(history, noisy_history(seed=1))
    assert pair.layout.yaxis.range[1] < 2 and pair.data[-1].name.startswith("spike off the scale")


def test_without_a_spike_the_loss_axis_fits_every_value():
    history = noisy_history()
    history["loss_g"] = list(np.linspace(5.0, 0.8, 400))  # a steep start is part of the story, not a spike
    figure = charts.loss_figure(history)
    assert figure.layout.yaxis.range is None and [t.name for t in figure.data] == ["D (police)", "G (counterfeiter)"]
    assert charts.robust_range(np.array([1.0, 50.0])) is None, "too few points to call anything a spike"


def test_the_mode_count_comes_with_its_quality_share():
    assert coverage_text(8, 8, 0.06) == "8 of 8 modes, 6% of samples near a mode"
    assert is_diffuse(0.06) and not is_diffuse(0.9)


def test_now_only_on_the_current_frame():
    view = SimpleNamespace(step=325)
    assert frame_label(view, 325, live=True) == "step 325 (now)"
    assert frame_label(view, 195, live=True) == "step 195 (newest picture; the run is at step 325)"
    assert frame_label(view, 195, live=False) == "step 195"


def grid_caption(at) -> str:
    return next(c for image in at.image for c in image.captions if "the same latent vectors z" in c)


def step_metric(at) -> str:
    return next(m.value for m in at.metric if m.label == "Step")


def test_the_train_page_says_now_only_when_the_grid_shows_the_current_step(manager):  # noqa: F811
    at = open_page("pages/train.py")
    for name, value in dict(g_width=8, d_width=8, batch_size=16).items():
        at.number_input(key=f"train_{name}").set_value(value)
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert wait_until(lambda: job.view().latest is not None and job.view().step > job.view().latest_step, 60)
    at.run()
    caption, step = grid_caption(at), step_metric(at)
    shown = STEP.match(caption).group(1)
    if shown != step:  # the newest picture is older than the run: said so, with the run's own step
        assert f"(newest picture; the run is at step {step})" in caption and "(now)" not in caption, caption
    job.pause()
    assert wait_until(lambda: job.state == JobState.PAUSED, 30)
    job.step_once()  # a single step draws its picture at once: now the grid is the current step
    assert wait_until(lambda: job.state == JobState.PAUSED and job.view().latest_step == job.view().step, 30)
    at.run()
    caption, step = grid_caption(at), step_metric(at)
    assert caption.startswith(f"Step {step} (now):"), (caption, step)
    job.stop()


def test_the_2d_quality_panel_says_the_share_near_a_mode_and_warns_of_a_cloud(manager):  # noqa: F811
    at = open_page("pages/train.py")
    at.selectbox(key="train_preset").set_value("ring8").run()
    for name, value in dict(g_width=16, d_width=16, batch_size=32).items():
        at.number_input(key=f"train_{name}").set_value(value)
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert wait_until(lambda: job.view().metrics is not None, 60)
    at.run()
    m = job.metrics
    texts = [w.value for w in at.warning] + [c.value for c in at.caption]
    sentence = coverage_text(m.covered[-1], m.n_modes, m.hq_fraction[-1])
    shown = [t for t in texts if sentence in t]
    assert shown, texts
    assert ("diffuse cloud" in shown[0]) == is_diffuse(m.hq_fraction[-1])
    assert {"Modes covered", "Near a mode"} <= {x.label for x in at.metric}
    job.stop()


def test_presenter_mode_draws_the_live_charts_larger(manager):  # noqa: F811
    at = open_page("pages/train.py")
    at.selectbox(key="train_preset").set_value("ring8").run()
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert wait_until(lambda: job.view().lab is not None, 60)

    def heights() -> list[int]:
        return [json.loads(chart.proto.spec)["layout"]["height"] for chart in at.get("plotly_chart")[:3]]

    at.run()
    normal = heights()  # the 2D plane (square: its column's width sizes it), the losses, the verdicts
    at.session_state["presenter_mode"] = True  # what the sidebar's toggle sets
    at.run()
    assert heights() == [normal[0]] + [round(h * 1.4) for h in normal[1:]], (normal, heights())
    job.stop()


def _shared_view_script():
    import itertools
    from types import SimpleNamespace

    import streamlit as st

    from gan_core.app import session
    from gan_core.live import JobState

    built = st.session_state.setdefault("built", itertools.count())
    job = SimpleNamespace(id="job", state=JobState.RUNNING,
                          view=lambda: SimpleNamespace(step=next(built), state=JobState.RUNNING))
    steps = []
    for reader in ("sidebar", "page", "page", "sidebar", "sidebar", "page"):  # runs in pairs, whoever comes first
        steps.append(session.shared_view(job, reader, 60).step)
    session.forget_shared_view()  # after a command
    steps.append(session.shared_view(job, "page", 60).step)
    steps.append(session.shared_view(job, "sidebar", 0).step)  # too old to share
    st.write(" ".join(map(str, steps)))


def test_the_sidebar_and_the_page_draw_one_view():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_shared_view_script).run()
    assert not at.exception
    assert at.markdown[0].value == "0 0 1 1 2 2 3 4", "each pair of runs draws one view; a command or age ends it"


def test_the_sidebar_offers_presenter_mode():
    from gan_core.app.session import PRESENTER_KEY
    from test_app import app

    at = app()  # the router's full run draws the sidebar (AppTest's later runs go to the page alone)
    assert [t.key for t in at.sidebar.toggle if t.label == "Presenter mode"] == [PRESENTER_KEY]


def test_the_live_refresh_stretches_with_the_servers_runs_and_stays_under_5_s():
    from gan_core.app.dashboard import POLL_SECONDS, refresh_seconds

    intervals = [refresh_seconds(n) for n in range(0, 101)]
    assert intervals[:5] == [POLL_SECONDS] * 5, "a few students see their run every 2 s"
    assert refresh_seconds(8) == 3.0 and refresh_seconds(20) == 4.0
    assert intervals == sorted(intervals) and max(intervals) < 5, "never more than 5 s between two pictures"


def test_a_class_on_the_server_makes_the_train_page_poll_less_often(manager, monkeypatch):  # noqa: F811
    import streamlit as st

    registered: list[float | None] = []
    fragment = st.fragment

    def recording(func=None, *, run_every=None):
        registered.append(run_every)
        return fragment(func, run_every=run_every)

    monkeypatch.setattr(st, "fragment", recording)
    at = open_page("pages/train.py")
    at.selectbox(key="train_preset").set_value("ring8").run()
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert wait_until(lambda: job.view().step > 0, 60)
    registered.clear()
    at.run()
    assert registered == [2.0], "alone: the dashboard (quality panel included) every 2 s"
    counts = manager.counts()
    monkeypatch.setattr(manager, "counts", lambda: {**counts, "running": 1, "queued": 19})  # 19 classmates waiting
    registered.clear()
    at.run()
    assert not at.exception
    assert registered == [4.0], "with 20 runs: every 4 s"
    job.stop()


def _sidebar_script():
    import streamlit as st

    from gan_core import PRESETS
    from gan_core.app import session, sidebar

    if session.current_job() is None:
        session.manager().submit(session.session_id(), PRESETS["ring8"].config(), preset="ring8")
    sidebar.sidebar_status(live_page=st.session_state.get("live_page", False))


def test_beside_a_live_page_the_sidebar_leaves_the_step_to_the_page(manager):  # noqa: F811
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_sidebar_script, default_timeout=30).run()
    job = next(iter(manager.active_jobs()))
    assert wait_until(lambda: job.view().step > 0, 60)
    at.run()
    assert any(re.search(r"step [\d,]+", c.value) for c in at.sidebar.caption), "elsewhere the sidebar shows the step"
    at.session_state["live_page"] = True
    at.run()
    captions = [c.value for c in at.sidebar.caption]
    assert not any(re.search(r"step [\d,]+", c) for c in captions) and any("on this page" in c for c in captions)
    job.stop()
