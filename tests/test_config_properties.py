"""Property-based: whatever a form, a link or a command line sends as config values, the answer is a
valid config or the project's one-line ConfigError, never another exception."""

from __future__ import annotations

from dataclasses import fields

from hypothesis import given, settings
from hypothesis import strategies as st

from gan_core.cli import build_parser, train_config_from_args
from gan_core.config import TrainConfig
from gan_core.errors import GanError

FIELD_NAMES = [f.name for f in fields(TrainConfig)]
VALUED_FLAGS = [f.name for f in fields(TrainConfig) if f.type not in ("bool", bool)]  # bool fields are bare --flag / --no-flag
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
                           | st.text(max_size=30), lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=12), JSON_VALUES, max_size=6))
def test_any_json_config_is_valid_or_one_config_error(values):
    try:
        config = TrainConfig.from_dict(values).validate()
    except GanError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert TrainConfig.from_dict(config.to_dict()).validate() == config


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(VALUED_FLAGS), st.text(max_size=20), max_size=4))
def test_any_command_line_flags_are_valid_or_one_error(flags):
    argv = ["train", "--out", "unused"]
    for name, value in flags.items():
        argv += [f"--{name.replace('_', '-')}={value}"]
    args = build_parser().parse_args(argv)
    try:
        train_config_from_args(args)
    except GanError as exc:
        assert "\n" not in str(exc)
