"""The sidebar on every page: the presenter toggle, this session's run (state, step, queue position) and
the server's training slots. Its polling is also the run's heartbeat while the run is active."""

from __future__ import annotations

import streamlit as st

from .dashboard import STATE_BADGES, poll_seconds
from .session import PRESENTER_KEY, current_job, device_text, forget_shared_view, heartbeat, manager, shared_view

HEARTBEAT_SECONDS = 10.0  # the box's poll beside a live page: only the run's heartbeat (its step is on the page)


def sidebar_status(live_page: bool = False) -> None:
    """Show the presenter toggle and this session's run in the sidebar; keep the run's heartbeat going while
    it is active. The run's box polls as often as the live pages (`dashboard.poll_seconds`) and draws the
    same view as they do (see `session.shared_view`). Beside a `live_page`, which shows the run's state and
    step itself, the box leaves them to the page and polls only as the heartbeat (every HEARTBEAT_SECONDS):
    each fragment run costs a browser CPU time however little it draws."""
    forget_shared_view()  # a full run starts from a fresh view: the sidebar builds it, the page reuses it
    job = current_job()
    active = job is not None and job.state.active
    every = HEARTBEAT_SECONDS if live_page else poll_seconds()
    with st.sidebar:
        st.toggle("Presenter mode", key=PRESENTER_KEY, help="For a projector: hides this sidebar (open it again with "
                  "the arrow at the top left) and draws the charts and sample grids larger.")
        st.fragment(run_every=every if active else None)(_sidebar_body)(live_page and active, every)


def _sidebar_body(on_the_page: bool, every: float) -> None:
    heartbeat()
    job = current_job()
    load = manager().load()
    with st.container(border=True):
        if job is None:
            st.caption("No run yet in this session.")
        elif on_the_page:
            st.markdown("**Your run**")
            st.caption(f"{job.name}  \nits state and step: on this page")
        else:
            view = shared_view(job, "sidebar", every)
            text, colour = STATE_BADGES[view.state]
            st.markdown(f"**Your run** :{colour}-badge[{text}]")
            position = f", queue position {view.queue_position}" if view.queue_position else ""
            st.caption(f"{view.name}  \nstep {view.step:,}{position}")
        st.caption(f"Runs training: {load.admitted} of at most {load.max_admitted} ({load.slots} slot"
                   f"{'s' * (load.slots != 1)}, {load.mode} mode), {load.queued} waiting  \n"
                   f"Device: {device_text()}")
