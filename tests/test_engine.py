"""The engine: config validation, data loaders, models, losses, trainer, checkpoints."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gan_test_utils import SHARED_DATASETS, make_fake_mnist_raw, random_image_data
from gan_core import PRESETS, CheckpointError, ConfigError, DataUnavailable, Diverged, TrainConfig, Trainer
from gan_core.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata, save_checkpoint, trainer_from_bytes
from gan_core.data import ImageData, ToyData, load_dataset, load_torchvision
from gan_core.latent import lerp, slerp
from gan_core.losses import LOSSES, gradient_penalty
from gan_core.models import build_models


# --- config -----------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, field", [
    (dict(batch_size=0), "batch_size"),
    (dict(lr_g=-1e-3), "lr_g"),
    (dict(lr_d=0.0), "lr_d"),
    (dict(dataset="imagenet"), "dataset"),
    (dict(loss="bogus"), "loss"),
    (dict(d_steps=0), "d_steps"),
    (dict(label_smoothing=0.7), "label_smoothing"),
    (dict(beta1_g=1.5), "beta1_g"),
    (dict(dropout=float("nan")), "dropout"),
    (dict(z_dim=0), "z_dim"),
])
def test_invalid_values_name_the_field_and_range(changes, field):
    with pytest.raises(ConfigError) as err:
        PRESETS["ring8"].config(**changes)
    message = str(err.value)
    assert message.startswith(field) and "[" in message or "one of" in message, message


def test_conditional_needs_labels_and_arch_must_fit_data():
    with pytest.raises(ConfigError, match="labelled"):
        TrainConfig(dataset="ring8", arch="toy", conditional=True).validate()
    with pytest.raises(ConfigError, match="arch 'dcgan' needs an image dataset"):
        TrainConfig(dataset="ring8", arch="dcgan").validate()
    with pytest.raises(ConfigError, match="arch 'toy' is for 2D points"):
        TrainConfig(dataset="mnist-5k", arch="toy").validate()
    with pytest.raises(ConfigError, match="data_dir is required"):
        TrainConfig(dataset="folder", arch="dcgan").validate()


def test_from_dict_coerces_strings_and_rejects_unknown_fields():
    cfg = TrainConfig.from_dict({"batch_size": "128", "lr_g": "1e-4", "conditional": "false", "dataset": "ring8"})
    assert cfg.batch_size == 128 and cfg.lr_g == 1e-4 and cfg.conditional is False
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"batchsize": 3})
    with pytest.raises(ConfigError, match="batch_size must be of type int"):
        TrainConfig.from_dict({"batch_size": "lots"})


def test_every_preset_is_valid_and_mnist_presets_default_offline():
    for name, preset in PRESETS.items():
        cfg = preset.config()
        assert preset.description
        if name.startswith("mnist"):
            assert cfg.dataset == "mnist-5k"
    assert PRESETS["mnist-cdcgan"].config().conditional
    assert PRESETS["mnist-dcgan"].config(dataset="mnist").dataset == "mnist"


# --- data --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, modes", [("ring8", 8), ("grid25", 25), ("spiral", None)])
def test_toy_datasets_are_2d_in_unit_square_near_their_modes(name, modes):
    data = load_dataset(name)
    assert isinstance(data, ToyData)
    x, y = data.batch(2000, torch.Generator().manual_seed(0))
    assert x.shape == (2000, 2) and y is None
    assert x.abs().max() <= 1.0
    if modes:
        assert data.centres.shape == (modes, 2)
        nearest = torch.cdist(x, data.centres).min(dim=1).values
        assert (nearest < 4 * data.std).float().mean() > 0.99
    else:
        nearest = torch.cdist(x, data.curve).min(dim=1).values
        assert (nearest < 4 * data.std).float().mean() > 0.99


def test_bundled_mnist_5k_is_balanced_and_scaled():
    data = load_dataset("mnist-5k")
    assert len(data) == 5000 and data.shape == (1, 28, 28) and data.num_classes == 10
    assert torch.bincount(data.labels).tolist() == [500] * 10
    x, y = data.batch(64, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1 and x.min() < -0.99 and x.max() > 0.99
    assert y.shape == (64,)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_loaders_read_raw_idx_files(tmp_path, name, folder):
    images, labels = make_fake_mnist_raw(tmp_path, folder, n=40)
    data = load_dataset(name, data_dir=str(tmp_path), download=False)
    assert len(data) == 40 and data.shape == (1, 28, 28)
    assert torch.equal(data.images[:, 0].cpu(), torch.from_numpy(images))
    assert torch.equal(data.labels.cpu(), torch.from_numpy(labels.astype(np.int64)))
    assert data.class_names[7] == ("7" if name == "mnist" else "Sneaker")


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_missing_download_says_what_to_do(tmp_path, name):
    with pytest.raises(DataUnavailable) as err:
        load_dataset(name, data_dir=str(tmp_path), download=False)
    message = str(err.value)
    assert str(tmp_path) in message and "mnist-5k" in message and "offline" in message


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    from torchvision import datasets

    def no_internet(self):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.MNIST, "download", no_internet)
    with pytest.raises(DataUnavailable, match="download failed.*name resolution"):
        load_dataset("mnist", data_dir=str(tmp_path), download=True)


@pytest.mark.skipif(not (SHARED_DATASETS / "MNIST" / "raw").exists(), reason="../shared/datasets/MNIST not present")
def test_real_mnist_test_split_from_shared(tmp_path):
    shutil.copytree(SHARED_DATASETS / "MNIST", tmp_path / "MNIST")
    images, labels = load_torchvision("mnist", tmp_path, download=False, train=False)
    assert images.shape == (10000, 1, 28, 28) and images.dtype == torch.uint8
    assert sorted(torch.bincount(labels).tolist())[0] > 800  # every digit is there
    assert images.float().mean().item() == pytest.approx(33.3, abs=1.0)  # MNIST's mean pixel


def test_image_folder_with_classes_and_a_bad_file(tmp_path):
    for cls, colour in (("cats", 40), ("dogs", 200)):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.new("RGB", (50, 40), (colour, colour, colour)).save(tmp_path / cls / f"{i}.png")
    data = load_dataset("folder", data_dir=str(tmp_path), image_size=32, channels=3)
    assert data.shape == (3, 32, 32) and len(data) == 6 and data.class_names == ("cats", "dogs")
    assert data.images[data.labels == 1].float().mean() > data.images[data.labels == 0].float().mean()
    (tmp_path / "dogs" / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(DataUnavailable, match="broken.jpg is not a readable image"):
        load_dataset("folder", data_dir=str(tmp_path), image_size=32, channels=3)
    with pytest.raises(DataUnavailable, match="does not exist"):
        load_dataset("folder", data_dir=str(tmp_path / "nope"))


# --- models ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, shape, conditional", [
    ("mlp", (1, 28, 28), False), ("mlp", (1, 28, 28), True),
    ("dcgan", (1, 28, 28), False), ("dcgan", (1, 28, 28), True),
    ("dcgan", (3, 32, 32), False), ("dcgan", (3, 32, 32), True), ("dcgan", (3, 64, 64), False),
])
def test_image_models_shapes_and_range(arch, shape, conditional):
    cfg = TrainConfig(dataset="mnist-5k", arch=arch, conditional=conditional, z_dim=32, g_width=16, d_width=16)
    g, d = build_models(cfg, shape, num_classes=10)
    labels = torch.arange(5) if conditional else None
    x = g(torch.randn(5, 32), labels)
    assert x.shape == (5, *shape) and x.abs().max() <= 1.0
    assert d(x, labels).shape == (5,)
    assert g.num_parameters > 0 and d.num_parameters > 0
    if conditional:
        with pytest.raises(ValueError, match="conditional"):
            g(torch.randn(5, 32))


def test_toy_models_and_mlp_gan_sizes():
    g, d = build_models(PRESETS["ring8"].config(), (2,))
    assert g(torch.randn(7, PRESETS["ring8"].config().z_dim)).shape == (7, 2) and d(torch.randn(7, 2)).shape == (7,)
    g, d = build_models(PRESETS["mnist-mlp"].config(), (1, 28, 28), 10)
    hidden = [m.out_features for m in g.net if isinstance(m, torch.nn.Linear)]
    assert hidden == [256, 512, 1024, 784]  # the source material's MLP GAN
    assert any(isinstance(m, torch.nn.Dropout) for m in d.net)


# --- losses ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_gradients_point_the_right_way(name):
    loss = LOSSES[name]
    # an undecided D (scores between the fake and real targets of every loss)
    real = torch.full((8,), 0.3, requires_grad=True)
    fake = torch.full((8,), 0.3, requires_grad=True)
    loss.d_loss(real, fake, 1.0).backward()
    assert (real.grad < 0).all(), "D should raise its score of reals"
    assert (fake.grad > 0).all(), "D should lower its score of fakes"
    fake_g = torch.full((8,), 0.3, requires_grad=True)
    loss.g_loss(fake_g).backward()
    assert (fake_g.grad < 0).all(), "G should raise D's score of its fakes"


def test_saturating_loss_vanishes_when_d_wins_but_non_saturating_does_not():
    confident = torch.full((4,), -8.0, requires_grad=True)  # D is sure these are fake
    LOSSES["minimax"].g_loss(confident).backward()
    saturating = confident.grad.abs().mean().item()
    confident.grad = None
    LOSSES["bce"].g_loss(confident).backward()
    non_saturating = confident.grad.abs().mean().item()
    assert saturating < 1e-3 < non_saturating


def test_bce_values_at_the_equilibrium_and_label_smoothing():
    zero = torch.zeros(4)
    assert LOSSES["bce"].d_loss(zero, zero, 1.0).item() == pytest.approx(2 * math.log(2), rel=1e-5)
    sure = torch.full((4,), 10.0)
    # with a 0.9 target, a very confident D is penalised: smoothing keeps D from saturating
    assert LOSSES["bce"].d_loss(sure, -sure, 0.9).item() > LOSSES["bce"].d_loss(sure, -sure, 1.0).item() + 0.5


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    w = torch.tensor([0.6, 0.8])  # ||w|| = 1
    critic = lambda x, labels=None: x @ w  # noqa: E731
    real, fake = torch.randn(16, 2), torch.randn(16, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(0.0, abs=1e-6)
    steep = lambda x, labels=None: x @ (3 * w)  # noqa: E731
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-4)


# --- trainer -----------------------------------------------------------------------------------
def d_loss_real_vs_noise(trainer: Trainer, noise: torch.Tensor) -> float:
    """D's BCE on a fixed batch of real data vs a fixed batch of noise."""
    real, labels = trainer.data.sample_real(len(noise), seed=123)
    trainer.D.eval()
    with torch.no_grad():
        lab = labels if trainer.num_classes else None
        out_real, out_noise = trainer.D(real, lab), trainer.D(noise, lab)
    return torch.nn.functional.softplus(-out_real).mean().item() + torch.nn.functional.softplus(out_noise).mean().item()


def probe_noise(trainer: Trainer, n: int = 128) -> torch.Tensor:
    """Uniform noise images; for 2D toys, the untrained generator's output (its 'noise' is a blob at the centre)."""
    gen = torch.Generator().manual_seed(321)
    if trainer.spec.kind == "points":
        return trainer.sample(z=torch.randn(n, trainer.config.z_dim, generator=gen))
    return torch.rand(n, *trainer.sample_shape, generator=gen) * 2 - 1


@pytest.mark.parametrize("preset", list(PRESETS))
def test_a_few_steps_of_every_preset_teach_d_real_from_noise(preset):
    cfg = PRESETS[preset].config(batch_size=32, g_width=min(PRESETS[preset].config().g_width, 32),
                                 d_width=min(PRESETS[preset].config().d_width, 32))
    downloads = cfg.dataset in ("fashion-mnist", "cifar10")
    data = random_image_data((3, 32, 32) if cfg.dataset == "cifar10" else (1, 28, 28)) if downloads else None
    if cfg.dataset != "mnist-5k" and not downloads:
        data = None
    trainer = Trainer(cfg, data)
    noise = probe_noise(trainer)
    before = d_loss_real_vs_noise(trainer, noise)
    for _ in range(15):
        rec = trainer.step()
    after = d_loss_real_vs_noise(trainer, noise)
    assert rec.step == 15 and math.isfinite(rec.loss_d) and math.isfinite(rec.loss_g)
    assert after < before, f"{preset}: D loss real-vs-noise {before:.3f} -> {after:.3f}"


def test_same_seed_same_run_on_cpu():
    def run():
        trainer = Trainer(PRESETS["mnist-mlp"].config(batch_size=16, seed=7, g_width=32, d_width=32))
        return [trainer.step().loss_d for _ in range(3)], trainer.sample_fixed()

    (losses_a, samples_a), (losses_b, samples_b) = run(), run()
    assert losses_a == losses_b and torch.equal(samples_a, samples_b)


def test_nan_stops_the_run_with_the_step_number():
    trainer = Trainer(PRESETS["ring8"].config())
    trainer.step()
    with torch.no_grad():
        next(trainer.D.parameters()).fill_(float("nan"))
    with pytest.raises(Diverged, match="diverged at step 2"):
        trainer.step()
    assert trainer.status == "diverged"
    with pytest.raises(Diverged):
        trainer.step()


def test_d_steps_and_record_fields():
    trainer = Trainer(PRESETS["ring8"].config(d_steps=3, batch_size=50))
    rec = trainer.step()
    assert rec.step == 1 and 0 <= rec.d_real <= 1 and 0 <= rec.d_fake <= 1
    assert rec.grad_norm_d > 0 and rec.grad_norm_g > 0 and rec.images_per_s > 0 and rec.seconds > 0
    trainer.config = trainer.config.replace(steps=2)
    assert not trainer.budget_reached()
    trainer.step()
    assert trainer.budget_reached()


def test_conditional_sampling_and_fixed_grid():
    trainer = Trainer(PRESETS["mnist-cdcgan"].config(g_width=16, d_width=16))
    assert trainer.fixed_noise.shape == (80, 64) and trainer.fixed_labels.tolist()[:9] == [0] * 8 + [1]
    assert trainer.sample(5, labels=3).shape == (5, 1, 28, 28)
    with pytest.raises(Exception, match="label must be in"):
        trainer.sample(2, labels=10)
    plain = Trainer(PRESETS["mnist-dcgan"].config(g_width=16, d_width=16))
    with pytest.raises(Exception, match="not conditional"):
        plain.sample(2, labels=1)


def test_interpolation_ends_at_its_endpoints_and_slerp_keeps_norm():
    trainer = Trainer(PRESETS["mnist-dcgan"].config(g_width=16, d_width=16))
    z0, z1 = trainer.noise(1)[0], trainer.noise(1)[0]
    path = trainer.interpolate(z0, z1, steps=5)
    assert path.shape == (5, 1, 28, 28)
    # 1e-4, not 1e-5: a batch of 5 and a batch of 1 take different conv kernels (1.5e-5 apart on an AMD EPYC)
    assert torch.allclose(path[0], trainer.sample(z=z0[None])[0], atol=1e-4)
    assert torch.allclose(path[-1], trainer.sample(z=z1[None])[0], atol=1e-4)
    a, b = torch.randn(256), torch.randn(256)
    mid_s, mid_l = slerp(a, b, 0.5), lerp(a, b, 0.5)
    assert mid_s.norm() > mid_l.norm() * 1.2  # lerp cuts through the low-density middle
    assert torch.allclose(slerp(a, a, 0.3), a, atol=1e-5)


# --- checkpoints -------------------------------------------------------------------------------
def test_checkpoint_round_trip_gives_identical_samples_and_resumes(tmp_path):
    trainer = Trainer(PRESETS["mnist-cdcgan"].config(g_width=16, d_width=16, ema=0.9))
    for _ in range(3):
        trainer.step()
    save_checkpoint(trainer, tmp_path / "run", {"note": "x"})
    meta = read_metadata(tmp_path / "run")
    assert meta["step"] == 3 and meta["class_names"][3] == "3" and meta["note"] == "x"
    loaded = load_checkpoint(tmp_path / "run", device="cpu")
    assert torch.equal(loaded.sample_fixed(), trainer.sample_fixed())
    # optimiser and RNG state travel too: the next step is the same step
    assert loaded.step().loss_d == pytest.approx(trainer.step().loss_d, rel=1e-5)


def test_corrupt_truncated_foreign_and_mismatched_checkpoints_are_refused(tmp_path):
    from safetensors.torch import save_file

    trainer = Trainer(PRESETS["ring8"].config())
    save_checkpoint(trainer, tmp_path / "good")
    blob = (tmp_path / "good" / WEIGHTS_FILE).read_bytes()
    cases = {
        "garbage": b"this is not a checkpoint at all" * 10,
        "truncated": blob[: len(blob) // 2],
        "empty": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / WEIGHTS_FILE).write_bytes(data)
        with pytest.raises(CheckpointError, match="corrupt|truncated"):
            load_checkpoint(tmp_path / name)
    save_file({"w": torch.zeros(3)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not a GAN Playground checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")
    # weights of a wider model under the config of a narrower one
    wide = Trainer(PRESETS["ring8"].config(g_width=64))
    from gan_core.checkpoint import FORMAT, META_KEY, checkpoint_tensors, run_metadata
    import json
    from safetensors.torch import save as to_bytes
    bad = to_bytes(checkpoint_tensors(wide), metadata={META_KEY: json.dumps(run_metadata(trainer))})
    with pytest.raises(CheckpointError, match="do not fit"):
        trainer_from_bytes(bad)
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_checkpoint(tmp_path / "missing")
    assert FORMAT in (tmp_path / "good" / "config.json").read_text()


def test_diverged_weights_are_never_saved_over_a_good_checkpoint(tmp_path):
    trainer = Trainer(PRESETS["ring8"].config())
    trainer.step()
    save_checkpoint(trainer, tmp_path)
    good = (tmp_path / WEIGHTS_FILE).read_bytes()
    with torch.no_grad():
        next(trainer.G.parameters()).fill_(float("nan"))
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(trainer, tmp_path)
    assert (tmp_path / WEIGHTS_FILE).read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_uploaded_bytes_load_without_files(tmp_path):
    trainer = Trainer(PRESETS["mnist-dcgan"].config(g_width=16, d_width=16))
    trainer.step()
    save_checkpoint(trainer, tmp_path)
    loaded = trainer_from_bytes((tmp_path / WEIGHTS_FILE).read_bytes(), device="cpu")
    assert torch.equal(loaded.sample_fixed(), trainer.sample_fixed())
    png = Image.new("L", (4, 4))
    png.save(tmp_path / "x.png")
    with pytest.raises(CheckpointError):
        trainer_from_bytes((tmp_path / "x.png").read_bytes())


def test_image_data_rejects_wrong_dtype():
    with pytest.raises(DataUnavailable, match="uint8"):
        ImageData("x", torch.zeros(2, 1, 4, 4), None, (), torch.device("cpu"))
