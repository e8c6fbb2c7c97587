"""Share links: a training setup (a preset, the fields changed from it, the fields locked) as the query
parameters of a URL, and back. No Streamlit here: the app's form (gan_core/app/form.py) reads and writes them.

A link reads ``train?preset=ring8-saturating&lr_g=0.002&d_steps=3&lock=loss,d_steps``:

- ``preset``: the preset the form starts from;
- one parameter per TrainConfig field that differs from the preset's form value, written as the command
  line writes it (``--lr-g 0.002``, ``--conditional`` -> ``true``);
- ``lock``: fields shown but not editable, comma-separated (``all`` for every field); a locked setup keeps
  its preset too. A lock guides a class, it is no security: whoever edits the URL can drop it.

Values go through `TrainConfig.from_dict` (the type conversion the CLI and checkpoints use) and
`TrainConfig.validate` (the ranges): a link that fails is a `LinkError`, one line naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence, Union

from .config import PRESETS, TrainConfig
from .errors import ConfigError

FIELD_NAMES = tuple(f.name for f in fields(TrainConfig))
PRESET_PARAM = "preset"
LOCK_PARAM = "lock"
LOCK_ALL = "all"
MAX_LINK_CHARS = 4000  # a setup changes at most every field: about 1,000 characters
MAX_VALUE_CHARS = 200

ParamValue = Union[str, Sequence[str]]


class LinkError(ConfigError):
    """A share link cannot be used (unknown setting, a value out of range, junk, too long)."""


@dataclass(frozen=True)
class SharedSetup:
    """What a link opens: the preset, the form's value of every TrainConfig field, the locked fields."""

    preset: str
    values: dict[str, Any]
    locked: frozenset[str] = frozenset()


def preset_values(preset: str) -> dict[str, Any]:
    """The form values of a preset: its overrides over the defaults, with the default time budget."""
    return TrainConfig.from_dict(dict(PRESETS[preset].overrides)).with_default_budget().to_dict()


def _text(value: Any) -> str:
    """A field value as the command line writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value)) if abs(value) < 1e15 else repr(value)
    return str(value)


def link_params(preset: str, values: Mapping[str, Any], locked: Iterable[str] = ()) -> dict[str, str]:
    """The query parameters of a setup: the preset, every field whose value differs from the preset's,
    and the locked fields."""
    base = preset_values(preset)
    params = {PRESET_PARAM: preset}
    for name in FIELD_NAMES:
        if name in values and values[name] != base[name]:
            params[name] = _text(values[name])
    locked = set(locked)
    if locked:
        params[LOCK_PARAM] = LOCK_ALL if locked >= set(FIELD_NAMES) else ",".join(n for n in FIELD_NAMES if n in locked)
    return params


def lesson_link_params(preset: str) -> dict[str, str]:
    """The link of a lesson preset with the fields that make the lesson locked: those in which it differs
    from its counterpart without the failure (`Preset.fix`); nothing is locked without one."""
    values = preset_values(preset)
    fix = PRESETS[preset].fix
    locked = [n for n, v in preset_values(fix).items() if v != values[n]] if fix in PRESETS else []
    return link_params(preset, values, locked)


def _single(name: str, value: ParamValue) -> str:
    if isinstance(value, str):
        return value
    if len(value) != 1:
        raise LinkError(f"the link gives {_name(name)} {len(value)} times")
    return value[0]


def _name(name: Any) -> str:
    return repr(name)[:40]


def parse_link(params: Mapping[str, ParamValue], default_preset: str) -> SharedSetup:
    """The setup a link's query parameters describe (no parameters: `default_preset` as it is), or a
    LinkError saying in one line why the link cannot be used."""
    flat = {name: _single(name, value) for name, value in params.items()}
    size = sum(len(k) + len(v) + 2 for k, v in flat.items())
    if size > MAX_LINK_CHARS:
        raise LinkError(f"the link is too long ({size:,} characters; a setup needs at most {MAX_LINK_CHARS:,})")
    for name, value in flat.items():
        if name not in FIELD_NAMES and name not in (PRESET_PARAM, LOCK_PARAM):
            raise LinkError(f"the link has an unknown setting {_name(name)}")
        if len(value) > MAX_VALUE_CHARS or not value.isprintable():
            raise LinkError(f"the link's value of {name} is not a setting (too long, or control characters)")
    preset = flat.pop(PRESET_PARAM, default_preset)
    if preset not in PRESETS:
        raise LinkError(f"the link names an unknown preset {_name(preset)}")
    locked = _locked(flat.pop(LOCK_PARAM, ""))
    try:
        config = TrainConfig.from_dict({**preset_values(preset), **flat}).validate()
    except ConfigError as exc:
        raise LinkError(f"the link's setup is not valid: {exc}") from None
    return SharedSetup(preset, config.to_dict(), locked)


def _locked(text: str) -> frozenset[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if LOCK_ALL in names:
        return frozenset(FIELD_NAMES)
    unknown = [n for n in names if n not in FIELD_NAMES]
    if unknown:
        raise LinkError(f"the link locks an unknown setting {_name(unknown[0])}")
    return frozenset(names)
