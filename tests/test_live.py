"""The app's job manager: cap and queue, commands, heartbeat reaper, threads, divergence, isolation."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from gan_test_utils import tiny, wait_until

from gan_core.checkpoint import load_checkpoint, read_metadata
from gan_core.errors import DataUnavailable, GanError
from gan_core.live import JobManager, JobState
from gan_core.live.quality import LiveMetrics, with_collapse_warning
from gan_core.live.view import RecordHistory, SnapshotHistory
from gan_core.paths import data_cache_dir
from gan_core.identity import owner_id
from gan_core.runs import can_edit, list_runs, set_shared, visible_runs
from gan_core.trainer import StepRecord, Trainer






def job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gan-job-") and t.name != "gan-job-reaper"]


def test_cap_queue_positions_and_promotion(manager):
    a = manager.submit("s-a", tiny())
    b = manager.submit("s-b", tiny())
    c = manager.submit("s-c", tiny())
    assert a.state in (JobState.LOADING, JobState.RUNNING)
    assert (b.state, c.state) == (JobState.QUEUED, JobState.QUEUED)
    assert [b.view().queue_position, c.view().queue_position] == [1, 2]
    assert manager.counts() == {"running": 1, "queued": 2, "max_jobs": 1}
    assert b.thread is None, "a queued job must not have a thread yet"

    a.stop()
    assert a.state == JobState.STOPPED
    assert wait_until(lambda: b.state in (JobState.LOADING, JobState.RUNNING), 10)
    assert c.view().queue_position == 1
    c.stop()  # a queued job leaves the line without ever starting
    assert c.state == JobState.STOPPED and c.thread is None
    assert "before it started" in c.view().message
    b.stop()


def test_one_active_run_per_session(manager):
    job = manager.submit("s", tiny())
    with pytest.raises(GanError, match="already has a run"):
        manager.submit("s", tiny())
    job.stop()
    second = manager.submit("s", tiny())  # a finished run can be replaced
    assert manager.job_for("s") is second
    second.stop()


def test_pause_step_resume_stop(manager):
    job = manager.submit("s", tiny(), start_paused=True)
    assert wait_until(lambda: job.state == JobState.PAUSED)
    time.sleep(0.3)
    assert job.view().step == 0, "a paused job must not train"

    version = job.view().version
    job.step_once()
    assert job.wait_for_view(version, timeout=10)
    assert wait_until(lambda: job.view().step == 1 and job.state == JobState.PAUSED)
    view = job.view()
    assert [f.label.split(" ")[0] for f in view.step_frames] == ["before", "after", "after"]
    before, after_d, after_g = view.step_frames
    assert (before.fake == after_d.fake).all(), "D's update must not move the generated points"
    assert not (after_d.surface == before.surface).all(), "D's update must change the decision surface"
    assert not (after_g.fake == after_d.fake).all(), "G's update must move the generated points"
    assert len(view.history["step"]) == 1 and view.history["loss_d"][0] > 0

    job.resume()
    assert wait_until(lambda: job.view().step > 20)
    job.pause()
    assert wait_until(lambda: job.state == JobState.PAUSED)
    paused_at = assert_stays_paused(job)

    job.stop()
    assert job.state == JobState.STOPPED and not job.thread.is_alive()
    meta = read_metadata(job.run_dir)
    assert meta["step"] == paused_at and meta["owner"] == owner_id("s", job.run_dir.parent) and meta["status"] == "stopped"


def assert_stays_paused(job) -> int:
    """The step count of a paused job does not move; returns it."""
    at = job.view().step
    time.sleep(0.3)
    assert job.view().step == at
    return at


def test_step_while_running_pauses_after_one_step(manager):
    job = manager.submit("s", tiny())
    assert wait_until(lambda: job.view().step > 5)
    job.step_once()
    assert wait_until(lambda: job.state == JobState.PAUSED)
    assert_stays_paused(job)
    job.stop()


def test_slow_motion_limits_steps_per_second(manager):
    job = manager.submit("s", tiny())
    job.set_speed(10.0)
    assert wait_until(lambda: job.view().step > 0)
    start = job.view().step
    time.sleep(1.0)
    assert 3 <= job.view().step - start <= 14
    job.stop()


def test_budget_finishes_and_saves(manager):
    job = manager.submit("s", tiny(steps=30, seconds=0.0))
    assert wait_until(lambda: not job.state.active)
    assert job.state == JobState.FINISHED
    assert "30 steps" in job.view().message
    assert read_metadata(job.run_dir)["step"] == 30
    assert (job.run_dir / "metrics.csv").read_text().count("\n") == 31  # header + one line per step


def test_reaper_stops_a_job_whose_tab_closed(tmp_path):
    m = JobManager(max_jobs=2, root=tmp_path, session_timeout=0.6, reaper_interval=0.1, view_seconds=0.1,
                   scheduling="queue", workers="thread")
    try:
        abandoned = m.submit("gone", tiny())
        kept = m.submit("here", tiny())
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # only "here" keeps sending heartbeats
            m.touch("here")
            time.sleep(0.1)
        assert abandoned.state == JobState.STOPPED
        assert "tab was closed" in abandoned.view().message
        assert not abandoned.thread.is_alive()
        assert kept.state.active
        assert (abandoned.run_dir / "model.safetensors").exists(), "a reaped run is saved"
        kept.stop()
        time.sleep(0.8)
        m.reap()
        assert m.job_for("gone") is None, "finished jobs of gone sessions are forgotten"
    finally:
        m.shutdown()


def test_no_thread_left_behind(tmp_path):
    before = set(threading.enumerate())
    m = JobManager(max_jobs=2, root=tmp_path, view_seconds=0.1, scheduling="queue", workers="thread")
    jobs = [m.submit(f"s{i}", tiny()) for i in range(3)]
    assert wait_until(lambda: len(job_threads()) == 2)
    assert all(t.daemon for t in job_threads())
    m.shutdown(timeout=30)
    assert all(not j.state.active for j in jobs)
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert not leftover, f"threads left behind: {leftover}"


def nan_after(steps: int):
    """A trainer factory whose generator weights turn NaN after `steps` steps (a forced divergence)."""
    def factory(config):
        trainer = Trainer(config)
        real_step = trainer.step

        def step():
            if trainer.step_count == steps:
                with torch.no_grad():
                    next(trainer.G.parameters()).fill_(float("nan"))
            return real_step()

        trainer.step = step
        return trainer
    return factory


def test_divergence_keeps_the_last_good_checkpoint(manager):
    job = manager.submit("s", tiny(), trainer_factory=nan_after(400))
    assert wait_until(lambda: not job.state.active, 60)
    view = job.view()
    assert view.state == JobState.DIVERGED and view.error_kind == "diverged"
    assert "diverged" in view.message and "last good checkpoint" in view.message
    saved = load_checkpoint(job.run_dir, device="cpu")
    assert 0 < saved.step_count <= 400
    assert all(torch.isfinite(p).all() for p in saved.G.parameters())
    assert f"step {saved.step_count:,}" in view.message


def test_missing_data_fails_with_the_reason(manager):
    def offline(config):
        raise DataUnavailable("dataset 'mnist' is not available (download failed); use the bundled dataset mnist-5k")

    job = manager.submit("s", tiny("mnist-dcgan", dataset="mnist"), trainer_factory=offline)
    assert wait_until(lambda: not job.state.active)
    view = job.view()
    assert view.state == JobState.FAILED and view.error_kind == "data"
    assert "mnist-5k" in view.message
    assert not (job.run_dir / "model.safetensors").exists()
    assert manager.counts()["running"] == 0, "a failed job frees its slot"


def test_download_progress_is_reported(manager):
    release = threading.Event()

    def downloading(config):
        folder = data_cache_dir() / "MNIST" / "raw"
        folder.mkdir(parents=True)
        (folder / "part").write_bytes(b"x" * 3_000_000)
        release.wait(10)
        raise DataUnavailable("offline")

    job = manager.submit("s", tiny("mnist-dcgan", dataset="mnist"), trainer_factory=downloading)
    assert wait_until(lambda: (job.view().download or (0, 0))[0] >= 3.0)
    done, total = job.view().download
    assert total == 10 and job.state == JobState.LOADING
    release.set()
    assert wait_until(lambda: not job.state.active)
    assert job.view().download is None


def test_sessions_do_not_see_each_others_runs(tmp_path):
    m = JobManager(max_jobs=2, root=tmp_path, view_seconds=0.1, scheduling="queue", workers="thread")
    try:
        a, b = m.submit("alice", tiny()), m.submit("bob", tiny(seed=3))
        assert m.job_for("alice") is a and m.job_for("bob") is b
        assert a.run_dir != b.run_dir
        assert wait_until(lambda: a.view().step > 0 and b.view().step > 0)
        assert a.view().session == "alice" and b.view().session == "bob"
        a.stop()
        b.stop()
        runs = list_runs(tmp_path, include_pretrained=False)
        alice, bob = owner_id("alice", tmp_path), owner_id("bob", tmp_path)
        assert {r.owner for r in runs} == {alice, bob}, "runs are saved under one-way owner ids"
        assert not any("alice" in r.path.joinpath("config.json").read_text() for r in runs), "the secret never reaches a file"
        assert [r.path for r in visible_runs(runs, alice)] == [a.run_dir]
        assert [r.path for r in visible_runs(runs, bob)] == [b.run_dir]
        assert [r.path for r in visible_runs(runs, bob, include_others=True)] == [b.run_dir], "others' runs are private"
        set_shared(next(r for r in runs if r.owner == alice), alice, True)
        with pytest.raises(GanError, match="not yours"):
            set_shared(next(r for r in runs if r.owner == alice), bob, False)
        runs = list_runs(tmp_path, include_pretrained=False)
        assert len(visible_runs(runs, bob, include_others=True)) == 2, "a shared run is visible to others"
        assert not can_edit(next(r for r in runs if r.owner == alice), bob), "and read-only for them"
    finally:
        m.shutdown()


def test_live_metrics_are_computed_in_the_worker(manager):
    toy = manager.submit("s", tiny())
    assert wait_until(lambda: toy.view().metrics is not None, 20)
    m = toy.view().metrics
    assert m.kind == "points" and m.n_modes == 8 and m.collapse_threshold == 6
    toy.stop()
    image = manager.submit("s", tiny("mnist-dcgan"))
    assert wait_until(lambda: image.view().metrics is not None, 60)
    m = image.view().metrics
    assert m.kind == "image" and m.fcd_n == 1000 and m.fcd[-1] > m.fcd_floor > 0
    assert abs(sum(m.histogram) - 1) < 1e-6 and len(m.histogram) == 10
    verdict = image.view().verdict
    assert verdict is not None and verdict.fake_png.startswith(b"\x89PNG") and len(verdict.fake_scores) == 16
    assert image.view().latest.startswith(b"\x89PNG")
    image.stop()


def test_collapse_warning_rules():
    healthy = LiveMetrics(kind="points", steps=[100, 200], covered=[8, 8], n_modes=8, collapse_threshold=6)
    assert with_collapse_warning(healthy, 200, 1500).warning == ""
    dropped = LiveMetrics(kind="points", steps=[100, 200], covered=[8, 3], n_modes=8, collapse_threshold=6)
    assert "fell from 8 to 3 of 8 modes" in with_collapse_warning(dropped, 200, 1500).warning
    early = LiveMetrics(kind="image", steps=[10], covered=[2], n_modes=10, collapse_threshold=6)
    assert with_collapse_warning(early, 10, 600).warning == "", "no warning while the generator is still warming up"
    assert "only 2 of 10 classes" in with_collapse_warning(early, 900, 600).warning
    none = LiveMetrics(kind="none", message="no evaluator for this dataset")
    assert with_collapse_warning(none, 10_000, 600).warning == ""


def record(step: int, loss: float) -> StepRecord:
    return StepRecord(step, loss, loss, 0.5, 0.5, 1.0, 1.0, 100.0, step * 0.01)


def test_record_history_stays_bounded_and_covers_the_run():
    history = RecordHistory(cap=100)
    for step in range(1, 10_001):
        history.add(record(step, float(step)))
    columns = history.columns()
    assert len(columns["step"]) <= 101
    assert columns["step"][-1] == 10_000 and columns["step"][0] <= 200
    assert columns["loss_d"] == sorted(columns["loss_d"])  # window means of an increasing series


def test_snapshot_history_thins_evenly():
    history = SnapshotHistory(cap=10, every_seconds=1.0)
    now = 0.0
    for step in range(1, 200):
        now += 1.0
        if history.due(now):
            history.add(step, f"png{step}", now)
    steps = [s for s, _ in history.items()]
    assert len(steps) <= 10 and steps[-1] >= 190
    gaps = {b - a for a, b in zip(steps, steps[1:-1])}
    assert len(gaps) == 1, f"kept snapshots should be evenly spaced, got {steps}"


def test_the_folder_dataset_reads_only_below_allowed_roots(manager, tmp_path, monkeypatch):
    from gan_test_utils import REPO

    folder_config = tiny("mnist-dcgan", dataset="folder", data_dir=str(REPO / "docs"))
    monkeypatch.delenv("GAN_DATA_ROOTS", raising=False)
    with pytest.raises(GanError, match="off on this server"):
        manager.submit("s", folder_config)
    allowed = tmp_path / "class-images"
    allowed.mkdir()
    monkeypatch.setenv("GAN_DATA_ROOTS", str(allowed))
    for outside in (REPO / "docs", allowed / ".." / "runs", "/etc"):
        with pytest.raises(GanError, match="inside an allowed folder"):
            manager.submit("s", folder_config.replace(data_dir=str(outside)))
    assert manager.job_for("s") is None


def test_a_queued_job_whose_tab_closed_never_starts(manager):
    running = manager.submit("s-a", tiny())
    queued = manager.submit("s-b", tiny())
    queued.last_seen -= 70  # the tab closed 70 s ago: inside the session timeout, but no heartbeat since
    running.stop()
    assert wait_until(lambda: not queued.state.active, 10)
    assert queued.thread is None and "tab was closed" in queued.view().message
