"""Jobs in worker processes (gan_core/live/worker.py): the commands cross the boundary, a worker that is
killed or hangs ends only its own run with its checkpoint kept, and a finished run's process is gone."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from gan_test_utils import tiny, wait_until

from gan_core.checkpoint import load_checkpoint, read_metadata
from gan_core.identity import owner_id
from gan_core.live import JobManager, JobState

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL / SIGSTOP are POSIX signals")


def process_gone(pid: int) -> bool:
    """True once no process (not even a zombie) has this id."""
    return not Path(f"/proc/{pid}").exists() if Path("/proc").is_dir() else True


@pytest.fixture
def procs(tmp_path, monkeypatch):
    """A fair-mode manager (one slot shared by up to 3 runs) whose jobs train in worker processes."""
    monkeypatch.setenv("GAN_WORKER_HANG_SECONDS", "4")
    m = JobManager(max_jobs=1, max_admitted=3, quantum_seconds=0.05, root=tmp_path / "runs", view_seconds=0.2,
                   metrics_seconds=1.0, checkpoint_seconds=0.3, scheduling="fair", workers="process")
    yield m
    m.shutdown(timeout=30)


def test_a_killed_or_hung_worker_ends_only_its_run_and_keeps_its_checkpoint(procs):
    killed, hung, other = (procs.submit(name, tiny()) for name in ("killed", "hung", "other"))
    jobs = (killed, hung, other)
    assert wait_until(lambda: all(j.view().saved_step is not None and j.view().step > 3 for j in jobs), 120)
    assert len({j.worker_pid for j in jobs}) == 3 and os.getpid() not in {j.worker_pid for j in jobs}

    os.kill(killed.worker_pid, signal.SIGKILL)
    assert wait_until(lambda: not killed.state.active, 30)
    view = killed.view()
    assert view.state == JobState.FAILED and "killed (SIGKILL" in view.message
    assert f"last checkpoint (step {view.saved_step:,}) is kept" in view.message
    trainer = load_checkpoint(killed.run_dir)  # the last checkpoint loads
    assert trainer.step_count == view.saved_step

    os.kill(hung.worker_pid, signal.SIGSTOP)  # it stops answering: ended after GAN_WORKER_HANG_SECONDS
    assert wait_until(lambda: not hung.state.active, 60)
    assert hung.state == JobState.FAILED and "stopped answering" in hung.view().message
    assert process_gone(hung.worker_pid) or wait_until(lambda: process_gone(hung.worker_pid), 10)

    steps = other.view().step
    assert other.state.active and wait_until(lambda: other.view().step > steps + 5, 60), "the other run goes on"
    other.stop()
    assert other.state == JobState.STOPPED and read_metadata(other.run_dir)["status"] == "stopped"


def test_commands_cross_the_boundary_and_a_finished_runs_process_is_gone(procs):
    job = procs.submit("s", tiny(), start_paused=True)
    assert wait_until(lambda: job.state == JobState.PAUSED, 120)
    time.sleep(0.5)
    assert job.view().step == 0, "a paused run does not train"
    job.step_once()
    assert wait_until(lambda: job.view().step == 1 and job.state == JobState.PAUSED, 30)
    # the step's record and its frames travel in separate messages (the frames after): wait for them too
    assert wait_until(lambda: len(job.view().step_frames) == 3, 10), "a 2D step's three frames come back from the worker"
    job.resume()
    assert wait_until(lambda: job.view().step > 10 and job.view().latest_step > 1, 60)
    pid = job.worker_pid
    job.stop()
    assert job.state == JobState.STOPPED and not job.thread.is_alive()
    assert wait_until(lambda: process_gone(pid), 10), "a finished run's worker process is gone"
    meta = read_metadata(job.run_dir)
    assert meta["status"] == "stopped" and meta["step"] == job.view().step
    assert meta["owner"] == owner_id("s", job.run_dir.parent)


def test_a_lone_run_trains_at_the_servers_priority_and_runs_that_share_yield_to_the_pages(procs):
    """Niceness orders the workers below the server; with Linux's autogroups (CPU shared between sessions
    first) the workers also need a session of their own, one for all of them, or a busy worker group holds
    back the server's answers."""
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    first = procs.submit("a", tiny(steps=0, seconds=600))  # they train until stopped
    assert wait_until(lambda: first.view().step > 2, 120)
    assert os.getpriority(os.PRIO_PROCESS, first.worker_pid) == ours, "alone, it has the machine"
    second = procs.submit("b", tiny(steps=0, seconds=600))
    assert wait_until(lambda: second.view().step > 2, 120)
    shared = min(19, ours + 10)
    assert wait_until(lambda: all(os.getpriority(os.PRIO_PROCESS, j.worker_pid) == shared
                                  for j in (first, second)), 10), "sharing, both train below the server"
    sessions = {os.getsid(j.worker_pid) for j in (first, second)}
    assert len(sessions) == 1 and os.getsid(0) not in sessions, "the workers' scheduler group is not the server's"
    for job in (first, second):
        job.stop()


def test_an_ab_pair_trains_in_one_worker_process(procs):
    pair = procs.submit_pair("p", tiny(), tiny(label_smoothing=0.1), preset_a="ring8", preset_b="ring8")
    assert wait_until(lambda: pair.view().step > 5, 120)
    view = pair.view()
    assert abs(view.a.step - view.b.step) <= 1 and view.a.history["step"] and view.b.history["step"]
    pair.stop()
    a, b = read_metadata(pair.a.run_dir), read_metadata(pair.b.run_dir)
    assert a["pair"]["id"] == b["pair"]["id"] and a["pair"]["other"] == pair.b.name and a["step"] == b["step"]


SERVER_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from gan_test_utils import tiny
from gan_core.live import JobManager
m = JobManager(max_jobs=1, root=Path(sys.argv[1]), view_seconds=0.2, metrics_seconds=60, checkpoint_seconds=0.3,
               workers="process")
job = m.submit("s", tiny())
while job.view().saved_step is None or job.view().step < 5:
    time.sleep(0.1)
print(job.worker_pid, job.run_dir, flush=True)
time.sleep(600)  # killed by the test
"""


def test_a_worker_whose_server_dies_saves_its_run_as_interrupted(tmp_path):
    """kill -9 of the server: its worker sees the connection close, saves the run and exits; the run reads
    'interrupted' (not 'stopped', which would say somebody pressed Stop) and loads at its last step."""
    import subprocess
    import sys

    server = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(tmp_path / "runs"), str(Path(__file__).parent)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])
    try:
        pid_text, run_dir = server.stdout.readline().split(maxsplit=1)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        assert wait_until(lambda: process_gone(int(pid_text)), 30), "the worker exits after its server died"
        meta = read_metadata(Path(run_dir.strip()))
        assert meta["status"] == "interrupted", meta["status"]
        assert load_checkpoint(Path(run_dir.strip())).step_count == meta["step"]
    finally:
        server.kill()
