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


# Every rendered element of the app that clips its own text (an ellipsis, or overflow hidden) while its text
# is wider than the element: a truncated button, label, metric, link or caption. Charts, tables and code
# draw their own text and are left out.
TRUNCATED_JS = """() => {
  const skip = '.js-plotly-plot, [data-testid=stDataFrame], [data-testid=stCode], [data-testid=stJson]';
  const out = [];
  for (const el of document.querySelectorAll('[data-testid=stApp] *')) {
    if (el instanceof SVGElement || el.closest(skip)) continue;
    const box = el.getBoundingClientRect();
    if (box.width <= 2 || box.height <= 2 || el.clientWidth === 0) continue;  // hidden or screen-reader only
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden') continue;
    const clips = style.textOverflow === 'ellipsis' || ['hidden', 'clip'].includes(style.overflowX);
    const text = (el.innerText || '').trim();
    if (clips && text && el.scrollWidth > el.clientWidth + 1)
      out.push(`${text.slice(0, 50)} (${el.closest('[data-testid]')?.dataset.testid}: ${el.clientWidth} of ${el.scrollWidth} px)`);
  }
  return out;
}"""


def truncated_texts(page) -> list[str]:
    """The texts the page shows cut off (see TRUNCATED_JS), each with its element and widths."""
    return page.evaluate(TRUNCATED_JS)


def wait_until_drawn(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run that draws the page has finished (no placeholder left), so what a check
    reads is the whole page, not the part drawn so far (on a busy 2-core machine a page takes seconds)."""
    page.wait_for_function("() => document.querySelector('[data-testid=stApp]')?.dataset.testScriptState === 'notRunning'"
                           " && !document.querySelector('[data-testid=stSkeleton]')", timeout=timeout_ms)
