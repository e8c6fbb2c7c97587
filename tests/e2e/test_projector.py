"""At a projector's 1024x768 (and at 800 px): the Train page's controls, labels and numbers never cut off
while a run trains (test_browser.py checks every page at rest); five minutes of a live mnist-dcgan run
watched in the browser without one failed image load or console error, and presenter mode."""

from __future__ import annotations

import re
import time
from urllib.parse import urlparse

import pytest
from browser_utils import assert_no_crash, new_app_page, truncated_texts, wait_until_drawn
from test_browser import STEP_METRIC, open_app, stop_and_wait_saved

PROJECTOR = {"width": 1024, "height": 768}
NARROW = {"width": 800, "height": 600}
WATCH_SECONDS = 300.0
SHOWN_JS = """() => {
  if (document.querySelector('[data-testid=stApp]').dataset.testScriptState !== 'notRunning') return null;  // mid-redraw
  const step = [...document.querySelectorAll('[data-testid=stMetric]')]
    .find(m => m.querySelector('[data-testid=stMetricLabel]')?.innerText.trim() === 'Step');
  const grid = [...document.querySelectorAll('[data-testid=stImage]')].find(e => e.innerText.includes('the same latent'));
  return [step.querySelector('[data-testid=stMetricValue]').innerText.trim(), grid.innerText.trim(),
          grid.querySelector('img').src];
}"""


@pytest.fixture
def projector_page(browser):
    """A fresh app session in a 1024x768 window; fails if the app crashed in it."""
    context = browser.new_context(viewport=PROJECTOR)
    page = new_app_page(context)
    yield page
    context.close()
    assert_no_crash(page)


def fits(page, where: str) -> None:
    """Nothing on the page is cut off (give the layout a moment to settle first)."""
    time.sleep(1.5)
    cut = truncated_texts(page)
    assert not cut, f"{where}: cut off at {page.viewport_size['width']} px: {cut}"


def test_the_train_page_controls_fit_at_1024_and_800_px(projector_page, app_url, screenshots):
    page = projector_page
    open_app(page, app_url, "train?preset=ring8", "Train")
    wait_until_drawn(page)
    fits(page, "Train, setup")
    page.get_by_role("button", name="Start", exact=True).click()
    page.locator(STEP_METRIC).first.wait_for()
    page.locator(".js-plotly-plot").nth(2).wait_for()  # the 2D plot, the losses, the police's verdicts
    fits(page, "Train, running")
    page.screenshot(path=str(screenshots / "projector-train-ring8-running.png"))
    page.set_viewport_size(NARROW)
    fits(page, "Train, running")
    for label in ("Pause", "Resume", "Step", "Stop"):  # whole words on the buttons, not bare icons
        assert page.get_by_role("button", name=label, exact=True).inner_text().strip().endswith(label)
    page.set_viewport_size(PROJECTOR)
    stop_and_wait_saved(page)


def read_shown(page) -> list[str]:
    """The Step metric, the grid's caption and its source, read at once between two redraws (a redraw sends
    its elements one by one, so mid-redraw a new step can sit beside an old caption)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = page.evaluate(SHOWN_JS)
        if shown is not None:
            return shown
        time.sleep(0.05)
    raise AssertionError("the page kept redrawing for 60 s")


def test_five_minutes_of_mnist_dcgan_lose_no_image_and_log_no_error(browser, app_url, screenshots):
    context = browser.new_context(viewport=PROJECTOR)
    page = new_app_page(context)
    failed: list[str] = []
    watching = False
    page.on("requestfailed", lambda r: failed.append(f"{r.resource_type} {r.url}: {r.failure}"))
    page.on("response", lambda r: failed.append(f"{r.request.resource_type} {r.url}: HTTP {r.status}")
            if r.status >= 400 else None)
    media: list[str] = []  # Streamlit media files: a live picture must never be one (a fragment's next run drops it)
    page.on("request", lambda r: media.append(r.url) if watching and urlparse(r.url).path.startswith("/media/") else None)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    # From Home through the menu, as a class would: a deep link to /train makes Streamlit's front end probe
    # /train/_stcore/... first (two 404s of its own, before it finds the server's root).
    open_app(page, app_url, "", "GAN Playground")
    page.locator("[data-testid=stSidebarNav]").get_by_role("link", name="Train").click()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    page.get_by_role("button", name="Start", exact=True).click()  # the default preset: mnist-dcgan
    page.locator(STEP_METRIC).first.wait_for(timeout=120_000)
    page.locator("[data-testid=stImage] img").nth(2).wait_for(timeout=120_000)  # the bills, the fakes, the reals
    fits(page, "Train, mnist-dcgan")
    watching = True
    started, sources, steps = time.monotonic(), set(), []
    presented = False
    while time.monotonic() - started < WATCH_SECONDS:
        step, caption, source = read_shown(page)
        steps.append(int(step.replace(",", "")))
        sources.add(source)
        frame = re.match(r"Step ([\d,]+) (\(now\)|\(newest picture; the run is at step ([\d,]+)\))", caption)
        assert frame, caption
        assert (frame.group(1) if frame.group(2) == "(now)" else frame.group(3)) == step, (step, caption)
        if not presented and time.monotonic() - started > WATCH_SECONDS / 2:
            page.screenshot(path=str(screenshots / "projector-train-mnist-running.png"))
            page.get_by_text("Presenter mode").click()  # collapse the sidebar, enlarge charts and grids
            page.wait_for_function("() => document.querySelector('[data-testid=stSidebar]')"
                                   ".getBoundingClientRect().width < 5", timeout=30_000)
            presented = True
            time.sleep(3)
            page.screenshot(path=str(screenshots / "projector-train-mnist-presenter.png"))
        time.sleep(5)
    broken = page.evaluate("() => [...document.querySelectorAll('[data-testid=stMain] img')]"
                           ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src.slice(0, 80))")
    stop_and_wait_saved(page)
    assert_no_crash(page)
    context.close()
    print(f"\nwatched {WATCH_SECONDS:.0f} s: steps {steps[0]:,} -> {steps[-1]:,}, {len(sources)} different sample grids")
    assert not failed, f"{len(failed)} failed loads: {failed[:10]}"
    assert not console_errors, f"{len(console_errors)} console errors: {console_errors[:10]}"
    assert not broken, f"images shown blank: {broken}"
    assert not media, f"live pictures loaded as media files, which can expire: {media[:5]}"
    assert steps[-1] > steps[0] and len(sources) >= 5, "the run trained and the grid kept changing"
