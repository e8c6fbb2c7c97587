"""A/B pairs: shared seed, fixed noise and data batches; one slot, lockstep; commands on both; saved, linked."""

from __future__ import annotations

import threading

import torch
from gan_test_utils import tiny, wait_until

from gan_core.checkpoint import read_metadata
from gan_core.identity import owner_id
from gan_core.live import JobState, PairJob
from gan_core.live.pair import keyed_trainer
from gan_core.runs import can_edit, list_runs, pair_partner, rename_run, visible_runs
from gan_core.trainer import Trainer






def recording(trainer: Trainer) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
    """Record, for every step, the (real batch, noise) of each D update in the order they run."""
    steps: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
    real_batch, noise, step = trainer._real_batch, trainer.noise, trainer.step
    current: list = []

    def batch():
        current.append([real_batch()[0].clone(), None])
        return current[-1][0], None

    def draw(n):
        z = noise(n)
        if current and current[-1][1] is None:
            current[-1][1] = z.clone()
        return z

    def stepped():
        current.clear()
        rec = step()
        steps.append([tuple(u) for u in current])
        return rec

    trainer._real_batch, trainer.noise, trainer.step = batch, draw, stepped
    return steps


def run(trainer: Trainer, n: int) -> None:
    for _ in range(n):
        trainer.step()


def test_pair_sides_share_weights_fixed_noise_and_every_batch():
    a, b = keyed_trainer(tiny(loss="bce")), keyed_trainer(tiny(loss="minimax"))
    for pa, pb in zip(list(a.G.parameters()) + list(a.D.parameters()), list(b.G.parameters()) + list(b.D.parameters())):
        assert torch.equal(pa, pb), "same seed: same initial weights"
    assert torch.equal(a.fixed_noise, b.fixed_noise)
    seen_a, seen_b = recording(a), recording(b)
    run(a, 5), run(b, 5)
    for step_a, step_b in zip(seen_a, seen_b):
        assert all(torch.equal(x, y) for ua, ub in zip(step_a, step_b) for x, y in zip(ua, ub))
    assert not torch.equal(seen_a[0][0][0], seen_a[1][0][0]), "each step draws a new batch"
    assert not torch.equal(a.sample_fixed(), b.sample_fixed()), "the losses differ, so the models drift apart"


def test_more_d_steps_only_add_batches_of_their_own():
    a, b = keyed_trainer(tiny(d_steps=1)), keyed_trainer(tiny(d_steps=5))
    seen_a, seen_b = recording(a), recording(b)
    run(a, 4), run(b, 4)
    for step_a, step_b in zip(seen_a, seen_b):
        assert len(step_a) == 1 and len(step_b) == 5
        real_a, z_a = step_a[0]
        real_b, z_b = step_b[-1]  # B's last D update, the one right before G's update (whose fakes G reuses)
        assert torch.equal(real_a, real_b) and torch.equal(z_a, z_b)
        assert not any(torch.equal(real_a, extra) for extra, _ in step_b[:-1])


def test_plain_trainers_are_unchanged_by_the_option():
    """A run that is not a side of a pair keeps its single random stream (reproducible runs stay as they were)."""
    plain, again = Trainer(tiny()), Trainer(tiny())
    run(plain, 3), run(again, 3)
    assert torch.equal(plain.sample_fixed(), again.sample_fixed())
    keyed = keyed_trainer(tiny())
    run(keyed, 3)
    assert not torch.equal(plain.sample_fixed(), keyed.sample_fixed())


def test_a_pair_takes_one_slot_and_both_sides_advance_together(manager):
    pair = manager.submit_pair("s", tiny(loss="bce"), tiny(loss="minimax"), preset_a="ring8", preset_b="ring8")
    assert isinstance(pair, PairJob) and manager.job_for("s") is pair
    other = manager.submit("t", tiny())
    assert manager.counts() == {"running": 1, "queued": 1, "max_jobs": 1}
    assert other.view().queue_position == 1, "the pair holds the one slot; a second session waits behind it"
    assert wait_until(lambda: pair.view().step > 30, 60)
    threads = {t.name for t in threading.enumerate() if t.name.startswith("gan-job-") and t.name != "gan-job-reaper"}
    assert threads == {f"gan-job-{pair.id}"}, "one worker thread steps both sides"
    pair.pause()
    assert wait_until(lambda: pair.view().state == JobState.PAUSED, 10)
    view = pair.view()
    assert view.a.step == view.b.step, "lockstep: a paused pair stands at the same step on both sides"
    assert view.a.state == view.b.state == JobState.PAUSED
    assert view.differences == [("loss", "bce", "minimax")]
    pair.stop()
    assert wait_until(lambda: other.state in (JobState.LOADING, JobState.RUNNING), 20), "the slot is freed once"
    other.stop()


def test_pause_step_stop_act_on_both_and_both_runs_are_saved_and_linked(manager):
    pair = manager.submit_pair("s", tiny(d_steps=1), tiny(d_steps=3), preset_a="ring8", preset_b="ring8",
                               start_paused=True)
    assert wait_until(lambda: pair.view().state == JobState.PAUSED, 30)
    assert pair.view().a.step == pair.view().b.step == 0
    for expected in (1, 2):
        version = pair.view().version
        pair.step_once()
        assert pair.wait_for_view(version, timeout=10)
        assert wait_until(lambda: (pair.view().a.step, pair.view().b.step) == (expected, expected), 10)
        # each side shows its single step in slow motion: before / after D / after G
        assert wait_until(lambda: all(v.latest_step == expected and len(v.step_frames) == 3 for v in pair.view().sides), 10)
        assert pair.view().state == JobState.PAUSED
    pair.resume()
    assert wait_until(lambda: pair.view().step > 10, 30)
    pair.stop()
    view = pair.view()
    assert view.a.state == view.b.state == JobState.STOPPED and not pair.thread.is_alive()
    meta_a, meta_b = read_metadata(pair.a.run_dir), read_metadata(pair.b.run_dir)
    assert meta_a["step"] == meta_b["step"] == view.a.step
    assert meta_a["pair"]["side"] == "A" and meta_a["pair"]["other"] == pair.b.run_dir.name
    assert meta_b["pair"]["side"] == "B" and meta_b["pair"]["other"] == pair.a.run_dir.name
    assert meta_a["pair"]["id"] == meta_b["pair"]["id"]
    assert meta_a["owner"] == meta_b["owner"] == owner_id("s", pair.a.run_dir.parent)
    assert meta_b["config"]["d_steps"] == 3 and meta_a["config"]["d_steps"] == 1

    runs = list_runs(manager.root, include_pretrained=False)
    mine = owner_id("s", manager.root)
    a_info = next(r for r in runs if r.path == pair.a.run_dir)
    assert all(can_edit(r, mine) for r in runs), "both runs belong to the session that started the pair"
    assert not visible_runs(runs, owner_id("someone else", manager.root))
    renamed = rename_run(pair.b.run_dir, "my-b-side", root=manager.root)
    runs = list_runs(manager.root, include_pretrained=False)
    partner = pair_partner(next(r for r in runs if r.path == pair.a.run_dir), runs)
    assert partner is not None and partner.path == renamed and partner.pair.side == "B"
    assert a_info.pair.text() == f"A vs {pair.b.run_dir.name}"


def test_a_budget_finishes_both_at_the_same_step(manager):
    pair = manager.submit_pair("s", tiny(steps=25, seconds=0.0), tiny(steps=25, seconds=0.0, label_smoothing=0.1))
    assert wait_until(lambda: not pair.state.active, 60)
    view = pair.view()
    assert view.a.state == view.b.state == JobState.FINISHED
    assert read_metadata(pair.a.run_dir)["step"] == read_metadata(pair.b.run_dir)["step"] == 25


def test_a_diverging_side_stops_the_pair_and_the_other_side_is_saved(manager):
    def factory(config):
        trainer = keyed_trainer(config)
        if config.loss != "minimax":
            return trainer
        real_step = trainer.step

        def step():
            if trainer.step_count == 40:
                with torch.no_grad():
                    next(trainer.G.parameters()).fill_(float("nan"))
            return real_step()

        trainer.step = step
        return trainer

    pair = manager.submit_pair("s", tiny(loss="bce"), tiny(loss="minimax"), trainer_factory=factory)
    assert wait_until(lambda: not pair.state.active, 60)
    view = pair.view()
    assert view.b.state == JobState.DIVERGED and view.a.state == JobState.STOPPED
    assert "side B diverged" in view.a.message
    assert read_metadata(pair.a.run_dir)["status"] == "stopped"
    assert manager.counts()["running"] == 0


def test_a_queued_pair_stopped_never_starts(manager):
    first = manager.submit("t", tiny())
    pair = manager.submit_pair("s", tiny(), tiny(loss="minimax"))
    assert pair.view().queue_position == 1 and pair.state == JobState.QUEUED
    pair.stop()
    assert pair.state == JobState.STOPPED and pair.thread is None
    assert "before it started" in pair.view().b.message
    first.stop()
