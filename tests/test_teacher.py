"""The teacher: the key ($GAN_TEACHER_KEY), the class view (a page only with the key, every run live, Stop
any run), and acting on any saved run; students never see another student's run or controls."""

from __future__ import annotations

from pathlib import Path

import pytest
from gan_test_utils import tiny, wait_until

from gan_core import get_preset
from gan_core.checkpoint import save_checkpoint
from gan_core.identity import grant_teacher, is_teacher, issue_session, teacher_key_set
from gan_core.live import JobManager, JobState, set_manager
from gan_core.paths import runs_dir
from gan_core.runs import RunInfo, can_edit, list_runs, visible_runs
from gan_core.trainer import Trainer

APP = str(Path(__file__).resolve().parents[1] / "playground.py")
KEY = "open-sesame-42"


@pytest.fixture
def teacher_key(monkeypatch):
    monkeypatch.setenv("GAN_TEACHER_KEY", KEY)
    return KEY


def test_the_teacher_key_is_checked_and_remembered_per_session(monkeypatch, teacher_key):
    sid, _ = issue_session()
    other, _ = issue_session()
    assert teacher_key_set()
    assert not grant_teacher(sid, "open-sesame") and not grant_teacher(sid, "") and not is_teacher(sid)
    assert grant_teacher(sid, KEY) and is_teacher(sid)
    assert not is_teacher(other), "the key makes one session the teacher, not the server"
    monkeypatch.delenv("GAN_TEACHER_KEY")
    assert not teacher_key_set() and not is_teacher(sid), "without a key on the server nobody is the teacher"
    assert not grant_teacher(other, ""), "an empty key never matches a missing one"


def saved_run(name: str, owner: str, preset: str = "ring8") -> RunInfo:
    trainer = Trainer(tiny(preset))
    trainer.step()
    save_checkpoint(trainer, runs_dir() / name, {"owner": owner, "name": name})
    return next(r for r in list_runs(runs_dir(), include_pretrained=False) if r.name == name)


def test_only_the_owner_or_the_teacher_may_edit_a_run_and_the_teacher_sees_all():
    mine, theirs = saved_run("mine", "u-me"), saved_run("theirs", "u-other")
    assert can_edit(mine, "u-me") and not can_edit(theirs, "u-me")
    assert can_edit(theirs, "u-me", teacher=True)
    assert [r.name for r in visible_runs([mine, theirs], "u-me", include_others=True)] == ["mine"]
    assert {r.name for r in visible_runs([mine, theirs], "u-me", include_others=True, teacher=True)} == {"mine", "theirs"}
    pretrained = RunInfo(mine.path, "pre", "pretrained", {}, 0.0)
    assert not can_edit(pretrained, "u-me", teacher=True), "the bundled generators stay read-only"


def test_the_manager_lists_every_sessions_active_jobs(manager):
    first = manager.submit("student-1", tiny("ring8"))
    second = manager.submit("student-2", tiny("ring8"))  # one slot: queued
    assert wait_until(lambda: first.view().step > 0, 60)
    assert set(manager.active_jobs()) == {first, second}
    assert second.view().queue_position == 1
    first.stop()
    assert manager.active_jobs() == [second]
    second.stop()
    assert manager.active_jobs() == []


# --- the pages (AppTest) -------------------------------------------------------------------------------
@pytest.fixture
def app_manager():
    m = JobManager(max_jobs=1, view_seconds=0.2, metrics_seconds=1.0, checkpoint_seconds=1.0, scheduling="queue",
                   workers="thread")  # first come first served: the second run shows as queued
    previous = set_manager(m)
    yield m
    m.shutdown(timeout=30)
    set_manager(previous)


def open_page(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def enter_key(at, key: str):
    at.text_input(key="teacher_key_entered").input(key)
    next(b for b in at.button if b.label == "Open the class view").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "caption", "info", "error") for e in getattr(at, kind))


def test_the_class_view_exists_only_with_a_teacher_key(monkeypatch):
    from gan_core.app.nav import available_pages

    monkeypatch.delenv("GAN_TEACHER_KEY", raising=False)
    assert "teacher" not in [p.key for p in available_pages()]
    monkeypatch.setenv("GAN_TEACHER_KEY", KEY)
    assert "teacher" in [p.key for p in available_pages()]


def test_the_class_view_shows_every_run_to_the_teacher_only_and_stops_any(app_manager, teacher_key):
    student = app_manager.submit("student-a", tiny("ring8"), preset="ring8")
    queued = app_manager.submit("student-b", tiny("ring8"), preset="ring8")
    assert wait_until(lambda: student.view().latest is not None, 60)

    at = open_page("pages/class_view.py")
    assert student.name not in texts(at) and not [b for b in at.button if b.label == "Stop"]
    enter_key(at, "guess")
    assert "That is not the teacher key." in texts(at)
    assert student.name not in texts(at), "a wrong key shows nothing"

    enter_key(at, KEY)
    shown = texts(at)
    assert student.name in shown and queued.name in shown and "Queued, position 1" in shown
    assert len(at.image) >= 1, "the running run's 2D points"
    stops = [b for b in at.button if b.label == "Stop"]
    assert len(stops) == 2
    at.button(key=f"teacher_stop_{student.id}").click().run()
    assert wait_until(lambda: not student.state.active, 60)
    assert student.view().state == JobState.STOPPED and "teacher" in student.view().message
    assert wait_until(lambda: queued.view().state == JobState.RUNNING, 60), "the queue moves on"
    queued.stop()


def test_the_teacher_may_rename_or_delete_any_run_a_student_only_their_own(app_manager, teacher_key):
    trainer = Trainer(get_preset("mnist-dcgan").config(g_width=8, d_width=8, batch_size=16))
    trainer.step()
    save_checkpoint(trainer, runs_dir() / "a-students-run", {"owner": "u-someone-else", "name": "a-students-run"})

    student = open_page("pages/runs.py")
    student.toggle(key="runs_show_all").set_value(True).run()
    assert "a-students-run" not in str([s.options for s in student.selectbox]) + texts(student)

    teacher = open_page("pages/class_view.py")
    enter_key(teacher, KEY)
    teacher.switch_page("pages/runs.py").run()
    teacher.toggle(key="runs_show_all").set_value(True).run()
    teacher.selectbox(key="runs_selected").set_value(str(runs_dir() / "a-students-run")).run()
    assert not teacher.exception, [e.value for e in teacher.exception]
    assert "as the teacher you may rename or delete it" in texts(teacher)
    teacher.text_input(key="rename_a-students-run").input("renamed-by-teacher")
    next(b for b in teacher.button if b.label == "Rename").click().run()
    assert (runs_dir() / "renamed-by-teacher").is_dir() and not (runs_dir() / "a-students-run").exists()
