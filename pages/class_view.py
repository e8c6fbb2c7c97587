"""Class view (teacher only, on a server with GAN_TEACHER_KEY): every student's run live, with Stop."""

import streamlit as st

from gan_core.app import class_view, nav

nav.require_router("teacher")
st.title("Class view", anchor=False)
st.caption("Every run on this server, live: the newest samples, the step, the quality numbers, queued or training. "
           "Stop any of them; it is saved, and its student sees that the teacher stopped it.")
if class_view.teacher_gate():
    class_view.live_wall()
