"""The Streamlit layer: the only code that imports streamlit or plotly. Pages in pages/ are thin
files that call into these modules; all training and image work lives in gan_core and gan_core.live.

    session.py    session state (read through one helper), the session id and cookie, this session's job
    nav.py        the page registry and the router helpers
    sidebar.py    this session's run in the sidebar (and its heartbeat)
    form.py       the preset picker and the training form (every TrainConfig field)
    dashboard.py  the live dashboard pieces, polled with st.fragment(run_every=...)
    compare.py    the A/B compare page: B's changes, lesson pairs, both sides side by side
    explore.py    picking and loading trained generators for the explorer pages
    charts.py     the plotly figures
"""
