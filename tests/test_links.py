"""Share links (gan_core/links.py): a setup survives the trip through a URL, and any query string gives a
valid setup or the project's one-line error. Then the Train page with a link, through AppTest."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gan_core import PRESETS, TrainConfig
from gan_core.errors import GanError
from gan_core.links import (FIELD_NAMES, MAX_LINK_CHARS, LinkError, lesson_link_params, link_params, parse_link,
                            preset_values)

APP = str(Path(__file__).resolve().parents[1] / "playground.py")


def via_url(params: dict[str, str]) -> dict[str, list[str]]:
    """What a browser sends back for these parameters (encoded into a URL and parsed again)."""
    return parse_qs(urlencode(params), keep_blank_values=True)


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_link_opens_that_preset_unchanged(preset):
    params = link_params(preset, preset_values(preset))
    assert params == {"preset": preset}
    setup = parse_link(via_url(params), "ring8")
    assert setup.preset == preset and setup.values == preset_values(preset) and not setup.locked


def test_changed_fields_and_locks_come_back_exactly():
    values = {**preset_values("mnist-dcgan"), "lr_g": 3.3e-4, "conditional": True, "loss": "hinge", "d_steps": 3,
              "ema": 0.0, "seconds": 0.0, "steps": 1500}
    params = link_params("mnist-dcgan", values, locked={"loss", "d_steps"})
    assert params["lr_g"] == "0.00033" and params["conditional"] == "true" and params["lock"] == "loss,d_steps"
    assert "batch_size" not in params, "fields the link does not change stay out of it"
    setup = parse_link(via_url(params), "ring8")
    assert setup.values == TrainConfig.from_dict(values).validate().to_dict()
    assert setup.locked == {"loss", "d_steps"}
    assert parse_link({"lock": "all"}, "ring8").locked == set(FIELD_NAMES)


def test_no_parameters_give_the_default_preset():
    setup = parse_link({}, "mnist-dcgan")
    assert setup.preset == "mnist-dcgan" and setup.values == preset_values("mnist-dcgan")


def test_a_lesson_link_locks_what_makes_the_lesson():
    params = lesson_link_params("mnist-no-smoothing")
    assert params == {"preset": "mnist-no-smoothing", "lock": "label_smoothing"}  # vs mnist-mlp: only smoothing differs
    for name, preset in PRESETS.items():
        if preset.lesson and preset.fix:  # a lesson without a counterpart (e.g. ring8-game) locks nothing
            setup = parse_link(via_url(lesson_link_params(name)), "ring8")
            assert setup.values == preset_values(name)
            differing = {f for f, v in preset_values(preset.fix).items() if v != setup.values[f]}
            assert setup.locked == differing and differing
    single = next(name for name, preset in PRESETS.items() if preset.lesson and not preset.fix)
    assert "lock" not in lesson_link_params(single)


@pytest.mark.parametrize("params,says", [
    ({"bogus": "1"}, "unknown setting 'bogus'"),
    ({"preset": "ring8", "lr_g": "99"}, "lr_g must be a number in [1e-07, 1]"),
    ({"lr_g": "nan"}, "lr_g must be a number"),
    ({"seed": "-1"}, "seed must be an integer"),
    ({"d_steps": "2.5"}, "d_steps must be of type int"),
    ({"conditional": "maybe"}, "conditional must be of type bool"),
    ({"dataset": "../../etc"}, "dataset must be one of"),
    ({"preset": "<script>alert(1)</script>"}, "unknown preset"),
    ({"lock": "loss,owner"}, "locks an unknown setting 'owner'"),
    ({"data_dir": "a\nb"}, "control characters"),
    ({"lr_g": ["0.1", "0.2"]}, "gives 'lr_g' 2 times"),
    ({"seed": "9" * 5000}, "too long"),
    ({f"x{i}": "1" for i in range(600)}, "too long"),
    ({"arch": "mlp"}, "arch 'mlp' needs an image dataset"),  # each value fine, the whole not
])
def test_a_bad_link_is_one_clear_line(params, says):
    with pytest.raises(LinkError) as info:
        parse_link(params, "ring8")
    message = str(info.value)
    assert says in message and "\n" not in message and len(message) < 300, message


# Any query string at all: field names, the link's own words and junk, with values that are numbers,
# words, or anything.
names = st.one_of(st.sampled_from(FIELD_NAMES + ("preset", "lock")), st.text(max_size=12))
values = st.one_of(st.sampled_from(list(PRESETS) + ["true", "false", "all", "inf", "-0", "1e400", "0x10", ""]),
                   st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=True).map(repr),
                   st.text(max_size=40), st.text(st.sampled_from(",abcdgl_z0129"), max_size=30))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(names, st.one_of(values, st.lists(values, min_size=1, max_size=3)), max_size=8))
def test_any_query_string_gives_a_valid_setup_or_one_clear_line(params):
    try:
        setup = parse_link(params, "ring8")
    except LinkError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert setup.preset in PRESETS
    TrainConfig.from_dict(setup.values).validate()
    assert setup.locked <= set(FIELD_NAMES)


changes = st.fixed_dictionaries({}, optional={
    "lr_g": st.floats(1e-7, 1.0), "lr_d": st.floats(1e-7, 1.0), "batch_size": st.integers(2, 4096),
    "d_steps": st.integers(1, 20), "seed": st.integers(0, 2**31 - 1), "label_smoothing": st.floats(0.0, 0.5),
    "dropout": st.floats(0.0, 0.9), "ema": st.floats(0.0, 0.99999), "seconds": st.floats(0.0, 7 * 24 * 3600.0),
    "spectral_norm": st.booleans(), "loss": st.sampled_from(["minimax", "bce", "lsgan"]), "z_dim": st.integers(1, 1024)})


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(PRESETS)), changes, st.sets(st.sampled_from(FIELD_NAMES), max_size=5))
def test_any_valid_setup_comes_back_from_its_link(preset, change, locked):
    values = {**preset_values(preset), **change}
    try:
        expected = TrainConfig.from_dict(values).validate().to_dict()
    except GanError:
        assume(False)
    setup = parse_link(via_url(link_params(preset, values, locked)), "ring8")
    assert (setup.preset, setup.values, setup.locked) == (preset, expected, frozenset(locked))
    assert len(urlencode(link_params(preset, values, locked))) < MAX_LINK_CHARS


# --- the Train page with a link (AppTest) ---------------------------------------------------------------
@pytest.fixture
def manager():
    from gan_core.live import JobManager, set_manager

    m = JobManager(max_jobs=1, view_seconds=0.2, metrics_seconds=1.0, checkpoint_seconds=1.0)
    previous = set_manager(m)
    yield m
    m.shutdown(timeout=30)
    set_manager(previous)


def train_page(params: dict[str, str]):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    for name, value in params.items():
        at.query_params[name] = value
    at.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_a_link_fills_the_form_locks_fields_and_the_lock_holds_at_start(manager):
    at = train_page({"preset": "ring8", "lr_g": "0.005", "d_steps": "3", "lock": "lr_g"})
    assert at.selectbox(key="train_preset").value == "ring8" and at.selectbox(key="train_preset").disabled
    assert at.number_input(key="train_lr_g").value == 0.005 and at.number_input(key="train_lr_g").disabled
    assert at.number_input(key="train_d_steps").value == 3 and not at.number_input(key="train_d_steps").disabled
    assert not at.error
    at.session_state["train_lr_g"] = 0.0009  # what a browser could send for the disabled widget
    next(b for b in at.button if b.label == "Start").click().run()
    job = manager.job_for(at.session_state["session_id"])
    assert job.config.lr_g == 0.005 and job.config.d_steps == 3, "a locked field keeps the link's value"
    job.stop()


def test_a_hostile_link_says_so_once_and_shows_the_defaults(manager):
    at = train_page({"preset": "ring8", "lr_g": "1e9", "bogus": "<img src=x onerror=alert(1)>"})
    assert len(at.error) == 1 and "This link could not be used" in at.error[0].value
    assert at.selectbox(key="train_preset").value == "mnist-dcgan"
    assert at.number_input(key="train_lr_g").value == preset_values("mnist-dcgan")["lr_g"]
    assert dict(at.query_params) == {"preset": "mnist-dcgan"}, "the URL now holds the defaults"
    at.run()
    assert not at.error, "the message is said once"


def test_the_url_follows_the_forms_edits_and_copy_link_shows_it(manager):
    at = train_page({"preset": "ring8"})
    at.number_input(key="train_d_steps").set_value(4).run()
    assert dict(at.query_params) == {"preset": "ring8", "d_steps": "4"}
    at.multiselect(key="train_share_lock").set_value(["d_steps"]).run()
    assert at.code[0].value.endswith("?preset=ring8&d_steps=4&lock=d_steps")
    assert "lock" not in dict(at.query_params), "locking is for the shared link, not for this form"
    at.number_input(key="train_lr_g").set_value(5.0).run()  # invalid: the URL keeps the last valid setup
    assert dict(at.query_params) == {"preset": "ring8", "d_steps": "4"}
