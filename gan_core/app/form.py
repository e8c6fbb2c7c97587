"""The training form: a preset picker and a widget for every TrainConfig field (help texts from the
field metadata), turned into a validated config and submitted as this session's job."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, Optional
from urllib.parse import urlencode

import streamlit as st

from ..augment import AUGMENTATIONS
from ..config import ARCHS, DEVICES, LOSS_NAMES, PRECISIONS, PRESETS, TrainConfig
from ..data import DATASETS
from ..errors import GanError
from ..links import FIELD_NAMES, LinkError, SharedSetup, link_params, parse_link, preset_values
from ..losses import LOSSES
from .nav import just_arrived
from .session import has_session_value, manager, session_id, session_value, set_session_value

FIELDS = {f.name: f for f in fields(TrainConfig)}
FORM_FIELDS = tuple(FIELDS)  # every field reaches the form: nothing comes silently from the preset
TOY_PRESETS = [name for name, p in PRESETS.items() if p.overrides.get("arch") == "toy"]
IMAGE_ONLY = ("arch", "conditional", "embed_dim", "data_dir", "image_size", "channels", "augment", "d_batchnorm")  # fixed for 2D toys


def field_help(name: str) -> str:
    """The help text of a TrainConfig field."""
    return FIELDS[name].metadata.get("help", "")


def _key(prefix: str, name: str) -> str:
    return f"{prefix}_{name}"


def load_preset_into_form(prefix: str, preset: str, values: Optional[dict[str, Any]] = None) -> None:
    """Set every form widget to the preset's value, or to `values` (a widget callback): a preset change
    resets all fields."""
    for name, value in (values or preset_values(preset)).items():
        kind = FIELDS[name].type
        set_session_value(_key(prefix, name), float(value) if kind in ("float", float) else value)


def _on_preset_change(prefix: str) -> None:
    load_preset_into_form(prefix, session_value(_key(prefix, "preset")))


def preset_picker(prefix: str, options: list[str], default: str, share_links: bool = False) -> str:
    """Preset select box; choosing one loads it into the form. Shows the description and lesson. With
    `share_links`, the page's URL is a whole setup (see gan_core/links.py and `sync_link`), else only
    `?preset=NAME` is read."""
    key = _key(prefix, "preset")
    if share_links:
        _apply_link(prefix, options, default)
    else:
        linked = st.query_params.get("preset")  # e.g. /compare?preset=ring8-saturating
        if linked in options and session_value(f"_{prefix}_linked_preset", "") != linked:
            set_session_value(f"_{prefix}_linked_preset", linked)
            set_session_value(key, linked)
            load_preset_into_form(prefix, linked)
    if not has_session_value(key) or session_value(key) not in options:
        set_session_value(key, default if default in options else options[0])
        load_preset_into_form(prefix, session_value(key))
    locked = bool(locked_values(prefix))
    name = st.selectbox("Preset", options, key=key, on_change=_on_preset_change, args=(prefix,), persist_state="session",
                        disabled=locked,
                        format_func=lambda n: f"{n}  ·  lesson" if PRESETS[n].lesson else n,
                        help="A named starting configuration. Choosing one fills in every setting below.")
    preset = PRESETS[name]
    st.caption(preset.description)
    if preset.lesson:
        st.info(f"**What to watch:** {preset.lesson}", icon=":material/school:")
    if locked:
        st.caption(f"The link you opened locks the preset and {', '.join(sorted(locked_values(prefix)))}: "
                   "they are shown but not editable.")
    return name


# --- share links: the page's URL is the form's setup (gan_core/links.py) ----------------------------------
def _url_params() -> dict[str, list[str]]:
    return {name: st.query_params.get_all(name) for name in st.query_params}


def _apply_link(prefix: str, options: list[str], default: str) -> None:
    """Fill the form from the URL when it carries a setup: on arrival from another page (a link) or in a
    new session (a shared link, a reload), or when this session did not write that URL itself. A URL
    without parameters (the menu) keeps the form as it is; so does a URL this page wrote, even if a rerun
    brings an older one back before the browser took the newer one. A link that cannot be used says why
    once, and the form shows the defaults."""
    params = _url_params()
    written = session_value(f"_{prefix}_links_written", list)
    if not params or (params in written and not just_arrived()):
        return
    written[:] = written[-19:] + [params]  # applied once: a rerun that brings it back does not reset the form
    try:
        setup = parse_link(params, default)
        if setup.preset not in options:
            raise LinkError(f"the link's preset {setup.preset!r} is not offered on this page")
    except LinkError as exc:
        set_session_value(f"_{prefix}_link_error", str(exc))
        setup = SharedSetup(default, preset_values(default))
    set_session_value(_key(prefix, "preset"), setup.preset)
    load_preset_into_form(prefix, setup.preset, setup.values)
    set_session_value(f"_{prefix}_locked", {n: setup.values[n] for n in setup.locked})


def locked_values(prefix: str) -> dict[str, Any]:
    """The fields a shared link locked in this form, with their values."""
    return session_value(f"_{prefix}_locked", dict)


def link_error(prefix: str) -> str:
    """Why the link this form was opened with could not be used ('' if it could), said once."""
    message = session_value(f"_{prefix}_link_error", "")
    set_session_value(f"_{prefix}_link_error", "")
    return message


def sync_link(prefix: str, preset: str, values: dict[str, Any]) -> None:
    """Keep the page's URL equal to the form's setup (when it is valid), so that a reload restores the
    edits and the URL itself can be shared. Writing the URL does not rerun the page."""
    config, _ = build_config(preset, values)
    if config is None:
        return
    params = link_params(preset, values, locked_values(prefix))
    as_read = {k: [v] for k, v in params.items()}
    written = session_value(f"_{prefix}_links_written", list)
    if as_read not in written:
        written[:] = written[-19:] + [as_read]
    if as_read != _url_params():
        st.query_params.from_dict(params)


def share_panel(prefix: str, preset: str, values: dict[str, Any]) -> None:
    """'Copy link': the URL of this setup, optionally with fields locked, to hand to a class."""
    with st.popover("Copy link", icon=":material/link:", help="A link that opens this page with these settings."):
        lock = st.multiselect("Lock these settings for whoever opens the link (shown, not editable)", FIELD_NAMES,
                              key=f"{prefix}_share_lock", placeholder="nothing locked")
        params = link_params(preset, values, set(lock) | set(locked_values(prefix)))
        st.code(f"{(st.context.url or '').split('?')[0]}?{urlencode(params)}", language=None, wrap_lines=True)
        st.caption("The preset and every setting you changed from it. Copy it with the button at the right of the box.")


class _Widgets:
    """Widget makers bound to one form (prefix): each widget's key is `<prefix>_<field>`."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def locked(self, name: str) -> bool:
        """Whether a shared link locked the field (shown, not editable)."""
        return name in locked_values(self.prefix)

    def number(self, name: str, label: str, col: Any, fmt: Optional[str] = None, step: Any = None) -> None:
        col.number_input(label, key=_key(self.prefix, name), help=field_help(name), format=fmt, step=step,
                         persist_state="session", disabled=self.locked(name))

    def choice(self, name: str, label: str, col: Any, options: Any, **extra: Any) -> None:
        col.selectbox(label, options, key=_key(self.prefix, name), help=field_help(name), persist_state="session",
                      disabled=self.locked(name), **extra)

    def toggle(self, name: str, label: str, col: Any) -> None:
        col.toggle(label, key=_key(self.prefix, name), help=field_help(name), persist_state="session",
                   disabled=self.locked(name))


def _describe_choices(prefix: str) -> None:
    """One line saying what the chosen dataset and loss are (the select boxes show their names only)."""
    dataset, loss = session_value(_key(prefix, "dataset"), ""), session_value(_key(prefix, "loss"), "")
    parts = [f"**{dataset}**: {DATASETS[dataset].description}" if dataset in DATASETS else "",
             f"**{loss}** loss: {LOSSES[loss].description}" if loss in LOSSES else ""]
    st.caption(" · ".join(p for p in parts if p))


def config_form(prefix: str, toy: bool = False) -> dict[str, Any]:
    """Widgets for every TrainConfig field (2D toys: those that matter for toys; the others keep the
    preset's value, shown in a caption); returns the raw values.

    Values are not clamped here: `TrainConfig.validate()` is the one judge of what is allowed."""
    w = _Widgets(prefix)
    c1, c2, c3 = st.columns(3)
    # The boxes show bare names (a description in a third of 1024 px is cut off); the chosen ones are described below.
    w.choice("dataset", "Dataset", c1, [n for n, s in DATASETS.items() if s.kind == "points" or not toy])
    if not toy:
        w.choice("arch", "Architecture", c2, ARCHS)
        w.toggle("conditional", "Conditional", c3)
    c1, c2, c3 = st.columns(3)
    w.choice("loss", "Loss", c1, LOSS_NAMES)
    w.number("lr_g", "Learning rate G", c2, "%.1e", 1e-4)
    w.number("lr_d", "Learning rate D", c3, "%.1e", 1e-4)
    c1, c2, c3 = st.columns(3)
    w.number("batch_size", "Batch size", c1, step=16)
    w.number("d_steps", "D steps per G step", c2, step=1)
    w.number("label_smoothing", "Label smoothing", c3, "%.2f", 0.05)
    _describe_choices(prefix)
    c1, c2, c3 = st.columns(3)
    w.number("z_dim", "Latent size (z)", c1, step=8)
    w.number("seed", "Seed", c2, step=1)
    w.number("seconds", "Training time budget (s, 0 = none)", c3, "%.0f", 60.0)
    with st.expander("More settings (the preset sets them all; a new preset resets them)"):
        _advanced(w, toy)
    values = {name: session_value(_key(prefix, name)) for name in FORM_FIELDS if has_session_value(_key(prefix, name))}
    values.update(locked_values(prefix))  # the link's values, whatever a browser sends for a disabled widget
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
    w.toggle("spectral_norm", "Spectral norm in D", c3)
    c1, c2, c3 = st.columns(3)
    w.choice("device", "Device", c1, DEVICES)
    if not toy:
        w.choice("augment", "Augment what D sees", c3, list(AUGMENTATIONS))
        w.number("embed_dim", "Label embedding size", c2, step=4)
        w.toggle("d_batchnorm", "Batch-norm in D (DCGAN)", st.columns([2, 1])[0])  # alone in its row: room for the label
        c1, c2, c3 = st.columns(3)
        c1.text_input("Image folder (dataset = folder)", key=_key(w.prefix, "data_dir"), help=field_help("data_dir"),
                      persist_state="session", disabled=w.locked("data_dir"))
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
