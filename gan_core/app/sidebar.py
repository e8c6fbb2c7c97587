"""The sidebar on every page: this session's run (state, step, queue position) and the server's
training slots. Its polling is also the run's heartbeat while the run is active."""

from __future__ import annotations

import streamlit as st

from .dashboard import STATE_BADGES
from .session import current_job, device_text, heartbeat, manager

SIDEBAR_POLL_SECONDS = 5.0


def sidebar_status() -> None:
    """Show this session's run in the sidebar and keep its heartbeat going while it is active."""
    job = current_job()
    active = job is not None and job.state.active
    with st.sidebar:
        st.fragment(run_every=SIDEBAR_POLL_SECONDS if active else None)(_sidebar_body)()


def _sidebar_body() -> None:
    heartbeat()
    job = current_job()
    load = manager().load()
    with st.container(border=True):
        if job is None:
            st.caption("No run yet in this session.")
        else:
            view = job.view()
            text, colour = STATE_BADGES[view.state]
            st.markdown(f"**Your run** :{colour}-badge[{text}]")
            position = f", queue position {view.queue_position}" if view.queue_position else ""
            st.caption(f"{view.name}  \nstep {view.step:,}{position}")
        st.caption(f"Runs training: {load.admitted} of at most {load.max_admitted} ({load.slots} slot"
                   f"{'s' * (load.slots != 1)}, {load.mode} mode), {load.queued} waiting  \n"
                   f"Device: {device_text()}")
