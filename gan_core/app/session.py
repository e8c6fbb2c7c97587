"""This browser session: its state (every read goes through `session_value`), its id and cookie, its
training job, and one-shot messages. The only module that touches `st.session_state` directly."""

from __future__ import annotations

import time
from typing import Any, Optional

import streamlit as st

from ..device import describe_device, resolve_device
from ..identity import grant_teacher, is_teacher as _is_teacher, issue_session, owner_id, session_from_cookie
from ..live import Job, JobManager, cpu_cores, get_manager

SESSION_COOKIE = "gan_playground_session"


def session_value(key: str, default: Any = None) -> Any:
    """This browser session's value for `key`, set to `default` first if absent (a callable default is called)."""
    if key not in st.session_state:
        st.session_state[key] = default() if callable(default) else default
    return st.session_state[key]


def set_session_value(key: str, value: Any) -> None:
    """Store a value in this browser session's state."""
    st.session_state[key] = value


def has_session_value(key: str) -> bool:
    """Whether this session holds a value for `key` (a widget's value counts)."""
    return key in st.session_state


def peek_session_value(key: str, default: Any = None) -> Any:
    """This session's value for `key`, or `default` without storing it (safe before a widget of that key
    is drawn: storing a value first would override the widget's own default)."""
    return st.session_state[key] if key in st.session_state else default


def session_id() -> str:
    """This browser's secret session id (its training job is found by it). Kept, signed by the server, in
    a session cookie (see `remember_session`), so a reload finds the same run again; a cookie value the
    server did not issue starts a fresh session. Never written to a file or shown on a page."""
    def fresh() -> str:
        cookie = _cookie()
        sid = session_from_cookie(cookie)
        if sid is None:
            sid, cookie = issue_session()
        set_session_value("_session_cookie", cookie)
        return sid

    return session_value("session_id", fresh)


def owner() -> str:
    """The id this session's runs are saved under: a one-way HMAC of the session secret."""
    return owner_id(session_id())


def _cookie() -> str:
    """The session cookie sent by the browser ('' without one, or without a browser: tests, bare mode)."""
    try:
        value = st.context.cookies.get(SESSION_COOKIE, "")
    except Exception:
        return ""
    return value if isinstance(value, str) else ""


def remember_session() -> None:
    """Write the session id into a browser session cookie once (st.context.cookies only reads them)."""
    session_id()
    token = session_value("_session_cookie", "")
    if _cookie() != token and not session_value("_cookie_written", False):
        set_session_value("_cookie_written", True)
        with st.sidebar:
            st.html(f"<script>document.cookie = '{SESSION_COOKIE}={token}; path=/; SameSite=Strict';</script>",
                    unsafe_allow_javascript=True)


def is_teacher() -> bool:
    """Whether this session gave the teacher key ($GAN_TEACHER_KEY): the class view, and acting on any run."""
    return _is_teacher(session_id())


def become_teacher(entered: str) -> bool:
    """Check the teacher key this session entered; True (and the teacher from now on) if it is right."""
    return grant_teacher(session_id(), entered)


def manager() -> JobManager:
    """The process-wide training job manager."""
    return get_manager()


def current_job() -> Optional[Job]:
    """This session's training job (running or last finished), if any."""
    return manager().job_for(session_id())


def shared_view(job: Job, reader: str, max_age: float) -> Any:
    """The view of `job` that this session's sidebar and page draw alike. The page's live fragment and the
    sidebar's poll at the same rate, so their runs come in pairs: the first of a pair builds the view, the
    other (a different `reader`) draws that same view once, if it is younger than `max_age` seconds and the
    job is still in the state it shows. So both show the same step."""
    kept = peek_session_value("_shared_view")
    now = time.monotonic()
    if (kept is not None and kept["job"] == job.id and kept["builder"] != reader and reader not in kept["readers"]
            and now - kept["built"] < max_age and kept["view"].state == job.state):
        kept["readers"].add(reader)
        return kept["view"]
    view = job.view()
    set_session_value("_shared_view", {"job": job.id, "built": now, "view": view, "builder": reader, "readers": set()})
    return view


def forget_shared_view() -> None:
    """Drop the shared view (after a command: the next draw must show its effect)."""
    set_session_value("_shared_view", None)


PRESENTER_KEY = "presenter_mode"


def presenter_mode() -> bool:
    """Whether this session shows the app for a projector: sidebar collapsed, larger charts and grids (the
    sidebar's "Presenter mode" toggle, whose widget state lives under PRESENTER_KEY)."""
    return bool(peek_session_value(PRESENTER_KEY, False))


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
