"""The tricks that make a GAN learn faster on a small dataset: differentiable augmentation of what D
sees, the R1 penalty and spectral normalisation. Each is checked on a case small enough to know the answer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gan_core.trainer as trainer_module
from gan_core import PRESETS, ConfigError, Trainer, TrainConfig
from gan_core.augment import BACKGROUND, augment, cutout, translate
from gan_core.checkpoint import load_checkpoint, save_checkpoint
from gan_core.losses import r1_penalty
from gan_core.models import add_spectral_norm


def digit_like(n: int = 6) -> torch.Tensor:
    """Images with a bright square on a black background, each at its own place."""
    x = torch.full((n, 1, 28, 28), BACKGROUND)
    for i in range(n):
        x[i, 0, 8 + i:14 + i, 10:16] = 1.0
    return x


def test_translation_shifts_whole_pixels_and_fills_with_background():
    x = digit_like()
    y = translate(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    for before, after in zip(x, y):
        # a pure shift: the same number of bright pixels (the square stays inside), nothing in between
        assert int((after == 1).sum()) == int((before == 1).sum())
        assert set(after.unique().tolist()) <= {BACKGROUND, 1.0}
    assert not torch.equal(x, y)


def test_cutout_blanks_one_square_per_image():
    x = torch.ones(8, 1, 28, 28)
    y = cutout(x, torch.Generator().manual_seed(1))
    blanked = (y == BACKGROUND).flatten(1).sum(1)
    assert (blanked > 0).all() and (blanked <= 14 * 14).all()
    assert set(y.unique().tolist()) == {BACKGROUND, 1.0}


@pytest.mark.parametrize("policy", ["translation", "translation+cutout"])
def test_augmentation_is_differentiable_and_reproducible(policy):
    x = digit_like().requires_grad_(True)
    y = augment(x, policy, torch.Generator().manual_seed(3))
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the images (and so G)
    again = augment(x.detach(), policy, torch.Generator().manual_seed(3))
    assert torch.equal(y.detach(), again)
    with pytest.raises(ConfigError, match="augment must be one of"):
        augment(x, "colour", torch.Generator())


def test_trainer_augments_reals_and_fakes_alike_and_never_the_samples(monkeypatch):
    calls = []

    def recording(images, policy, rng):
        calls.append((images.requires_grad, policy, tuple(images.shape)))
        return augment(images, policy, rng)

    monkeypatch.setattr(trainer_module, "augment", recording)
    trainer = Trainer(PRESETS["mnist-dcgan"].config(g_width=8, d_width=8, batch_size=8, augment="translation+cutout"))
    trainer.step()
    # D's update sees augmented reals and augmented (detached) fakes; G's update the same fakes,
    # augmented by the same policy, with the gradient flowing back to G
    assert [(grad, policy) for grad, policy, _ in calls] == [(False, "translation+cutout"), (False, "translation+cutout"),
                                                             (True, "translation+cutout")]
    assert len({shape for *_, shape in calls}) == 1
    calls.clear()
    z = trainer.fixed_noise[:4]
    samples = trainer.sample(z=z)
    with torch.no_grad():
        trainer.sampler.eval()
        direct = trainer.sampler(z).float()
    assert calls == [] and torch.allclose(samples, direct, atol=1e-2)


def test_augment_is_for_images_only():
    with pytest.raises(ConfigError, match="augment"):
        PRESETS["ring8"].config(augment="translation")


def test_r1_is_the_squared_input_gradient_of_d_at_reals():
    # D(x) = w . x has input gradient w everywhere: R1 = ||w||^2, and its gradient in w is 2w
    w = nn.Parameter(torch.tensor([3.0, -4.0]))
    real = torch.randn(16, 2).requires_grad_(True)
    penalty = r1_penalty(real, real @ w)
    assert penalty.item() == pytest.approx(25.0)
    (grad_w,) = torch.autograd.grad(penalty, w)
    assert torch.allclose(grad_w, 2 * w.detach())


def test_lazy_r1_adds_gamma_times_every_times_w_to_d_gradient_and_only_when_due():
    # A linear toy critic under the wgan-gp loss (penalty weight 0): D's loss gradient without R1 is
    # mean(fake) - mean(real); R1 with gamma and every k adds 0.5 * gamma * k * d||w||^2/dw = gamma * k * w.
    def d_grad(r1_weight: float, step_count: int) -> torch.Tensor:
        cfg = PRESETS["ring8"].config(loss="wgan-gp", gp_weight=0.0, r1_weight=r1_weight, r1_every=4, batch_size=32)
        trainer = Trainer(cfg)
        trainer.D = nn.Sequential(nn.Linear(2, 1, bias=False))
        trainer.D.forward = lambda x, labels=None, _l=trainer.D[0]: _l(x).squeeze(1)
        trainer._d_params = list(trainer.D.parameters())
        trainer.opt_d = torch.optim.SGD(trainer._d_params, lr=0.0)
        trainer.step_count = step_count
        grads = []
        original = trainer._update

        def capture(loss, opt, params, scaler):
            norm = original(loss, opt, params, scaler)
            if opt is trainer.opt_d:
                grads.append(params[0].grad.clone())
            return norm
        trainer._update = capture
        trainer.step()
        return grads[0], trainer.D[0].weight.detach().clone()

    plain, w = d_grad(0.0, step_count=0)
    due, _ = d_grad(2.0, step_count=0)  # D update 0 is a multiple of r1_every
    not_due, _ = d_grad(2.0, step_count=1)
    assert torch.allclose(due - plain, 2.0 * 4 * w, atol=1e-5)
    assert torch.allclose(not_due, plain, atol=1e-6)  # update 1 of every 4: no penalty


def test_spectral_norm_caps_the_input_gradient_of_d():
    torch.manual_seed(0)
    layer = nn.Linear(10, 1, bias=False)
    with torch.no_grad():
        layer.weight.mul_(50.0)
    plain_norm = layer.weight.norm().item()
    d = add_spectral_norm(nn.Sequential(layer))
    x = torch.randn(4, 10, requires_grad=True)
    for _ in range(5):  # power iterations run in training forward passes
        d(x)
    (grad,) = torch.autograd.grad(d(x).sum(), x)
    assert plain_norm > 10 and grad[0].norm().item() == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_spectral_norm_and_r1_train_and_save(arch, tmp_path):
    preset = "mnist-mlp" if arch == "mlp" else "mnist-dcgan"
    cfg = PRESETS[preset].config(g_width=8, d_width=8, batch_size=8, spectral_norm=True, r1_weight=1.0, r1_every=2,
                                 augment="translation", loss="hinge", label_smoothing=0.0)
    trainer = Trainer(cfg)
    norms = [m for m in trainer.D.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms == []  # spectral norm replaces D's batch-norm
    for _ in range(3):
        record = trainer.step()
    assert record.grad_norm_d > 0
    save_checkpoint(trainer, tmp_path / "run", {})
    again = load_checkpoint(tmp_path / "run")
    assert torch.equal(again.sample(z=trainer.fixed_noise[:4]), trainer.sample(z=trainer.fixed_noise[:4]))


def test_d_without_batchnorm_scores_each_sample_alone_and_old_configs_keep_it(tmp_path):
    cfg = PRESETS["mnist-dcgan-2015"].config(g_width=8, d_width=8, batch_size=8)
    old = cfg.to_dict()
    del old["d_batchnorm"]  # a config saved before the field existed: the paper's batch-norm D
    assert TrainConfig.from_dict(old).d_batchnorm
    with_bn = Trainer(cfg)
    assert any(isinstance(m, nn.BatchNorm2d) for m in with_bn.D.modules())

    trainer = Trainer(cfg.replace(d_batchnorm=False))
    assert not any(isinstance(m, nn.BatchNorm2d) for m in trainer.D.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in trainer.G.modules())  # G keeps its batch-norm
    trainer.D.eval()  # (dropout off): a sample's score must not depend on the rest of its batch
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    assert torch.allclose(trainer.D(x)[:2], trainer.D(x[:2]), atol=1e-5)
    trainer.D.train()
    for _ in range(2):
        trainer.step()
    save_checkpoint(trainer, tmp_path / "run", {})
    assert not load_checkpoint(tmp_path / "run").config.d_batchnorm
