"""At a projector's 1024x768 (and at 800 px): every page readable, no label or control cut off, a
screenshot of each (the ones in docs/projector/); and five minutes of a live mnist-dcgan run watched in
the browser without one failed image load or console error."""

from __future__ import annotations

import re
import time

import pytest
from browser_utils import assert_no_crash, new_app_page, truncated_texts
from test_browser import STEP_METRIC, current_step, open_app, stop_and_wait_saved

from gan_core.app.nav import PAGES

PROJECTOR = {"width": 1024, "height": 768}
NARROW = {"width": 800, "height": 600}
WATCH_SECONDS = 300.0


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


@pytest.mark.parametrize("path,heading", [("", "GAN Playground") if p.key == "home" else (p.path.split("/")[-1][:-3], p.title)
                                          for p in PAGES])
def test_every_page_fits_a_projector(projector_page, app_url, screenshots, path, heading):
    open_app(projector_page, app_url, path, heading)
    fits(projector_page, path or "home")
    projector_page.screenshot(path=str(screenshots / f"projector-{path or 'home'}.png"))  # what the room sees


def test_the_train_page_controls_fit_at_1024_and_800_px(projector_page, app_url, screenshots):
    page = projector_page
    open_app(page, app_url, "train?preset=ring8", "Train")
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


def test_five_minutes_of_mnist_dcgan_lose_no_image_and_log_no_error(browser, app_url, screenshots):
    context = browser.new_context(viewport=PROJECTOR)
    page = new_app_page(context)
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(f"{r.resource_type} {r.url}: {r.failure}"))
    page.on("response", lambda r: failed.append(f"{r.request.resource_type} {r.url}: HTTP {r.status}")
            if r.status >= 400 else None)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    open_app(page, app_url, "train?preset=mnist-dcgan", "Train")
    page.get_by_role("button", name="Start", exact=True).click()
    page.locator(STEP_METRIC).first.wait_for(timeout=120_000)
    page.locator("[data-testid=stImage] img").nth(2).wait_for(timeout=120_000)  # the bills, the fakes, the reals
    fits(page, "Train, mnist-dcgan")
    started, sources, steps = time.monotonic(), set(), []
    presented = False
    while time.monotonic() - started < WATCH_SECONDS:
        steps.append(current_step(page))
        sources.add(page.locator("[data-testid=stImage] img").first.get_attribute("src"))
        caption = page.locator("[data-testid=stImage]", has_text="the same latent vectors").first.inner_text()
        shown = int(re.search(r"Step ([\d,]+)", caption).group(1).replace(",", ""))
        assert "(now)" not in caption or shown == current_step(page) or "paused" in page.inner_text("body").lower()
        if not presented and time.monotonic() - started > WATCH_SECONDS / 2:
            page.screenshot(path=str(screenshots / "projector-train-mnist-running.png"))
            page.get_by_text("Presenter mode").click()  # collapse the sidebar, enlarge charts and grids
            page.locator("[data-testid=stSidebar][aria-expanded=false]").wait_for(timeout=30_000)
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
    assert steps[-1] > steps[0] and len(sources) >= 10, "the run trained and the grid kept changing"
