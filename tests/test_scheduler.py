"""The fair scheduler: slots shared round-robin in quanta, the admission cap, the estimated wait, and the
jobs' commands and the reaper under it (jobs in threads here; worker processes: test_worker.py)."""

from __future__ import annotations

import threading
import time

import pytest
from gan_test_utils import tiny, wait_until

from gan_core.checkpoint import read_metadata
from gan_core.live import JobManager, JobState
from gan_core.live.scheduler import FairShare, SlotLoad, Turns, estimated_waits, remaining_train_seconds


def test_fair_share_grants_round_robin_in_line_order():
    share, granted = FairShare(slots=2), []
    for key in "abcd":
        share.request(key, lambda key=key: granted.append(key))
    assert granted == ["a", "b"] and share.counts() == (2, 2)
    share.yield_turn("a", lambda: granted.append("a"))  # a's quantum is over: c (first in line) gets the slot
    assert granted[-1] == "c"
    share.yield_turn("b", lambda: granted.append("b"))
    share.yield_turn("c", lambda: granted.append("c"))
    share.yield_turn("d", lambda: granted.append("d"))
    assert granted == ["a", "b", "c", "d", "a", "b"], "first in, first out: every run gets its turn"
    share.done("a")  # a pauses: the next in line takes its slot, a leaves the line
    assert granted[-1] == "c" and not share.holding("a")


def test_a_run_alone_keeps_its_slot_when_its_quantum_ends():
    share, granted = FairShare(slots=1), []
    share.request("a", lambda: granted.append("a"))
    share.yield_turn("a", lambda: granted.append("a"))
    assert granted == ["a", "a"] and share.holding("a")


def test_turns_train_for_a_quantum_then_yield():
    share, order = FairShare(slots=1), []
    quantum = 0.05
    stop = threading.Event()

    def worker(name: str) -> None:
        turns = Turns(lambda kind: (share.request if kind == "request" else share.yield_turn)(name, turns.grant)
                      if kind != "done" else share.done(name), quantum)
        while not stop.is_set():
            if turns.take(stop.is_set):
                if not order or order[-1][0] != name:
                    order.append((name, time.monotonic()))
                time.sleep(0.005)  # a training step
        turns.idle()

    threads = [threading.Thread(target=worker, args=(n,)) for n in "abc"]
    for t in threads:
        t.start()
    time.sleep(1.2)
    stop.set()
    for t in threads:
        t.join(5)
    names = [n for n, _ in order]
    assert set(names) == {"a", "b", "c"}, "every run gets turns"
    for i in range(len(names) - 3):  # strict rotation: each name comes back only after the two others
        assert len(set(names[i:i + 3])) == 3, names
    gaps = [t1 - t0 for (_, t0), (_, t1) in zip(order, order[1:])]
    assert 0.6 * quantum <= sorted(gaps)[len(gaps) // 2] <= 4 * quantum, "a turn lasts about one quantum"


def test_the_estimated_wait_follows_processor_sharing():
    # 1 slot, 2 admitted (cap 2) with 10 s and 30 s of training left: each trains half the time, so the 10 s
    # run ends after 20 s of wall time and the first queued run is admitted then; the second when the next ends.
    assert estimated_waits([10, 30], [60], slots=1, max_admitted=2) == [20]
    assert estimated_waits([10, 30], [60, 60], slots=1, max_admitted=2) == [20, 60]
    # Queue mode is the same with cap = slots: no sharing.
    assert estimated_waits([10, 30], [5], slots=2, max_admitted=2) == [10]
    assert estimated_waits([], [5], slots=1, max_admitted=1) == [0]


def test_remaining_training_seconds_of_a_budget():
    config = tiny(steps=1000, seconds=0.0)
    assert remaining_train_seconds(config, 400, 12.0, 0.01) == pytest.approx(6.0)
    assert remaining_train_seconds(config, 0, 0.0, None) is None, "no speed measured yet: no estimate"
    assert remaining_train_seconds(tiny(seconds=60.0), 10, 20.0, None) == pytest.approx(40.0)


def test_the_speed_caption_says_how_the_cores_are_shared():
    load = SlotLoad(mode="fair", slots=1, cores=2, admitted=20, queued=0, max_admitted=20)
    assert load.sharing_text() == "sharing 2 cores with 19 other runs: each trains about 5% of the time"
    assert "only run" in SlotLoad(mode="fair", slots=1, cores=2, admitted=1, queued=0, max_admitted=20).sharing_text()


@pytest.fixture
def fair(tmp_path):
    """A fair-mode manager with one slot shared by up to 3 runs, in threads, quick quanta and cadences."""
    m = JobManager(max_jobs=1, max_admitted=3, quantum_seconds=0.05, root=tmp_path / "runs", view_seconds=0.1,
                   metrics_seconds=0.5, checkpoint_seconds=0.3, scheduling="fair", workers="thread",
                   session_timeout=120.0)
    yield m
    m.shutdown(timeout=30)


def test_every_admitted_run_advances_and_refreshes_its_view(fair):
    jobs = [fair.submit(f"s{i}", tiny()) for i in range(3)]
    assert all(j.state != JobState.QUEUED for j in jobs), "three runs fit under the cap: none waits"
    assert wait_until(lambda: all(j.view().step > 10 for j in jobs), 90)
    latest = [j.view().latest_step for j in jobs]
    assert wait_until(lambda: all(j.view().latest_step > s for j, s in zip(jobs, latest)), 30), "each view refreshes"
    steps = [j.view().step for j in jobs]
    assert max(steps) < 4 * min(steps), f"the slot is shared about evenly: {steps}"
    for j in jobs:
        j.stop()


def test_past_the_cap_runs_queue_with_position_and_estimated_wait(fair):
    jobs = [fair.submit(f"s{i}", tiny(seconds=1.0)) for i in range(3)]
    late = fair.submit("late", tiny(seconds=1.0))
    view = late.view()
    assert view.state == JobState.QUEUED and view.queue_position == 1
    assert view.load.mode == "fair" and view.load.admitted == 3 and view.load.queued == 1
    assert wait_until(lambda: all(j.view().step > 0 for j in jobs), 30)
    wait = late.view().load.estimated_wait
    # Each admitted run needs up to 1 s of training and gets a third of the slot: the first ends within 3 s.
    assert wait is not None and 0 < wait <= 3.2
    assert wait_until(lambda: late.state != JobState.QUEUED, 60), "it is admitted when a run ends"
    for j in [*jobs, late]:
        j.stop()


def test_pause_step_and_stop_under_sharing(fair):
    busy = [fair.submit(f"b{i}", tiny()) for i in range(2)]
    job = fair.submit("s", tiny(), start_paused=True)
    assert wait_until(lambda: job.state == JobState.PAUSED, 20)
    assert wait_until(lambda: all(b.view().step > 10 for b in busy), 30), "a paused run holds no slot"
    at = job.view().step
    time.sleep(0.3)
    assert job.view().step == at == 0
    job.step_once()
    assert wait_until(lambda: job.view().step == 1 and job.state == JobState.PAUSED, 20)
    job.resume()
    assert wait_until(lambda: job.view().step > 20, 30)
    job.stop()
    assert job.state == JobState.STOPPED and not job.thread.is_alive()
    assert read_metadata(job.run_dir)["status"] == "stopped"
    steps = [b.view().step for b in busy]
    assert wait_until(lambda: all(b.view().step > s for b, s in zip(busy, steps)), 20), "the others go on"
    for b in busy:
        b.stop()


def test_an_ab_pair_takes_one_share(fair):
    pair = fair.submit_pair("p", tiny(), tiny(d_steps=2), preset_a="ring8", preset_b="ring8")
    other = fair.submit("o", tiny())
    assert wait_until(lambda: pair.view().step > 5 and other.view().step > 5, 90)
    view = pair.view()
    assert view.a.step in (view.b.step, view.b.step + 1), "the pair's sides stay in lockstep"
    assert fair.load().admitted == 2
    pair.stop()
    assert read_metadata(pair.a.run_dir)["pair"]["side"] == "A"
    other.stop()


def test_the_reaper_stops_a_closed_tab_under_sharing(tmp_path):
    m = JobManager(max_jobs=1, max_admitted=3, quantum_seconds=0.05, root=tmp_path, view_seconds=0.1,
                   scheduling="fair", workers="thread", session_timeout=0.6, reaper_interval=0.1)
    try:
        gone, kept = m.submit("gone", tiny()), m.submit("here", tiny())
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            m.touch("here")
            time.sleep(0.1)
        assert gone.state == JobState.STOPPED and "tab was closed" in gone.view().message
        assert kept.state.active and (gone.run_dir / "model.safetensors").exists()
        steps = kept.view().step
        assert wait_until(lambda: kept.view().step > steps, 10), "the slot went to the run still watched"
        kept.stop()
    finally:
        m.shutdown()


def test_queue_mode_is_first_come_first_served(tmp_path):
    m = JobManager(max_jobs=1, root=tmp_path, view_seconds=0.1, scheduling="queue", workers="thread")
    try:
        a, b = m.submit("a", tiny()), m.submit("b", tiny())
        assert a.turns is None, "in queue mode a run has its slot to itself"
        assert b.state == JobState.QUEUED and b.view().load.mode == "queue" and m.max_admitted == 1
        assert wait_until(lambda: a.view().step > 0, 20)
        assert b.view().load.estimated_wait is None or b.view().load.estimated_wait >= 0
        a.stop()
        assert wait_until(lambda: b.state != JobState.QUEUED, 20)
        b.stop()
    finally:
        m.shutdown()


def test_the_admission_cap_comes_from_memory_and_the_refresh_target(monkeypatch):
    from gan_core.live import settings as settings_module

    monkeypatch.delenv("GAN_MAX_ADMITTED", raising=False)
    monkeypatch.setattr(settings_module, "machine_memory_bytes", lambda: 4 * 2**30)
    assert settings_module.default_max_admitted(1, 0.25) == 6, "4 GiB x 0.6 / 400 MiB per run"
    monkeypatch.setattr(settings_module, "machine_memory_bytes", lambda: 64 * 2**30)
    assert settings_module.default_max_admitted(1, 0.25) == 20, "1 slot x 5 s / 0.25 s quanta"
    monkeypatch.setenv("GAN_MAX_ADMITTED", "7")
    assert settings_module.default_max_admitted(1, 0.25) == 7
