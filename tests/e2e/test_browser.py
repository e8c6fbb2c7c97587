"""End to end in headless Chromium: train a 2D toy live, watch it update, stop it; move the latent
slider; two sessions at once; every page at a projector's 1024x768 with nothing cut off, screenshotted."""

from __future__ import annotations

import hashlib
import io
import json
import re
import time
from pathlib import Path
from urllib.parse import urljoin

import pytest
from browser_utils import assert_no_crash, new_app_page, truncated_texts, wait_until_drawn
from gan_test_utils import wait_until

from gan_core.app.nav import PAGES

STEP_METRIC = "[data-testid=stMetric]:has-text('Step') [data-testid=stMetricValue]"


def open_app(page, url: str, path: str = "", heading: str = "") -> None:
    """Load a page of the app and wait until its title is shown."""
    page.goto(f"{url}/{path}")
    page.get_by_role("heading", name=heading or re.compile(".+"), level=1).first.wait_for()


def screenshot(page, folder, name: str) -> None:
    """A full-length screenshot (Streamlit scrolls inside its own container, so grow the viewport)."""
    width = page.viewport_size["width"]
    height = page.evaluate("() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], section')]"
                           ".map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 4000)})
    time.sleep(0.6)
    page.screenshot(path=str(folder / f"{name}.png"))
    page.set_viewport_size({"width": width, "height": 1000})


def digest(page, selector: str) -> str:
    """A hash of an element's rendered DOM (e.g. the points of a plotly chart)."""
    html = page.locator(selector).first.inner_html()
    return hashlib.sha1(html.encode()).hexdigest()


def current_step(page) -> int:
    return int(page.locator(STEP_METRIC).first.inner_text().replace(",", ""))


def wait_for_step_above(page, step: int, timeout: float = 15.0) -> int:
    """Wait until the page shows a step counter above `step` (polls every second); returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = current_step(page)
        if now > step:
            return now
        time.sleep(0.25)
    raise AssertionError(f"the step counter stayed at {step} for {timeout:.0f} s")


def start_run(page, url: str, preset: str) -> str:
    """Open Train with a preset, press Start, wait for training; returns the run's name."""
    open_app(page, url, f"train?preset={preset}", "Train")
    page.get_by_role("button", name="Start", exact=True).click()
    name = page.locator("h3", has_text=preset).first
    name.wait_for()
    return name.inner_text().strip()


def test_train_a_2d_toy_live_then_stop(page, app_url, screenshots):
    run_name = start_run(page, app_url, "ring8")
    page.locator(STEP_METRIC).first.wait_for()
    page.locator(".js-plotly-plot").nth(2).wait_for()  # the 2D plot, the losses, the police's verdicts
    lab_plot = ".js-plotly-plot >> nth=0"
    loss_plot = ".js-plotly-plot >> nth=1"
    seen: dict[str, set] = {"step": set(), "2D plot": set(), "loss chart": set()}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and min(len(v) for v in seen.values()) < 3:
        seen["step"].add(current_step(page))
        seen["2D plot"].add(digest(page, lab_plot))
        seen["loss chart"].add(digest(page, loss_plot))
        time.sleep(0.5)
    changes = {name: len(values) - 1 for name, values in seen.items()}
    assert min(changes.values()) >= 2, f"each must update at least twice while training: {changes}"
    screenshot(page, screenshots, "train-ring8-running")

    # Switching pages neither kills nor duplicates the run.
    page.get_by_role("link", name="2D lab").click()
    page.get_by_role("heading", name="2D lab", level=1).wait_for()
    page.locator("h3", has_text=run_name).wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    time.sleep(2)
    screenshot(page, screenshots, "lab-ring8-running")
    page.get_by_role("link", name="Train").click()
    page.locator("h3", has_text=run_name).wait_for()
    page.reload()  # a reload is a new app session: the browser's cookie finds the same run again
    page.locator("h3", has_text=run_name).wait_for()
    wait_for_step_above(page, current_step(page))  # the run kept training across the page switch
    assert page.locator("h3", has_text="ring8-").count() == 1

    stop_and_wait_saved(page)
    assert page.get_by_role("button", name="Start", exact=True).is_enabled()


def test_latent_slider_changes_the_image(page, app_url, screenshots):
    open_app(page, app_url, "latent", "Latent explorer")
    image = page.locator("[data-testid=stImage] img").first
    image.wait_for()
    before = image.get_attribute("src")
    thumb = page.locator("[data-testid=stSlider]", has_text="Position between").get_by_role("slider")
    thumb.focus()
    started = time.monotonic()
    page.keyboard.press("End")
    # the locator is re-read each time: a rerun may replace the <img> element rather than change its src
    assert wait_until(lambda: image.get_attribute("src") != before, 30, every=0.05), "the image did not change"
    latency = time.monotonic() - started
    print(f"\nlatent slider: image updated {latency * 1000:.0f} ms after the key press")
    assert image.get_attribute("src") != before
    page.get_by_text("t = 1.00").wait_for(timeout=15_000)  # the caption may arrive in a later delta than the image
    assert page.get_by_text("t = 1.00").count() == 1
    page.get_by_role("button", name="Download the walk (GIF)").wait_for(timeout=15_000)  # the rerun may still be drawing
    screenshot(page, screenshots, "latent-explorer")


def draw_strokes(page, canvas, strokes) -> None:
    """Draw with the mouse on a canvas: each stroke is a list of (x, y) points in 0..1 of its size."""
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    for stroke in strokes:
        points = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*points[0])
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for i in range(1, 9):  # small moves, as a hand makes them
                page.mouse.move(x0 + (x1 - x0) * i / 8, y0 + (y1 - y0) * i / 8)
        page.mouse.up()
        time.sleep(0.3)


def test_draw_a_digit_project_it_and_walk_from_it(page, app_url, screenshots):
    open_app(page, app_url, "latent", "Latent explorer")
    page.get_by_text("Draw a digit, find it in latent space").wait_for()
    page.get_by_text("Nothing to project yet.").wait_for()
    canvas = page.locator("canvas.upper-canvas").first  # Fabric.js's event layer in the component
    draw_strokes(page, canvas, [[(0.3, 0.2), (0.72, 0.2), (0.45, 0.85)], [(0.4, 0.52), (0.65, 0.52)]])  # a 7
    page.get_by_text("Your digit, 28x28 as MNIST").wait_for(timeout=30_000)
    strip = page.locator("[data-testid=stImage] img").nth(1)
    before = strip.get_attribute("src")
    page.get_by_role("button", name="Project").click()
    page.get_by_text("G's closest drawing").wait_for(timeout=300_000)  # seconds on an idle CPU
    metric = page.locator("[data-testid=stMetric]:has-text('Distance') [data-testid=stMetricValue]").first
    distance = float(metric.inner_text())
    assert 0 < distance < 1, distance
    assert page.get_by_text(re.compile(r"pixels differ by [0-9.]+% on average")).count() == 1
    screenshot(page, screenshots, "latent-projection")
    page.get_by_role("button", name="Walk from it (z₀)").click()
    page.get_by_text("z₀: your drawing").wait_for(timeout=30_000)
    page.wait_for_function("([el, old]) => el.getAttribute('src') !== old", arg=[strip.element_handle(), before],
                           timeout=30_000)
    assert page.locator("[data-testid=stException]").count() == 0


def stop_and_wait_saved(page) -> None:
    """Press Stop and wait for the saved message. A click that lands while the polling fragment
    re-renders can be dropped, so press once more if Stop is still enabled after 20 s."""
    stop = page.get_by_role("button", name="Stop", exact=True)
    stop.click()
    try:
        page.get_by_text("Saved as").wait_for(timeout=20_000)
        return
    except Exception:
        assert_no_crash(page)
        if stop.count() and stop.first.is_enabled():
            stop.first.click()
    page.get_by_text("Saved as").wait_for(timeout=60_000)


@pytest.fixture
def two_sessions(browser):
    """Two browser contexts (two app sessions, as two students) and a page in each; closed afterwards."""
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    yield contexts, [new_app_page(c) for c in contexts]
    for c in contexts:
        c.close()


def test_two_sessions_at_once(two_sessions, app_url, screenshots):
    _, (first, second) = two_sessions
    first_run = start_run(first, app_url, "ring8")
    first.locator(STEP_METRIC).first.wait_for()
    second_run = start_run(second, app_url, "grid25")
    assert first_run != second_run
    # One training slot and one admitted run (GAN_MAX_JOBS=1, GAN_MAX_ADMITTED=1): the second session is visibly queued...
    second.get_by_text("Queued, position 1").wait_for()
    screenshot(second, screenshots, "train-queued")
    # ...and neither page shows the other's run.
    assert second.get_by_text(first_run).count() == 0
    assert first.get_by_text(second_run).count() == 0
    stop_and_wait_saved(first)
    # The slot frees up and the queued run starts by itself.
    second.locator(STEP_METRIC).first.wait_for(timeout=30_000)
    wait_for_step_above(second, current_step(second))
    stop_and_wait_saved(second)
    # Saved runs stay private too: the second session's run list has its own run, not the first's.
    open_app(second, app_url, "runs", "Runs")
    second.locator("[data-testid=stSelectbox]", has_text="Run").click()
    options = second.get_by_role("option").all_inner_texts()
    assert any(second_run in o for o in options), options
    assert not any(first_run in o for o in options), options
    for p in (first, second):
        assert_no_crash(p)


@pytest.mark.parametrize("path,heading", [("", "GAN Playground") if p.key == "home" else (Path(p.path).stem, p.title)
                                          for p in PAGES])
def test_screenshot_every_page(page, app_url, screenshots, path, heading):
    page.set_viewport_size({"width": 1024, "height": 768})  # a classroom projector
    open_app(page, app_url, path, heading)
    wait_until_drawn(page)
    time.sleep(1.0)  # images and charts settle
    assert page.locator("[data-testid=stException]").count() == 0
    cut = truncated_texts(page)
    assert not cut, f"cut off at 1024 px: {cut}"
    page.screenshot(path=str(screenshots / f"projector-{path or 'home'}.png"))  # what the room sees
    screenshot(page, screenshots, f"page-{path or 'home'}")


def test_one_session_cannot_see_or_take_over_anothers_runs(two_sessions, app_url, app_runs_dir):
    contexts, (owner, intruder) = two_sessions
    run_name = start_run(owner, app_url, "spiral")
    owner.locator(STEP_METRIC).first.wait_for()
    # Everything the intruder could find: the owner id in the run's files, every cookie value seen.
    saved = json.loads((app_runs_dir / run_name / "config.json").read_text())
    own_cookie = {c["name"]: c["value"] for c in contexts[0].cookies()}.get("gan_playground_session", "")
    assert own_cookie and own_cookie.split(".")[0] not in json.dumps(saved), "the session secret reached a file"
    for forged in (saved["owner"], saved["owner"].removeprefix("u-"), own_cookie.split(".")[0]):
        contexts[1].add_cookies([{"name": "gan_playground_session", "value": forged, "url": app_url}])
        open_app(intruder, app_url, "train", "Train")
        intruder.get_by_text("No run yet in this session.").wait_for()
        assert intruder.get_by_text(run_name).count() == 0, f"cookie {forged!r} opened the owner's run"
    stop_and_wait_saved(owner)
    # Saved but not shared: even "show runs other sessions shared" does not list it.
    open_app(intruder, app_url, "runs", "Runs")
    intruder.get_by_text("Show runs other sessions shared").click()
    intruder.locator("[data-testid=stSelectbox]", has_text="Run").click()
    assert not any(run_name in o for o in intruder.get_by_role("option").all_inner_texts())
    for p in (owner, intruder):
        assert_no_crash(p)


def test_a_replay_downloaded_from_the_runs_page_is_a_multi_frame_gif_and_an_mp4(page, app_url, app_runs_dir, screenshots, tmp_path):
    from PIL import Image

    from gan_core.timeline import open_timeline

    run = "e2e-mnist-cdcgan"
    steps = open_timeline(app_runs_dir / run).steps
    open_app(page, app_url, "runs", "Runs")
    page.locator("[data-testid=stSelectbox]", has_text="Run").click()
    page.get_by_role("option", name=re.compile(run)).click()
    page.get_by_role("button", name="Replay", exact=True).click()
    download = page.get_by_role("button", name="Download the replay (GIF)")
    download.wait_for()
    page.get_by_text(f"the same fixed noise, {len(steps)} snapshots from step 0 to step {steps[-1]:,}").wait_for()
    shown = page.locator("[data-testid=stImage]", has_text="the same fixed noise").locator("img").get_attribute("src")
    with Image.open(io.BytesIO(page.request.get(urljoin(app_url + "/", shown)).body())) as animation:
        assert animation.n_frames == len(steps), "the page shows the animation, not a still of its first frame"
    with page.expect_download() as info:
        download.click()
    saved = tmp_path / "replay.gif"
    info.value.save_as(saved)
    with Image.open(saved) as gif:
        assert gif.format == "GIF" and gif.n_frames == len(steps) >= 5
        gif.seek(gif.n_frames - 1)  # the last frame decodes too
    assert info.value.suggested_filename == f"{run}-replay.gif"
    av = pytest.importorskip("av")
    with page.expect_download() as info:  # the MP4 is rendered on the server when pressed
        page.get_by_role("button", name="Download the replay (MP4)").click()
    saved = tmp_path / "replay.mp4"
    info.value.save_as(saved)
    with av.open(str(saved)) as video:
        assert video.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in video.decode(video=0)) >= len(steps)
    assert info.value.suggested_filename == f"{run}-replay.mp4"
    assert_no_crash(page)
    screenshot(page, screenshots, "runs-replay")


def side_step(page, side: str) -> int:
    """The step shown above one side's picture ('A · preset · step N')."""
    text = page.locator("p", has_text=re.compile(rf"^{side} · ")).first.inner_text()
    match = re.search(r"step ([\d,]+)", text)
    return int(match.group(1).replace(",", "")) if match else -1


def legend_of(plot) -> str:
    """The legend entries of a plotly chart (SVG text), joined."""
    return " ".join(plot.locator(".legendtext").evaluate_all("els => els.map(e => e.textContent)"))


def test_an_ab_pair_started_and_stopped_from_its_page(page, app_url, screenshots):
    open_app(page, app_url, "compare", "A/B compare")
    page.get_by_role("button", name="ring8-saturating vs ring8-strong-d").click()
    page.locator("h3", has_text=" vs ring8-strong-d-B-").first.wait_for()
    plots = page.locator(".js-plotly-plot")
    plots.nth(3).wait_for(timeout=90_000)  # A's and B's 2D plots, the overlaid losses and verdicts
    losses = page.locator(".js-plotly-plot", has_text="Losses: A solid, B dashed").first
    losses.wait_for()
    # The charts are drawn from step 0; their lines come with the first steps (the worker process is starting).
    names = ("D · A", "G · A", "D · B", "G · B")
    assert wait_until(lambda: all(name in legend_of(losses) for name in names), 60, every=0.5), legend_of(losses)
    verdicts = page.locator(".js-plotly-plot", has_text="Police verdicts: A solid").first
    assert wait_until(lambda: "D(x) · A" in legend_of(verdicts) and "D(G(z)) · B" in legend_of(verdicts), 60,
                      every=0.5), legend_of(verdicts)
    page.get_by_text("B differs from A in:").first.wait_for()
    page.locator("p", has_text=re.compile(r"^A · ring8-saturating")).first.wait_for()
    page.locator("p", has_text=re.compile(r"^B · ring8-strong-d ")).first.wait_for()
    assert wait_until(lambda: min(side_step(page, "A"), side_step(page, "B")) > 50, 120, every=0.5), \
        f"both sides train: A at step {side_step(page, 'A')}, B at {side_step(page, 'B')}"
    assert wait_until(lambda: page.locator(".js-plotly-plot", has_text="generated (fakes)").count() == 2, 30,
                      every=0.5), "A's and B's 2D plots (stale ones of a slow rerun gone)"
    page.locator("[data-testid=stDataFrame]").first.wait_for()  # the table of both sides' numbers
    screenshot(page, screenshots, "ab-ring8-saturating-vs-ring8-strong-d")
    page.set_viewport_size({"width": 1024, "height": 768})  # the projector: nothing may be truncated
    time.sleep(1.5)
    page.screenshot(path=str(screenshots / "ab-1024x768.png"))
    screenshot(page, screenshots, "ab-1024-full")
    page.set_viewport_size({"width": 1400, "height": 1000})
    stop_and_wait_saved(page)
    page.get_by_text("linked as a pair").first.wait_for()
    assert page.get_by_role("button", name="Start A/B").is_enabled()
    assert_no_crash(page)

