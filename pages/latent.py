"""Latent explorer: walk between two latent points and watch one drawing morph into another."""

import random

import streamlit as st
import torch

from gan_core import images
from gan_core.app import explore, nav, projector, session
from gan_core.conditional import class_embeddings, sample_with_embedding
from gan_core.images import grid_image
from gan_core.latent import INTERPOLATIONS

STRIP_FRAMES = 10
GIF_FRAMES = 32

nav.require_router("latent")
st.title("Latent explorer", anchor=False)
st.caption("Every point **z** of the noise space is one drawing. Pick two points, then move between them: a generator "
           "that has learned well changes its drawing smoothly, without jumps or garbage in between.")

runs = [r for r in explore.runs_for_session() if not r.is_points]
if not runs:
    st.info("No image generator yet. Train one for a minute or two on the **Train** page (preset **mnist-dcgan**); "
            "when it is stopped it appears here. Pretrained generators in `assets/pretrained/` are listed here too.",
            icon=":material/info:")
    st.page_link(nav.page_path("train"), label="Go to Train", icon=":material/model_training:")
    st.stop()

run = explore.run_picker(runs, key="latent_run")
loaded, step = explore.generator_picker(run, key="latent_step")
generator = loaded.generator
seeds = session.session_value("latent_seeds", lambda: [1, 2])

row = st.container(horizontal=True, vertical_alignment="bottom")  # wraps when narrow, never truncates
if row.button("New start", icon=":material/casino:", help="Draw a new random start point z₀."):
    seeds[0] = random.randrange(1_000_000)
    projector.forget_end(0)
if row.button("New end", icon=":material/casino:", help="Draw a new random end point z₁."):
    seeds[1] = random.randrange(1_000_000)
    projector.forget_end(1)
if row.button("Swap", icon=":material/swap_horiz:"):
    seeds.reverse()
    projector.swap_ends()
mode = row.radio("Path", list(INTERPOLATIONS), horizontal=True, key="latent_mode",
                help="slerp follows the sphere where Gaussian z's live (their length stays typical); lerp takes the "
                     "straight line, which dips through the unusual short vectors near the centre.")
classes = None  # conditional runs: the class at each end (the label embedding is walked too)
if generator.num_classes:
    k = generator.num_classes
    c1, c2 = st.columns(2)
    start_class = c1.selectbox("Class at z₀", range(k), index=min(3, k - 1), key="latent_class_start",
                               format_func=lambda i: generator.class_names[i])
    end_class = c2.selectbox("Class at z₁", range(k), index=min(8, k - 1), key="latent_class_end",
                             format_func=lambda i: generator.class_names[i],
                             help="Pick the same class at both ends to change only the style.")
    classes = (start_class, end_class)
position = st.slider("Position between z₀ and z₁", 0.0, 1.0, 0.5, 0.01, key="latent_t")


def path_z(ends: tuple, mode: str, t: torch.Tensor) -> torch.Tensor:
    """Latent vectors at positions t (K, 1) on the path between the two ends (a seed, or a projected z)."""
    z0, z1 = (explore.latent(generator.config.z_dim, e) if isinstance(e, int) else torch.tensor(e) for e in ends)
    z0, z1 = z0.view(1, -1), z1.view(1, -1)
    return INTERPOLATIONS[mode](z0, z1, t)


def render(z: torch.Tensor, t: torch.Tensor, classes):
    """Samples of the loaded generator for z; conditional runs also move from one class's embedding
    to the other's at the same pace."""
    with loaded.lock:
        if classes is None:
            return generator.sample(z=z)
        table = class_embeddings(generator)
        embedding = table[classes[0]] * (1 - t) + table[classes[1]] * t
        return sample_with_embedding(generator, z, embedding)


@st.cache_data(max_entries=32, show_spinner=False)
def strip_png(path: str, mtime: float, step: int, seeds: tuple, mode: str, classes) -> bytes:
    """The whole path as one row of frames."""
    t = torch.linspace(0, 1, STRIP_FRAMES).unsqueeze(1)
    return images.png(grid_image(render(path_z(seeds, mode, t), t, classes), nrow=STRIP_FRAMES, scale=3))


@st.cache_data(max_entries=16, show_spinner=False)
def walk_gif(path: str, mtime: float, step: int, seeds: tuple, mode: str, classes) -> bytes:
    """The walk there and back as a looping GIF."""
    t = torch.linspace(0, 1, GIF_FRAMES).unsqueeze(1)
    frames = [images.single_image(x, side=196) for x in render(path_z(seeds, mode, t), t, classes)]
    return images.gif(frames + frames[-2:0:-1])


ends = projector.walk_ends(seeds, str(run.path))
key = (str(run.path), run.mtime, step, ends, mode, classes)
left, right = st.columns([1, 2], gap="large")
with left:
    with explore.Timer() as timer:
        t = torch.tensor([[position]])
        image = images.single_image(render(path_z(ends, mode, t), t, classes)[0], side=280)
    st.image(image, caption=f"t = {position:.2f}", width="stretch")
    st.caption(f"Rendered in {timer.ms:.0f} ms on {session.device_text()}.")
with right:
    st.markdown("**The whole path**, from z₀ (left) to z₁ (right)")
    st.image(strip_png(*key), width="stretch")
    st.markdown("**The walk, animated** (there and back)")
    animation = walk_gif(*key)
    st.image(animation, width=196)
    st.download_button("Download the walk (GIF)", animation, file_name=f"{run.name}-walk-{seeds[0]}-{seeds[1]}.gif",
                       mime="image/gif", icon=":material/download:")
st.caption(f"Generator: **{run.name}**, {run.dataset}, {'final, ' if step == run.step else ''}after {step:,} steps of "
           f"training. z₀: {projector.end_text(ends[0], seeds[0])}, z₁: {projector.end_text(ends[1], seeds[1])}, "
           f"z has {generator.config.z_dim} dimensions.")

st.divider()
projector.projection_panel(loaded, str(run.path), ("latent_class_start", "latent_class_end"))
