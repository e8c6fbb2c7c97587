"""The Latent explorer's "draw a digit, find it in latent space" panel: a drawing canvas or an uploaded
picture, the MNIST-style 28x28 version of it, G's closest image found by gan_core.projection, and
buttons that make it an end of the page's walk."""

from __future__ import annotations

from typing import Optional

import streamlit as st
from streamlit_drawable_canvas import st_canvas

from .. import images
from ..errors import GanError
from ..projection import STEPS, Projection, check_projectable, mnist_digit, project, read_upload
from ..uploads import IMAGE_SUFFIXES
from .explore import LoadedRun
from .session import device_text, session_value, set_session_value

CANVAS_SIDE = 224  # 8x MNIST's 28 px; fits beside the two results on a 1024 px screen
STROKE = 18  # canvas pixels: about 2 px at 28x28, MNIST's stroke width
FOUND_KEY = "latent_found"  # the walk's two ends: None (a random seed) or a projected point


def walk_ends(seeds: list[int], path: str) -> tuple:
    """The walk's two ends for `path`'s generator: a seed (int), or a projected z as a tuple of floats."""
    found = session_value(FOUND_KEY, lambda: [None, None])
    return tuple(f["z"] if f and f["path"] == path else s for f, s in zip(found, seeds))


def end_text(end, seed: int) -> str:
    """How an end of the walk is described in the caption."""
    return f"seed {seed}" if isinstance(end, int) else "your drawing"


def forget_end(index: int) -> None:
    """A new random seed replaces a projected end."""
    session_value(FOUND_KEY, lambda: [None, None])[index] = None


def swap_ends() -> None:
    """Swap the projected ends along with the seeds."""
    session_value(FOUND_KEY, lambda: [None, None]).reverse()


def _use_as_end(index: int, found: Projection, path: str, class_key: str) -> None:
    session_value(FOUND_KEY, lambda: [None, None])[index] = {"z": tuple(found.z.tolist()), "path": path}
    if found.label is not None:
        set_session_value(class_key, found.label)


def _target(source: str) -> Optional[tuple[str, object]]:
    """(what it is, a PIL image or RGBA array) from the canvas or the upload; None if nothing yet."""
    if source == "Draw":
        st.caption("Draw one digit with the mouse, large and centred (white on black, like MNIST).")
        canvas = st_canvas(stroke_width=STROKE, stroke_color="#FFFFFF", background_color="#000000",
                           width=CANVAS_SIDE, height=CANVAS_SIDE, drawing_mode="freedraw",
                           return_image_data=True, key="latent_canvas")
        return None if canvas.image_data is None else ("drawing", canvas.image_data)
    upload = st.file_uploader("A picture of one digit", type=[s.lstrip(".") for s in IMAGE_SUFFIXES],
                              key="latent_upload", help="Dark ink on light paper or light on dark; it is cropped, "
                                                        "scaled and centred like an MNIST digit.")
    if upload is None:
        return None
    return upload.name, read_upload(upload.name, upload.getvalue())


def projection_panel(loaded: LoadedRun, path: str, class_keys: tuple[str, str]) -> None:
    """The whole panel, for the generator `loaded` (an image run) of the run at `path`."""
    generator = loaded.generator
    st.subheader("Draw a digit, find it in latent space", anchor=False)
    try:
        check_projectable(generator)
    except GanError as exc:
        st.info(str(exc), icon=":material/info:")
        return
    st.caption("The generator can only draw what lives somewhere in its latent space. **Project** searches for "
               "the z whose drawing is closest to yours: a few hundred gradient steps from several random starts"
               + (", trying every class" if generator.num_classes else "") + ".")
    source = st.radio("Source", ["Draw", "Upload"], horizontal=True, key="latent_source", label_visibility="collapsed")
    left, middle, right = st.columns([1.5, 1, 1.4], gap="small")
    with left:
        try:
            target_input = _target(source)
            digit = None if target_input is None else mnist_digit(target_input[1], generator.sample_shape[-1])
        except GanError as exc:
            st.error(str(exc), icon=":material/error:")
            target_input = digit = None
    results = session_value("latent_projections", dict)
    with middle:
        if digit is None:
            st.info("Nothing to project yet." if source == "Draw" else "Upload a picture.", icon=":material/draw:")
            return
        st.image(images.single_image(digit, side=140), caption="Your digit, 28x28 as MNIST", width=140)
        pressed = st.button("Project", type="primary", icon=":material/search:", key="latent_project")
    key = (path, hash(digit.numpy().tobytes()))
    with right:
        if pressed:
            bar = st.progress(0.0, text="Searching latent space...")
            try:
                results[key] = project(generator, digit, lock=loaded.lock, progress=lambda f, d: bar.progress(
                    f, text=f"Step {round(f * STEPS)} of {STEPS}: best distance {d:.3f}"))
            except GanError as exc:
                st.error(str(exc), icon=":material/error:")
            bar.empty()
        found = results.get(key)
        if found is None:
            st.caption("Press **Project** to find it.")
            return
        st.image(images.single_image(found.image, side=140), caption="G's closest drawing", width=140)
        st.metric("Distance", f"{found.distance:.3f}", help="Pixel mean squared error plus the distance between the "
                  "bundled MNIST classifier's features of the two images (0 = identical).")
        st.caption(_found_text(found, generator.class_names))
    c1, c2 = st.columns(2)
    for index, (column, label) in enumerate(((c1, "Walk from it (z₀)"), (c2, "Walk to it (z₁)"))):
        column.button(label, key=f"latent_use_{index}", icon=":material/timeline:", width="stretch",
                      on_click=_use_as_end, args=(index, found, path, class_keys[index]))


def _found_text(found: Projection, class_names: tuple[str, ...]) -> str:
    """One line under the result: pixel difference, class (conditional runs), time and device."""
    parts = [f"pixels differ by {found.pixel_error:.1%} on average"]
    if found.label is not None:
        ranked = sorted(range(len(found.class_distances)), key=found.class_distances.__getitem__)
        runners = ", ".join(class_names[k] for k in [k for k in ranked if k != found.label][:2])
        parts.append(f"class **{class_names[found.label]}** (next closest: {runners})")
    if not found.uses_features:
        parts.append("pixel loss only (no classifier for this data set)")
    parts.append(f"{found.steps} steps in {found.seconds:.1f} s on {device_text()}")
    return "; ".join(parts) + "."
