"""GAN Playground: watch a generator (the counterfeiter) learn against a discriminator (the police).

Run with `streamlit run playground.py`. This file is the router: page setup, the navigation (pages
listed in gan_core/app/nav.py), and the sidebar status of this session's run (whose polling is also
the run's heartbeat).
"""

import streamlit as st

from gan_core.app import nav, session, sidebar
from gan_core.paths import ASSETS_DIR

# Presenter mode collapses the sidebar; leaving it opens the sidebar again.
st.set_page_config(page_title="GAN Playground", page_icon=str(ASSETS_DIR / "icon.png"), layout="wide",
                   initial_sidebar_state="collapsed" if session.presenter_mode() else "expanded")

key, page = nav.navigation()
nav.mark_routed(key)
session.remember_session()
sidebar.sidebar_status(live_page=nav.page_info(key).live)
page.run()
