"""The page registry (the one list of pages: the router, links between pages and the tests all read
it) and the routing helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from ..identity import teacher_key_set
from .session import session_value, set_session_value


@dataclass(frozen=True)
class PageInfo:
    """One page of the app: its key, its file (relative to playground.py), its menu entry."""

    key: str
    path: str
    title: str
    icon: str
    section: str
    teacher: bool = False  # exists only on a server with a teacher key ($GAN_TEACHER_KEY)
    live: bool = False  # draws this session's run live (step, state): the sidebar beside it polls less, shows no step


PAGES: tuple[PageInfo, ...] = (
    PageInfo("home", "pages/home.py", "Home", ":material/home:", ""),
    PageInfo("lessons", "pages/lessons.py", "Lessons", ":material/school:", "Watch it learn", live=True),
    PageInfo("train", "pages/train.py", "Train", ":material/model_training:", "Watch it learn", live=True),
    PageInfo("lab", "pages/lab.py", "2D lab", ":material/scatter_plot:", "Watch it learn", live=True),
    PageInfo("compare", "pages/compare.py", "A/B compare", ":material/compare_arrows:", "Watch it learn", live=True),
    PageInfo("latent", "pages/latent.py", "Latent explorer", ":material/gesture:", "Explore what it learned"),
    PageInfo("class", "pages/class_control.py", "Class control", ":material/category:", "Explore what it learned"),
    PageInfo("runs", "pages/runs.py", "Runs", ":material/folder_open:", "Explore what it learned"),
    PageInfo("teacher", "pages/class_view.py", "Class view", ":material/groups:", "Teacher", teacher=True),
)
_BY_KEY = {p.key: p for p in PAGES}


def page_info(key: str) -> PageInfo:
    """The registry entry of the page `key`."""
    return _BY_KEY[key]


def page_path(key: str) -> str:
    """The file of the page `key` (for st.page_link and st.switch_page)."""
    return _BY_KEY[key].path


def available_pages() -> tuple[PageInfo, ...]:
    """The pages this server has: the teacher's pages only when a teacher key is set."""
    return tuple(p for p in PAGES if not p.teacher or teacher_key_set())


def navigation() -> tuple[str, Any]:
    """Build the menu from the available pages and run st.navigation; returns the current page's key and
    page (the caller runs it with `page.run()`)."""
    available = available_pages()
    pages = {p.key: st.Page(p.path, title=p.title, icon=p.icon, default=p.key == PAGES[0].key) for p in available}
    sections: dict[str, list] = {}
    for p in available:
        sections.setdefault(p.section, []).append(pages[p.key])
    current = st.navigation(sections)
    return next(k for k, page in pages.items() if page == current), current


def mark_routed(current: str) -> None:
    """Called by playground.py after st.navigation with the current page's key: pages may now run.
    Finishes a pending redirect."""
    set_session_value("_routed", True)
    wanted, params = session_value("_wanted_page", None) or ("", {})
    if wanted:
        set_session_value("_wanted_page", None)
        if wanted in _BY_KEY and wanted != current:
            st.switch_page(page_path(wanted), query_params=params)


def just_arrived() -> bool:
    """Whether this run of the page is its first since another page (or the session's first run)."""
    return session_value("_arrived", True)


def require_router(page: str) -> None:
    """Run a page only inside playground.py's navigation. Right after a server start, before any session
    has called st.navigation, Streamlit runs a deep-linked file of pages/ on its own: go through the
    router first, then come back here."""
    if not session_value("_routed", False):
        params = st.query_params.to_dict()
        set_session_value("_wanted_page", (page, params))
        st.switch_page("playground.py", query_params=params)
    set_session_value("_arrived", session_value("_page", None) != page)  # see just_arrived
    set_session_value("_page", page)
