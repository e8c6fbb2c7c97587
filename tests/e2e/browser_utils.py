"""Helpers shared by the browser tests and their fixtures."""

from __future__ import annotations

CRASHES: dict = {}  # page -> its uncaught JavaScript errors


def new_app_page(context):
    """A page that records uncaught JavaScript errors: a Streamlit front-end crash leaves a blank page,
    and `assert_no_crash` then names the error instead of a test timing out on a missing element."""
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    CRASHES[page] = errors
    return page


def assert_no_crash(page) -> None:
    """Fail if the page's JavaScript raised an uncaught error."""
    errors = CRASHES.get(page, [])
    assert not errors, f"the app crashed in the browser: {errors}"
