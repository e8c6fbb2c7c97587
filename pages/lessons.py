"""Lessons: the concepts of the course in teaching order, each one click away, its moment marked on the chart."""

import streamlit as st

from gan_core.app import lessons_view, nav

nav.require_router("lessons")
st.title("Lessons", anchor=False)
st.caption("One card per idea, in the order a class meets them. Each says what to watch; one click starts it (an A/B "
           "pair where the lesson is a comparison: the two sides differ only in the cause named) and the chart marks "
           "the moment it shows. Each one shows its effect within two minutes on a 2-core CPU.")
lessons_view.page()
