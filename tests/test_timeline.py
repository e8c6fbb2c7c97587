"""The generator's timeline: a bounded, spread-out set of snapshots that sample what the generator drew at
those steps, checked before it is read, continued on resume, and replayed as a multi-frame GIF or an MP4."""

from __future__ import annotations

import io
import json
import math
import shutil

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gan_core import get_preset
from gan_core.cadence import GrowingSteps
from gan_core.checkpoint import WEIGHTS_FILE, load_checkpoint
from gan_core.errors import CheckpointError
from gan_core.replay import FRAME_SECONDS, LAST_FRAME_SECONDS, mp4_available, replay_frames, replay_gif, replay_mp4
from gan_core.runner import RunWriter
from gan_core.runs import list_runs
from gan_core.timeline import MAX_SNAPSHOTS, SPACING_OFFSET, TIMELINE_FILE, TIMELINE_KEY, open_timeline, thin
from gan_core.trainer import Trainer


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def simulate(total: int, checkpoint_every: int) -> tuple[list[int], int]:
    """The steps a run of `total` steps keeps: captures on the timeline's cadence and at every checkpoint,
    exactly as RunWriter schedules them; returns (kept steps, the most ever kept at once)."""
    cadence, kept, most = GrowingSteps(next_step=1), [0], 1
    for step in range(1, total + 1):
        due = cadence.due(step, 0.0)
        if due:
            cadence.done(step, 0.0)
        if due or step % checkpoint_every == 0 or step == total:
            kept.append(step)
            for old in thin(kept):
                kept.remove(old)
            most = max(most, len(kept))
    return kept, most


@pytest.mark.parametrize("total,checkpoint_every", [(100_000, 1_500), (3_000, 97), (40, 7)])
def test_the_schedule_stays_bounded_and_spread_over_runs_of_any_length(total, checkpoint_every):
    kept, most = simulate(total, checkpoint_every)
    assert most <= MAX_SNAPSHOTS
    assert kept[0] == 0 and kept[-1] == total, "the untrained and the final generator are always kept"
    gaps = [math.log((b + SPACING_OFFSET) / (a + SPACING_OFFSET)) for a, b in zip(kept, kept[1:])]
    even = math.log((total + SPACING_OFFSET) / SPACING_OFFSET) / (MAX_SNAPSHOTS - 1)
    assert max(gaps) <= 2 * even, f"a gap of {max(gaps):.2f} (even spacing: {even:.2f}) in {kept}"
    if total >= 100_000:  # the late run is covered too, not just the first thousand steps
        assert sum(s > total / 10 for s in kept) >= 3 and sum(s < total / 100 for s in kept) >= 5


def test_thinning_keeps_the_ends_and_drops_the_most_crowded():
    assert thin([0, 100, 101, 102, 10_000], keep=4) == [101]  # 100-101-102: the tightest triple
    assert thin(list(range(10)), keep=16) == []


def train_with_writer(folder, preset: str, steps: int, ema: float = 0.0, resume_from: Trainer | None = None):
    """Train `steps` steps through a RunWriter (the CLI's and the app's path); returns the trainer and the
    fixed-noise samples it drew after each step (step 0 included)."""
    trainer = resume_from or Trainer(get_preset(preset).config(g_width=8, d_width=8, batch_size=16, ema=ema,
                                                               precision="fp32", seed=3))
    writer = RunWriter(trainer, folder, resume=resume_from is not None, checkpoint_seconds=0)
    drawn = {trainer.step_count: trainer.sample_fixed()}
    for _ in range(steps):
        writer.record(trainer.step())
        drawn[trainer.step_count] = trainer.sample_fixed()
    writer.checkpoint({"status": "finished"})
    writer.close()
    return trainer, drawn


@pytest.mark.parametrize("preset,ema", [("mnist-cdcgan", 0.999), ("ring8", 0.0)])
def test_each_snapshot_samples_what_the_generator_drew_at_that_step(tmp_path, preset, ema):
    trainer, drawn = train_with_writer(tmp_path / "run", preset, 25, ema)
    timeline = open_timeline(tmp_path / "run")
    assert timeline.steps[0] == 0 and timeline.steps[-1] == 25 and 5 <= len(timeline.steps) <= MAX_SNAPSHOTS
    z, labels = timeline.fixed_inputs()
    assert torch.equal(z, trainer.fixed_noise.cpu())
    assert (labels is None) == (trainer.fixed_labels is None)
    outputs = []
    for step in timeline.steps:
        generator = timeline.build(step, device="cpu")
        out = generator.sample(z=z, labels=labels)
        # fp16 weights: within a hundredth of the fp32 generator's samples in [-1, 1]
        assert (out - drawn[step]).abs().max() < 1e-2, f"step {step}"
        outputs.append(out)
    assert (outputs[0] - outputs[-1]).abs().mean() > 1e-2, "training changed the generator between snapshots"
    stored = load_file(str(tmp_path / "run" / TIMELINE_FILE))
    assert all(v.dtype in (torch.float16, torch.int64) for k, v in stored.items() if k.startswith("s"))


def test_a_replay_is_a_gif_with_one_labelled_frame_per_snapshot(tmp_path):
    train_with_writer(tmp_path / "run", "mnist-cdcgan", 12)
    frames = replay_frames(tmp_path / "run")
    steps = open_timeline(tmp_path / "run").steps
    assert [s for s, _ in frames] == list(steps)
    first, last = frames[0][1], frames[-1][1]
    assert first.size == last.size and first.tobytes() != last.tobytes()
    gif = Image.open(io.BytesIO(replay_gif(frames)))
    assert gif.format == "GIF" and gif.n_frames == len(steps)


@pytest.mark.skipif(not mp4_available(), reason="PyAV with libx264 is not installed")
def test_a_replay_mp4_is_h264_that_shows_every_snapshot_for_its_time(tmp_path):
    av = pytest.importorskip("av")
    train_with_writer(tmp_path / "run", "ring8", 12)
    frames = replay_frames(tmp_path / "run")
    with av.open(io.BytesIO(replay_mp4(frames))) as video:
        stream = video.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.width % 2 == 0 and stream.height % 2 == 0
        decoded = [frame.to_ndarray(format="rgb24") for frame in video.decode(video=0)]
    assert len(decoded) == round(10 * (FRAME_SECONDS * (len(frames) - 1) + LAST_FRAME_SECONDS))
    width, height = frames[0][1].size

    def distance(shown, picture):  # mean absolute difference, 0-255 (H.264 is lossy)
        return float(abs(torch.tensor(shown[:height, :width], dtype=torch.float32)
                         - torch.tensor(list(picture.convert("RGB").getdata()), dtype=torch.float32).view(height, width, 3)).mean())

    every = round(10 * FRAME_SECONDS)
    for index, (_, picture) in enumerate(frames):  # each snapshot appears, in order, for its time
        own = distance(decoded[index * every], picture)
        assert own < 4, (index, own)
        if index:
            assert own < distance(decoded[index * every], frames[index - 1][1])


def test_resuming_continues_the_timeline(tmp_path):
    train_with_writer(tmp_path / "run", "ring8", 12)
    before = open_timeline(tmp_path / "run").steps
    trainer = load_checkpoint(tmp_path / "run", device="cpu")
    train_with_writer(tmp_path / "run", "ring8", 30, resume_from=trainer)
    after = open_timeline(tmp_path / "run").steps
    assert after[0] == 0 and after[-1] == 42 and set(before) & set(after) >= {0, 12}


def corrupt_cases(run, other):
    """(name, how to spoil run/timeline.safetensors) for the corrupt-file test."""
    path = run / TIMELINE_FILE

    def truncate():
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def garbage():
        path.write_bytes(b"\x00\x01not a safetensors file" * 10)

    def foreign():  # a checkpoint where the timeline should be
        shutil.copy(run / WEIGHTS_FILE, path)

    def other_model():  # the timeline of a run with wider networks
        shutil.copy(other / TIMELINE_FILE, path)

    def ahead():  # metadata claiming a step the checkpoint never reached
        tensors = load_file(str(path))
        meta = {"format": "gan-playground-timeline", "format_version": 1, "steps": [0, 10**6], "network": "G"}
        save_file(tensors, str(path), metadata={TIMELINE_KEY: json.dumps(meta)})

    def extra_tensor():
        tensors = load_file(str(path))
        tensors["payload"] = torch.zeros(3)
        with safe_open(str(path), "pt") as f:
            metadata = f.metadata()
        save_file(tensors, str(path), metadata=metadata)

    return {"truncated": truncate, "garbage": garbage, "a checkpoint": foreign, "another model": other_model,
            "steps ahead": ahead, "an extra tensor": extra_tensor}


@pytest.mark.parametrize("case", ["truncated", "garbage", "a checkpoint", "another model", "steps ahead", "an extra tensor"])
def test_a_corrupt_or_foreign_timeline_is_a_clean_error_and_the_run_still_lists(tmp_path, case):
    runs = tmp_path / "runs"
    train_with_writer(runs / "run", "ring8", 6)
    other = Trainer(get_preset("ring8").config(g_width=24, d_width=8))
    writer = RunWriter(other, tmp_path / "other", checkpoint_seconds=0)
    writer.checkpoint()
    writer.close()
    corrupt_cases(runs / "run", tmp_path / "other")[case]()
    with pytest.raises(CheckpointError) as caught:
        replay_frames(runs / "run")
    message = str(caught.value)
    assert TIMELINE_FILE in message and "\n" not in message
    [info] = list_runs(runs, include_pretrained=False)
    assert info.error == "" and info.step == 6, "the run itself stays listed and loadable"
    # resuming over a bad timeline starts a new one instead of failing
    trainer, _ = train_with_writer(runs / "run", "ring8", 2, resume_from=load_checkpoint(runs / "run", device="cpu"))
    assert open_timeline(runs / "run").steps == (6, 7, 8)


def test_a_run_without_a_timeline_says_so(tmp_path):
    train_with_writer(tmp_path / "run", "ring8", 3)
    (tmp_path / "run" / TIMELINE_FILE).unlink()
    assert open_timeline(tmp_path / "run") is None
    with pytest.raises(CheckpointError, match="has no timeline yet"):
        replay_frames(tmp_path / "run")
