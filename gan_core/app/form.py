"""The training form: a preset picker and a widget for every TrainConfig field (help texts from the
field metadata), turned into a validated config and submitted as this session's job."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Optional

import streamlit as st

from ..augment import AUGMENTATIONS
from ..config import ARCHS, DEVICES, LOSS_NAMES, PRECISIONS, PRESETS, TrainConfig
from ..data import DATASETS
from ..errors import GanError
from ..losses import LOSSES
from .session import has_session_value, manager, session_id, session_value, set_session_value

FIELDS = {f.name: f for f in fields(TrainConfig)}
FORM_FIELDS = tuple(FIELDS)  # every field reaches the form: nothing comes silently from the preset
TOY_PRESETS = [name for name, p in PRESETS.items() if p.overrides.get("arch") == "toy"]
IMAGE_ONLY = ("arch", "conditional", "embed_dim", "data_dir", "image_size", "channels", "augment")  # fixed for 2D toys


def field_help(name: str) -> str:
    """The help text of a TrainConfig field."""
    return FIELDS[name].metadata.get("help", "")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def preset_values(preset: str) -> dict[str, Any]:
    """The form values of a preset: its overrides over the defaults, with the default time budget."""
    return TrainConfig.from_dict(dict(PRESETS[preset].overrides)).with_default_budget().to_dict()


def load_preset_into_form(prefix: str, preset: str) -> None:
    """Set every form widget to the preset's value (a widget callback): a preset change resets all fields."""
    for name, value in preset_values(preset).items():
        kind = FIELDS[name].type
        set_session_value(_key(prefix, name), float(value) if kind in ("float", float) else value)


def _on_preset_change(prefix: str) -> None:
    load_preset_into_form(prefix, session_value(_key(prefix, "preset")))


def preset_picker(prefix: str, options: list[str], default: str) -> str:
    """Preset select box; choosing one loads it into the form. Shows the description and lesson."""
    key = _key(prefix, "preset")
    linked = st.query_params.get("preset")  # e.g. /train?preset=ring8-saturating, a link a teacher can share
    if linked in options and session_value(f"_{prefix}_linked_preset", "") != linked:
        set_session_value(f"_{prefix}_linked_preset", linked)
        set_session_value(key, linked)
        load_preset_into_form(prefix, linked)
    if not has_session_value(key) or session_value(key) not in options:
        set_session_value(key, default if default in options else options[0])
        load_preset_into_form(prefix, session_value(key))
    name = st.selectbox("Preset", options, key=key, on_change=_on_preset_change, args=(prefix,), persist_state="session",
                        format_func=lambda n: f"{n}  ·  lesson" if PRESETS[n].lesson else n,
                        help="A named starting configuration. Choosing one fills in every setting below.")
    preset = PRESETS[name]
    st.caption(preset.description)
    if preset.lesson:
        st.info(f"**What to watch:** {preset.lesson}", icon=":material/school:")
    return name


class _Widgets:
    """Widget makers bound to one form (prefix): each widget's key is `<prefix>_<field>`."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def number(self, name: str, label: str, col: Any, fmt: Optional[str] = None, step: Any = None) -> None:
        col.number_input(label, key=_key(self.prefix, name), help=field_help(name), format=fmt, step=step,
                         persist_state="session")

    def choice(self, name: str, label: str, col: Any, options: Any, **extra: Any) -> None:
        col.selectbox(label, options, key=_key(self.prefix, name), help=field_help(name), persist_state="session", **extra)


def config_form(prefix: str, toy: bool = False) -> dict[str, Any]:
    """Widgets for every TrainConfig field (2D toys: those that matter for toys; the others keep the
    preset's value, shown in a caption); returns the raw values.

    Values are not clamped here: `TrainConfig.validate()` is the one judge of what is allowed."""
    w = _Widgets(prefix)
    c1, c2, c3 = st.columns(3)
    w.choice("dataset", "Dataset", c1, [n for n, s in DATASETS.items() if s.kind == "points" or not toy],
             format_func=lambda n: f"{n}  ({DATASETS[n].description})")
    if not toy:
        w.choice("arch", "Architecture", c2, ARCHS)
        c3.toggle("Conditional", key=_key(prefix, "conditional"), help=field_help("conditional"),
                  persist_state="session")
    c1, c2, c3 = st.columns(3)
    w.choice("loss", "Loss", c1, LOSS_NAMES, format_func=lambda n: f"{n}: {LOSSES[n].description}")
    w.number("lr_g", "Learning rate G", c2, "%.1e", 1e-4)
    w.number("lr_d", "Learning rate D", c3, "%.1e", 1e-4)
    c1, c2, c3 = st.columns(3)
    w.number("batch_size", "Batch size", c1, step=16)
    w.number("d_steps", "D steps per G step", c2, step=1)
    w.number("label_smoothing", "Label smoothing", c3, "%.2f", 0.05)
    c1, c2, c3 = st.columns(3)
    w.number("z_dim", "Latent size (z)", c1, step=8)
    w.number("seed", "Seed", c2, step=1)
    w.number("seconds", "Training time budget (s, 0 = none)", c3, "%.0f", 60.0)
    with st.expander("More settings (the preset sets them all; a new preset resets them)"):
        _advanced(w, toy)
    values = {name: session_value(_key(prefix, name)) for name in FORM_FIELDS if has_session_value(_key(prefix, name))}
    if toy:
        fixed = ", ".join(f"{n} = {values.get(n)!r}" for n in IMAGE_ONLY if n in values)
        st.caption(f"Fixed for 2D toys: {fixed}.")
    return values


def _advanced(w: _Widgets, toy: bool) -> None:
    c1, c2, c3 = st.columns(3)
    w.number("g_width", "G width", c1, step=8)
    w.number("d_width", "D width", c2, step=8)
    w.number("steps", "Stop after (steps, 0 = never)", c3, step=100)
    c1, c2, c3 = st.columns(3)
    w.number("beta1_g", "Adam beta1 of G", c1, "%.3f", 0.1)
    w.number("beta2_g", "Adam beta2 of G", c2, "%.4f", 0.001)
    w.number("ema", "EMA of G weights", c3, "%.4f", 0.001)
    c1, c2, c3 = st.columns(3)
    w.number("beta1_d", "Adam beta1 of D", c1, "%.3f", 0.1)
    w.number("beta2_d", "Adam beta2 of D", c2, "%.4f", 0.001)
    w.number("dropout", "Dropout in D", c3, "%.2f", 0.05)
    c1, c2, c3 = st.columns(3)
    w.number("gp_weight", "Gradient-penalty weight", c1, "%.1f", 1.0)
    w.number("snapshot_every", "Save a sample grid every (steps)", c2, step=100)
    w.choice("precision", "Precision", c3, PRECISIONS)
    c1, c2, c3 = st.columns(3)
    w.number("r1_weight", "R1 penalty weight", c1, "%.2f", 0.1)
    w.number("r1_every", "R1 every (D updates)", c2, step=1)
    c3.toggle("Spectral norm in D", key=_key(w.prefix, "spectral_norm"), help=field_help("spectral_norm"),
              persist_state="session")
    c1, c2, c3 = st.columns(3)
    w.choice("device", "Device", c1, DEVICES)
    if not toy:
        w.choice("augment", "Augment what D sees", c3, list(AUGMENTATIONS))
        w.number("embed_dim", "Label embedding size", c2, step=4)
        c1, c2, c3 = st.columns(3)
        c1.text_input("Image folder (dataset = folder)", key=_key(w.prefix, "data_dir"), help=field_help("data_dir"),
                      persist_state="session")
        w.choice("image_size", "Image side (folder)", c2, [0, 28, 32, 64])
        w.choice("channels", "Channels (folder)", c3, [0, 1, 3])


def build_config(preset: str, values: dict[str, Any]) -> tuple[Optional[TrainConfig], str]:
    """The validated config of the preset with the form's values, or (None, the error message)."""
    try:
        return TrainConfig.from_dict({**PRESETS[preset].overrides, **values}).validate(), ""
    except GanError as exc:
        return None, str(exc)


def start_job(preset: str, values: dict[str, Any], start_paused: bool = False) -> bool:
    """Validate and submit this session's run; shows the error (and starts nothing) if invalid."""
    config, error = build_config(preset, values)
    if config is None:
        st.error(f"Not started: {error}", icon=":material/error:")
        return False
    try:
        manager().submit(session_id(), config, preset=preset, start_paused=start_paused)
    except GanError as exc:
        st.error(f"Not started: {exc}", icon=":material/error:")
        return False
    return True


# --- the B side of an A/B pair: A's values with the fields the user changes ----------------------------
FIELD_CHOICES: dict[str, Any] = {"dataset": list(DATASETS), "arch": list(ARCHS), "loss": list(LOSS_NAMES),
                                 "precision": list(PRECISIONS), "device": list(DEVICES), "image_size": [0, 28, 32, 64],
                                 "channels": [0, 1, 3]}
FIELD_FORMATS = {"lr_g": ("%.1e", 1e-4), "lr_d": ("%.1e", 1e-4), "label_smoothing": ("%.2f", 0.05),
                 "dropout": ("%.2f", 0.05), "ema": ("%.4f", 0.001), "seconds": ("%.0f", 60.0), "gp_weight": ("%.1f", 1.0)}


def field_widget(prefix: str, name: str, col: Any, default: Any) -> Any:
    """One widget for the TrainConfig field `name` (key `<prefix>_<name>`), starting at `default` the first
    time it is drawn; returns its value."""
    key = _key(prefix, name)
    kind = FIELDS[name].type
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    if not has_session_value(key):
        set_session_value(key, float(default) if kind == "float" else default)
    label, help_text = name.replace("_", " ").capitalize(), field_help(name)
    if name in FIELD_CHOICES:
        options = FIELD_CHOICES[name]
        return col.selectbox(label, options, key=key, help=help_text)
    if kind == "bool":
        return col.toggle(label, key=key, help=help_text)
    if kind in ("int", "float"):
        fmt, step = FIELD_FORMATS.get(name, (None, None))
        return col.number_input(label, key=key, help=help_text, format=fmt, step=step)
    return col.text_input(label, key=key, help=help_text)


def start_pair(preset: str, values_a: dict[str, Any], values_b: dict[str, Any], preset_b: str = "",
               start_paused: bool = False) -> bool:
    """Validate and submit this session's A/B pair (A: the preset with `values_a`; B: `preset_b`, else the
    same preset, with `values_b`); shows the error (and starts nothing) if either side is invalid."""
    preset_b = preset_b or preset
    config_a, error_a = build_config(preset, values_a)
    config_b, error_b = build_config(preset_b, values_b)
    if config_a is None or config_b is None:
        side, error = ("A", error_a) if config_a is None else ("B", error_b)
        st.error(f"Not started: side {side}: {error}", icon=":material/error:")
        return False
    try:
        manager().submit_pair(session_id(), config_a, config_b, preset_a=preset, preset_b=preset_b,
                              start_paused=start_paused)
    except GanError as exc:
        st.error(f"Not started: {exc}", icon=":material/error:")
        return False
    return True
