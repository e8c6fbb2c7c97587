"""GAN Playground: watch a generator (the counterfeiter) learn against a discriminator (the police).

Run with `streamlit run playground.py`. This file is the router: page setup, the navigation, and
the sidebar status of this session's run (whose polling is also the run's heartbeat).
"""

import streamlit as st

import ui
from gan_core.paths import ASSETS_DIR

st.set_page_config(page_title="GAN Playground", page_icon=str(ASSETS_DIR / "icon.png"), layout="wide")

P = ui.PAGES
pages = {
    "home": st.Page(P["home"], title="Home", icon=":material/home:", default=True),
    "train": st.Page(P["train"], title="Train", icon=":material/model_training:"),
    "lab": st.Page(P["lab"], title="2D lab", icon=":material/scatter_plot:"),
    "latent": st.Page(P["latent"], title="Latent explorer", icon=":material/gesture:"),
    "class": st.Page(P["class"], title="Class control", icon=":material/category:"),
    "runs": st.Page(P["runs"], title="Runs", icon=":material/folder_open:"),
}
sections = {
    "": [pages["home"]],
    "Watch it learn": [pages["train"], pages["lab"]],
    "Explore what it learned": [pages["latent"], pages["class"], pages["runs"]],
}
current = st.navigation(sections)
ui.mark_routed(next(key for key, page in pages.items() if page == current))
ui.remember_session()
ui.sidebar_status()
current.run()
