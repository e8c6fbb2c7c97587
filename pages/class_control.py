"""Class control: tell a conditional generator which class to draw; keep the style, change the class."""

import random

import streamlit as st
import torch

from gan_core import images
from gan_core.app import explore, nav, session
from gan_core.conditional import class_rows, mix_classes, morph_classes
from gan_core.images import grid_image

COLUMNS = 8

nav.require_router("class")
st.title("Class control", anchor=False)
st.caption("A **conditional** GAN gets the class as a second input next to the noise z. The noise decides the *style* "
           "(slant, thickness, shape), the class decides *what* is drawn. Keep z, change the class, and the style stays.")

runs = [r for r in explore.runs_for_session() if r.conditional]
if not runs:
    st.info("No conditional generator yet. On the **Train** page choose the preset **mnist-cdcgan** (digits you can "
            "choose) and train it for a few minutes; when it is stopped it appears here. Pretrained ones in "
            "`assets/pretrained/` are listed here too.", icon=":material/info:")
    st.page_link(nav.page_path("train"), label="Go to Train", icon=":material/model_training:")
    st.stop()

run = explore.run_picker(runs, key="class_run")
loaded, step = explore.generator_picker(run, key="class_step")
generator = loaded.generator
names = generator.class_names
classes = list(range(len(names)))

chosen = st.segmented_control("Class to draw", classes, format_func=lambda k: names[k], default=0, key="class_pick",
                              help="The label given to the generator.")
chosen = 0 if chosen is None else chosen
c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
if c2.button("Re-roll style", icon=":material/casino:", width="content"):
    session.set_session_value("class_seed", random.randrange(1000))
session.session_value("class_seed", 7)
seed = c1.slider("Style: latent seed z", 0, 999, key="class_seed",
                 help="Each seed is one random z. The same z gives the same style for every class.")


def styles(seed: int) -> torch.Tensor:
    """COLUMNS latent vectors derived from one seed."""
    return torch.stack([explore.latent(generator.config.z_dim, seed * COLUMNS + i) for i in range(COLUMNS)])


z = styles(seed)
left, right = st.columns([1, 2.3], gap="large")
with left:
    with loaded.lock:
        one = generator.sample(z=z[:1], labels=chosen)[0]
        variations = generator.sample(z=z, labels=chosen)
    st.image(images.single_image(one, side=240), caption=f"“{names[chosen]}”, style {seed}", width=240)
    st.image(images.upscale(grid_image(variations, nrow=COLUMNS // 2), 220), width="stretch",
             caption=f"“{names[chosen]}” in {COLUMNS} styles")
with right:
    st.markdown("**Same styles, every class**: each column keeps its z, each row asks for another class.")
    with loaded.lock:
        rows = class_rows(generator, z)
    st.image(images.labelled_rows(rows, names, COLUMNS, highlight=chosen), width="stretch")

st.subheader("Morph between two classes", anchor=False)
st.caption("The class reaches the generator as a learned **embedding** vector. Slide that vector from one class's to "
           "another's, with z fixed, and watch the drawing change its mind.")
c1, c2, c3 = st.columns([1, 1, 2], vertical_alignment="bottom")
a = c1.selectbox("From", classes, index=chosen, format_func=lambda k: names[k], key="morph_from")
b = c2.selectbox("To", classes, index=(chosen + 1) % len(classes), format_func=lambda k: names[k], key="morph_to")
alpha = c3.slider("Mix", 0.0, 1.0, 0.5, 0.05, key="morph_alpha", help="0 = the first class, 1 = the second.")
with loaded.lock:
    strip = morph_classes(generator, z[0], a, b, steps=9)
    middle = mix_classes(generator, z[0], a, b, alpha)
left, right = st.columns([1, 3], gap="large")
left.image(images.single_image(middle, side=200), caption=f"{1 - alpha:.0%} {names[a]} + {alpha:.0%} {names[b]}", width=200)
right.image(images.upscale(grid_image(strip, nrow=9), 110), caption=f"{names[a]} → {names[b]}", width="stretch")
st.caption(f"Generator: **{run.name}** after {step:,} steps of training{' (final)' if step == run.step else ''}.")
