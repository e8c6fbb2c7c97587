"""The trainer's speed paths (bf16 / fp16 autocast, channels_last, deferred read-back), on the CPU.

Every path must train the same maths: finite numbers, the same shapes, D learning real from noise,
the same run for the same seed. Speed itself is measured by benchmarks/throughput.py, not here.
"""

from __future__ import annotations

import math

import pytest
import torch

from gan_test_utils import random_image_data
from gan_core import PRESETS, Diverged, Trainer
from gan_core import speed as speed_module
from gan_core.models import build_models
from gan_core.trainer import CUDA_SYNC_EVERY, Speed, auto_speed

FP32 = Speed()
BF16_CL = Speed(amp_dtype=torch.bfloat16, channels_last=True)
SPEEDS = {
    "fp32": FP32,
    "fp32-channels-last": Speed(channels_last=True),
    "bf16": Speed(amp_dtype=torch.bfloat16),
    "bf16-channels-last": BF16_CL,
    "fp16-grad-scaler": Speed(amp_dtype=torch.float16, channels_last=True),
    "deferred-sync": Speed(amp_dtype=torch.bfloat16, channels_last=True, sync_every=4),
}
SMALL = dict(g_width=16, d_width=16, batch_size=16)


def small_trainer(preset: str, speed: Speed, **changes) -> Trainer:
    cfg = PRESETS[preset].config(**{**SMALL, **changes})
    data = random_image_data((3, 32, 32)) if cfg.dataset == "cifar10" else None
    return Trainer(cfg, data, speed=speed)


PATHS = ([("mnist-dcgan", name) for name in SPEEDS]
         + [("mnist-cdcgan", name) for name in ("fp32", "bf16-channels-last", "fp16-grad-scaler", "deferred-sync")]
         + [(preset, name) for preset in ("mnist-mlp", "ring8") for name in ("fp32", "bf16", "deferred-sync")])


@pytest.mark.parametrize("preset, name", PATHS)
def test_every_speed_path_gives_finite_numbers_and_the_same_shapes(preset, name):
    trainer = small_trainer(preset, SPEEDS[name])
    records = [trainer.step() for _ in range(5)]
    final = trainer.flush_stats()
    assert final.step == 5 and records[-1].step == 5
    for rec in records + [final]:
        assert all(math.isfinite(v) for v in rec.to_dict().values()), rec
    samples = trainer.sample(6, labels=2 if trainer.num_classes else None)
    assert samples.shape == (6, *trainer.sample_shape) and samples.dtype == torch.float32
    assert samples.is_contiguous() and torch.isfinite(samples).all()
    real, labels = trainer.data.sample_real(6)
    assert trainer.D(real, labels if trainer.num_classes else None).shape == (6,)


def test_colour_dcgan_runs_channels_last_in_bf16():
    trainer = small_trainer("cifar10-dcgan", BF16_CL)
    assert trainer.G.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    rec = [trainer.step() for _ in range(3)][-1]
    assert math.isfinite(rec.loss_d) and trainer.sample(2).shape == (2, 3, 32, 32)


def d_loss_real_vs_noise(trainer: Trainer) -> float:
    """D's BCE on fixed reals vs fixed uniform noise, in eval-free scoring (fp32, no autocast)."""
    real, labels = trainer.data.sample_real(128, seed=5)
    noise = torch.rand(128, *trainer.sample_shape, generator=torch.Generator().manual_seed(6)) * 2 - 1
    lab = labels if trainer.num_classes else None
    with torch.no_grad():
        out_real, out_noise = trainer.D(real, lab).float(), trainer.D(noise, lab).float()
    return (torch.nn.functional.softplus(-out_real).mean() + torch.nn.functional.softplus(out_noise).mean()).item()


@pytest.mark.parametrize("preset", ["mnist-dcgan", "mnist-mlp"])
def test_fp32_and_fast_path_both_teach_d_real_from_noise(preset):
    for speed in (FP32, BF16_CL):
        trainer = small_trainer(preset, speed, batch_size=32)
        trainer.D.eval()
        before = d_loss_real_vs_noise(trainer)
        for _ in range(12):
            trainer.step()
        trainer.D.eval()
        after = d_loss_real_vs_noise(trainer)
        assert after < before - 0.05, f"{preset} {speed}: {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("name", ["fp32", "bf16-channels-last", "deferred-sync"])
def test_same_seed_same_run(name):
    def run():
        trainer = small_trainer("mnist-cdcgan", SPEEDS[name], seed=3)
        losses = [trainer.step().loss_d for _ in range(4)]
        return losses, trainer.sample_fixed()

    (losses_a, samples_a), (losses_b, samples_b) = run(), run()
    assert losses_a == losses_b and torch.equal(samples_a, samples_b)


def test_channels_last_model_computes_the_same_function():
    cfg = PRESETS["mnist-cdcgan"].config(**SMALL)
    g, d = build_models(cfg, (1, 28, 28), 10)
    g.eval(), d.eval()
    z, labels = torch.randn(5, cfg.z_dim), torch.arange(5)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        expected_g, expected_d = g(z, labels), d(x, labels)
        # D's head is a Linear on the flattened map, computed as a convolution: check it is that Linear
        flat = d.head(d.net(torch.cat([x, d.embed(labels).view(-1, 1, 28, 28)], 1)).flatten(1)).squeeze(1)
        g.set_memory_format(torch.channels_last), d.set_memory_format(torch.channels_last)
        got_g, got_d = g(z, labels), d(x.contiguous(memory_format=torch.channels_last), labels)
    assert torch.allclose(flat, expected_d, atol=1e-5)
    assert got_g.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got_g, expected_g, atol=1e-5) and torch.allclose(got_d, expected_d, atol=1e-5)


@pytest.mark.parametrize("preset", ["mnist-mlp", "mnist-dcgan"])
def test_joint_real_and_fake_pass_equals_two_passes_without_batchnorm(preset):
    trainer = small_trainer(preset, FP32, dropout=0.0)
    assert not trainer._d_batchnorm and small_trainer("mnist-dcgan-2015", FP32)._d_batchnorm
    real, _ = trainer.data.sample_real(8)
    fake = trainer.sample(8)
    with torch.no_grad():
        joint_real, joint_fake = trainer._d_outputs(real, None, fake, None)
        assert torch.allclose(joint_real, trainer.D(real), atol=1e-5)
        assert torch.allclose(joint_fake, trainer.D(fake), atol=1e-5)


# --- deferred read-back (what a GPU uses), forced on here ---------------------------------------------
def test_deferred_records_carry_the_values_of_the_last_read_back():
    every_step = small_trainer("mnist-dcgan", Speed(channels_last=True), seed=1)
    deferred = small_trainer("mnist-dcgan", Speed(channels_last=True, sync_every=3), seed=1)
    per_step = [every_step.step() for _ in range(7)]
    records = [deferred.step() for _ in range(7)]
    assert [r.step for r in records] == list(range(1, 8))
    # read back at steps 1 (the first), 4 and 7; the steps in between carry the last values read
    for i, source in [(0, 0), (1, 0), (2, 0), (3, 3), (4, 3), (5, 3), (6, 6)]:
        assert records[i].loss_d == per_step[source].loss_d and records[i].grad_norm_g == per_step[source].grad_norm_g
    deferred.step()
    assert deferred.flush_stats().loss_d == every_step.step().loss_d  # flush reads step 8 now


def test_deferred_read_back_names_the_step_that_diverged():
    trainer = small_trainer("ring8", Speed(sync_every=4))
    trainer.step()  # read back: the first step always is
    with torch.no_grad():
        next(trainer.D.parameters()).fill_(float("nan"))
    for _ in range(3):
        trainer.step()  # NaN on the device, not read back yet
    with pytest.raises(Diverged, match="diverged at step 2"):
        trainer.step()  # the 4th pending step triggers the read-back
    assert trainer.status == "diverged"
    with pytest.raises(Diverged):
        trainer.step()


def test_grad_scaler_is_used_only_for_fp16():
    fp16 = small_trainer("mnist-dcgan", SPEEDS["fp16-grad-scaler"])
    assert fp16.scaler_d is not None and fp16.scaler_g is not None
    for _ in range(3):
        fp16.step()
    assert fp16.scaler_d.get_scale() > 0
    bf16 = small_trainer("mnist-dcgan", BF16_CL)
    assert bf16.scaler_d is None and bf16.use_bf16


# --- choosing the path per device (the CUDA choices checked without a GPU) ----------------------------
@pytest.mark.parametrize("gpu_bf16, expected", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_speed_on_cuda(monkeypatch, gpu_bf16, expected):
    monkeypatch.setattr(speed_module, "bf16_supported", lambda device: gpu_bf16)
    cuda = torch.device("cuda")
    speed = auto_speed(PRESETS["mnist-dcgan"].config(), cuda)
    assert speed.amp_dtype == expected and speed.channels_last and speed.sync_every == CUDA_SYNC_EVERY
    assert auto_speed(PRESETS["mnist-dcgan"].config(precision="fp32"), cuda).amp_dtype is None
    assert not auto_speed(PRESETS["ring8"].config(), cuda).channels_last


@pytest.mark.parametrize("native_bf16", [True, False])
def test_auto_speed_on_cpu(monkeypatch, native_bf16):
    monkeypatch.setattr(speed_module, "bf16_supported", lambda device: native_bf16)
    cpu = torch.device("cpu")
    speed = auto_speed(PRESETS["mnist-dcgan"].config(), cpu)
    assert speed.amp_dtype == (torch.bfloat16 if native_bf16 else None)
    assert speed.channels_last and speed.sync_every == 1  # a CPU reads back every step (it is free)
    assert auto_speed(PRESETS["mnist-dcgan"].config(precision="fp32"), cpu).amp_dtype is None
    assert auto_speed(PRESETS["mnist-dcgan"].config(precision="bf16"), cpu).amp_dtype == torch.bfloat16
    assert not auto_speed(PRESETS["mnist-mlp"].config(), cpu).channels_last
    assert auto_speed(PRESETS["ring8"].config(), cpu).amp_dtype is None  # toys: too small for the casts


def test_sync_every_must_be_positive_and_compile_is_for_cuda_only():
    with pytest.raises(Exception, match="sync_every"):
        small_trainer("ring8", Speed(sync_every=0))
    with pytest.raises(Exception, match="CUDA GPUs only"):
        small_trainer("ring8", Speed(compile="reduce-overhead"))
