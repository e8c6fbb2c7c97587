"""Storage faults are messages: a full disk or a read-only runs folder during a save keeps the last
good checkpoint, leaves nothing half-written, and a live run trains on; leftovers of crashes are
cleaned up and config.json / metrics.csv agree with the weights again."""

from __future__ import annotations

import errno
import json
import os
import time

import pytest
from gan_test_utils import wait_until

from gan_core import checkpoint, get_preset
from gan_core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_metadata, save_checkpoint
from gan_core.errors import CheckpointError
from gan_core.live import JobManager, JobState
from gan_core.runner import RunWriter
from gan_core.runs import list_runs, read_history, recover_runs_folder
from gan_core.trainer import Trainer


def tiny_trainer() -> Trainer:
    return Trainer(get_preset("ring8").config(g_width=16, d_width=16, batch_size=32))


def failing_writes(monkeypatch, code: int):
    """Make every write of a file's bytes fail the way a full disk (ENOSPC) or a read-only folder (EROFS) does."""
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(checkpoint.os, "fsync", fail)


@pytest.mark.parametrize("code,says", [(errno.ENOSPC, "disk holding .* is full"), (errno.EROFS, "is read-only")])
def test_a_failed_save_keeps_the_last_checkpoint_and_leaves_nothing_behind(tmp_path, monkeypatch, code, says):
    trainer = tiny_trainer()
    trainer.step()
    save_checkpoint(trainer, tmp_path / "run")
    before = (tmp_path / "run" / WEIGHTS_FILE).read_bytes()
    trainer.step()
    with monkeypatch.context() as m:
        failing_writes(m, code)
        with pytest.raises(CheckpointError, match=says) as caught:
            save_checkpoint(trainer, tmp_path / "run")
    assert "\n" not in str(caught.value)
    assert (tmp_path / "run" / WEIGHTS_FILE).read_bytes() == before, "the last good checkpoint is untouched"
    assert load_checkpoint(tmp_path / "run").step_count == 1
    assert not list((tmp_path / "run").glob(".*.tmp")), "no half-written temp file is left"


def test_a_live_run_trains_on_when_its_disk_is_full_and_saves_again_after(tmp_path, monkeypatch):
    manager = JobManager(max_jobs=1, root=tmp_path / "runs", view_seconds=0.1, metrics_seconds=60, checkpoint_seconds=0.2,
                         workers="thread")  # the test patches the disk writes in this process
    try:
        job = manager.submit("s", get_preset("ring8").config(g_width=16, d_width=16, batch_size=32))
        assert wait_until(lambda: job.view().saved_step is not None and job.view().step > 5)
        with monkeypatch.context() as m:
            failing_writes(m, errno.ENOSPC)
            assert wait_until(lambda: "full" in job.view().storage_problem)
            stuck_at, step = job.view().saved_step, job.view().step
            assert wait_until(lambda: job.view().step > step + 20), "training goes on in memory"
            assert job.state == JobState.RUNNING and job.view().saved_step == stuck_at
        assert wait_until(lambda: job.view().storage_problem == "" and job.view().saved_step > stuck_at), "saves again"
        job.stop()
        assert job.state == JobState.STOPPED and read_metadata(job.run_dir)["status"] == "stopped"
    finally:
        manager.shutdown()


def test_recovery_removes_temp_files_and_repairs_config_json(tmp_path):
    trainer = tiny_trainer()
    folder = tmp_path / "runs" / "crashed"
    save_checkpoint(trainer, folder, {"status": "running"})
    trainer.step()
    save_checkpoint(trainer, folder, {"status": "running"})
    stale = json.loads((folder / CONFIG_FILE).read_text())
    stale["step"] = 0  # as if the process died between writing the weights and config.json
    (folder / CONFIG_FILE).write_text(json.dumps(stale))
    orphan = folder / f".{WEIGHTS_FILE}.abc123.tmp"
    orphan.write_bytes(b"\0" * 1000)
    os.utime(orphan, (time.time() - 3600, time.time() - 3600))
    assert recover_runs_folder(tmp_path / "runs") == {"temp_files_removed": 1, "configs_repaired": 1}
    assert not orphan.exists() and json.loads((folder / CONFIG_FILE).read_text())["step"] == 1
    (run,) = list_runs(tmp_path / "runs", include_pretrained=False)
    assert run.status == "interrupted", "a run that died while training does not read 'running' forever"


def test_resuming_drops_the_metrics_rows_a_crash_left_after_the_checkpoint(tmp_path):
    trainer = tiny_trainer()
    writer = RunWriter(trainer, tmp_path / "run", checkpoint_seconds=0)
    for _ in range(3):
        writer.record(trainer.step())
    writer.checkpoint()
    for _ in range(4):  # trained on, then killed before the next checkpoint
        writer.record(trainer.step())
    writer.close()
    resumed = load_checkpoint(tmp_path / "run")
    RunWriter(resumed, tmp_path / "run", resume=True).close()
    assert read_history(tmp_path / "run")["step"] == [1.0, 2.0, 3.0]


