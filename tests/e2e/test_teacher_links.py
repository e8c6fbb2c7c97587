"""The teacher's tools in a real browser: a share link opened in a fresh browser context fills and locks the
form, a hostile link says so, a reload keeps the form's edits, and two students and the class view at once."""

from __future__ import annotations

import re
import time

from browser_utils import assert_no_crash, new_app_page
from conftest import TEACHER_KEY
from gan_core.app.class_view import card_key
from test_browser import STEP_METRIC, open_app, screenshot, start_run


def field(page, label: str):
    """The input of the form field labelled `label` (number inputs and select boxes alike)."""
    return page.get_by_label(label, exact=True).first


def shown(page, label: str) -> str:
    """The value a form field shows (a select box is a combobox input holding its choice)."""
    return field(page, label).input_value()


def test_a_share_link_in_a_fresh_browser_shows_the_prefilled_locked_form_and_a_hostile_link_the_message(
        browser, app_url, screenshots):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})  # a fresh browser: no cookie, no state
    page = new_app_page(context)
    open_app(page, app_url, "train?preset=ring8&lr_g=0.005&d_steps=3&lock=lr_g,d_steps", "Train")
    field(page, "Learning rate G").wait_for()
    assert shown(page, "Preset") == "ring8"
    assert float(shown(page, "Learning rate G")) == 0.005 and field(page, "Learning rate G").is_disabled()
    assert shown(page, "D steps per G step") == "3" and field(page, "D steps per G step").is_disabled()
    assert shown(page, "Batch size") == "256" and field(page, "Batch size").is_enabled()
    assert field(page, "Preset").is_disabled()
    page.get_by_text("The link you opened locks the preset").wait_for()
    screenshot(page, screenshots, "train-share-link-locked")

    open_app(page, app_url, "train?preset=ring8&lr_g=1e9&evil=%3Cscript%3Ealert(1)%3C/script%3E", "Train")
    message = page.get_by_text("This link could not be used")
    message.wait_for()
    assert page.locator("[data-testid=stAlert]", has_text="could not be used").count() == 1
    assert shown(page, "Preset") == "mnist-dcgan", "the defaults"
    assert field(page, "Learning rate G").is_enabled()
    assert page.locator("[data-testid=stException]").count() == 0

    open_app(page, app_url, "", "GAN Playground")  # each lesson's link on Home opens it with its cause locked
    page.get_by_text("Lessons for the classroom").click()
    page.get_by_role("link", name="Open ring8-saturating on the Train page").click()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    page.wait_for_function("() => location.search.includes('preset=ring8-saturating')")
    assert shown(page, "Preset").startswith("ring8-saturating")
    assert shown(page, "Loss").startswith("minimax") and field(page, "Loss").is_disabled()
    assert field(page, "Seed").is_enabled()
    assert_no_crash(page)
    context.close()


def test_a_reload_keeps_the_forms_edits(page, app_url):
    open_app(page, app_url, "train?preset=spiral", "Train")
    steps = field(page, "D steps per G step")
    steps.fill("4")
    steps.press("Enter")
    page.wait_for_function("() => location.search.includes('d_steps=4')", timeout=30_000)
    assert "preset=spiral" in page.url
    page.reload()
    page.get_by_role("heading", name="Train", level=1).wait_for()
    page.wait_for_function("() => [...document.querySelectorAll('input[aria-label=\"D steps per G step\"]')]"
                           ".some(e => e.value === '4')", timeout=30_000)
    assert shown(page, "Preset") == "spiral"


def wall_text(page) -> str:
    return page.locator("[data-testid=stMain]").inner_text()


def test_two_students_and_the_class_view_at_once(browser, app_url, screenshots):
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(3)]
    first, second, teacher = (new_app_page(c) for c in contexts)
    for p in (first, second, teacher):
        p.set_default_timeout(120_000)  # three browsers and two runs on a 2-core machine
    try:
        first_run = start_run(first, app_url, "ring8")
        first.locator(STEP_METRIC).first.wait_for()
        second_run = start_run(second, app_url, "spiral")
        second.get_by_text("Queued, position 1").wait_for()  # one training slot

        # A second tab of the same browser shares its session cookie, hence its run (what Home says)...
        same_browser = new_app_page(contexts[0])
        open_app(same_browser, app_url, "train", "Train")
        same_browser.locator("h3", has_text=first_run).wait_for()
        # ...and a student who opens the class view sees the key prompt, nobody's run, no controls.
        same_browser.get_by_role("link", name="Class view").click()
        same_browser.get_by_label("Teacher key").wait_for()
        assert first_run not in wall_text(same_browser) and second_run not in wall_text(same_browser)
        assert same_browser.get_by_role("button", name="Stop").count() == 0
        same_browser.close()

        open_app(teacher, app_url, "class_view", "Class view")
        teacher.get_by_label("Teacher key").fill(TEACHER_KEY)
        teacher.get_by_role("button", name="Open the class view").click()
        teacher.get_by_text(first_run).wait_for()
        teacher.get_by_text(second_run).wait_for()
        teacher.get_by_text("Queued, position 1").wait_for()
        teacher.locator("[data-testid=stImage] img").first.wait_for()  # the running run's points
        step_text = teacher.get_by_text(re.compile(r"^Step [\d,]+$")).first
        before = step_text.inner_text()
        deadline = time.monotonic() + 30
        while step_text.inner_text() == before and time.monotonic() < deadline:  # the wall refreshes by itself
            time.sleep(0.5)
        assert step_text.inner_text() != before, "the class view refreshes while the run trains"
        screenshot(teacher, screenshots, "class-view")
        assert first.get_by_text(second_run).count() == 0, "students never see each other's runs"

        teacher.locator(f".st-key-{card_key(first_run)}").get_by_role("button", name="Stop").click()
        first.get_by_text("Stopped by the teacher").wait_for(timeout=60_000)
        second.locator(STEP_METRIC).first.wait_for(timeout=60_000)  # the queue moves on: the second run trains
        teacher.locator(f".st-key-{card_key(second_run)}").get_by_role("button", name="Stop").click()
        second.get_by_text("Stopped by the teacher").wait_for(timeout=60_000)
        teacher.get_by_text("No run is training or queued right now.").wait_for(timeout=30_000)
        for p in (first, second, teacher):
            assert_no_crash(p)
    finally:
        for c in contexts:
            c.close()
