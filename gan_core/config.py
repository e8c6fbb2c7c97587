"""The typed run configuration (`TrainConfig`), its validation, and the named presets.

A `TrainConfig` is everything a run needs; it is saved inside every checkpoint so a run can be
rebuilt exactly. `validate()` turns bad values into a `ConfigError` whose message names the field
and the allowed range, so the CLI and the app can show it as one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from .augment import AUGMENTATIONS
from .data import DATASETS
from .errors import ConfigError
from .losses import LOSSES

ARCHS = ("toy", "mlp", "dcgan")
LOSS_NAMES = tuple(LOSSES)  # the registry in losses.py is the one list of losses
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
# The time budget of a run that sets neither steps nor seconds, in the CLI and the app alike. 300 s
# shows what every preset teaches (digits within a minute, class control and the lessons within two)
# and still frees a shared classroom server's training slot within five minutes.
DEFAULT_SECONDS = 300.0


@dataclass
class TrainConfig:
    """Everything one GAN run needs. Field docs (in `metadata["help"]`) are shown by the CLI and app."""

    # the data
    dataset: str = field(default="ring8", metadata={"help": "data: ring8, grid25, spiral, mnist-5k (bundled), mnist, fashion-mnist, cifar10, folder"})
    data_dir: str = field(default="", metadata={"help": "image folder for dataset=folder (subfolders = classes)"})
    image_size: int = field(default=0, metadata={"help": "image side for dataset=folder: 28, 32 or 64 (0 = 28 grey / dataset's own)"})
    channels: int = field(default=0, metadata={"help": "image channels for dataset=folder: 1 grey or 3 colour (0 = 3)"})
    # the two networks
    arch: str = field(default="toy", metadata={"help": "model pair: toy (2D MLP), mlp (original GAN), dcgan (convolutional)"})
    conditional: bool = field(default=False, metadata={"help": "conditional GAN: label embedding joined to z in G and to the input of D"})
    loss: str = field(default="bce", metadata={"help": "minimax (saturating), bce (non-saturating), lsgan, wgan-gp, hinge"})
    z_dim: int = field(default=64, metadata={"help": "size of the latent vector z"})
    # their sizes
    g_width: int = field(default=64, metadata={"help": "generator width: hidden units (toy/mlp scale) or base channels (dcgan)"})
    d_width: int = field(default=64, metadata={"help": "discriminator width: hidden units (toy/mlp scale) or base channels (dcgan)"})
    embed_dim: int = field(default=16, metadata={"help": "size of the label embedding of conditional models"})
    dropout: float = field(default=0.0, metadata={"help": "dropout probability in the discriminator (0 = off)"})
    # the optimisers
    batch_size: int = field(default=64, metadata={"help": "real images (and fakes) per step"})
    lr_g: float = field(default=2e-4, metadata={"help": "Adam learning rate of the generator"})
    lr_d: float = field(default=2e-4, metadata={"help": "Adam learning rate of the discriminator"})
    # Adam's momentum terms
    beta1_g: float = field(default=0.5, metadata={"help": "Adam beta1 of the generator (DCGAN: 0.5)"})
    beta2_g: float = field(default=0.999, metadata={"help": "Adam beta2 of the generator"})
    beta1_d: float = field(default=0.5, metadata={"help": "Adam beta1 of the discriminator"})
    beta2_d: float = field(default=0.999, metadata={"help": "Adam beta2 of the discriminator"})
    # the training tricks
    d_steps: int = field(default=1, metadata={"help": "discriminator updates per generator update"})
    label_smoothing: float = field(default=0.0, metadata={"help": "one-sided label smoothing: real target becomes 1 - value (0.1 gives 0.9)"})
    gp_weight: float = field(default=10.0, metadata={"help": "gradient-penalty weight (wgan-gp only)"})
    ema: float = field(default=0.0, metadata={"help": "EMA decay of generator weights used for samples (0 = off, e.g. 0.999)"})
    augment: str = field(default="none", metadata={"help": "DiffAugment of what D sees, reals and fakes alike: none, translation, translation+cutout"})
    r1_weight: float = field(default=0.0, metadata={"help": "R1 penalty weight (gamma) on D's gradient at real images (0 = off)"})
    r1_every: int = field(default=16, metadata={"help": "apply the R1 penalty every this many D updates (lazy R1, scaled to match)"})
    spectral_norm: bool = field(default=False, metadata={"help": "spectral normalisation of D's layers (caps D's Lipschitz constant)"})
    d_batchnorm: bool = field(default=True, metadata={"help": "batch-norm in the DCGAN discriminator's hidden layers (the "
                                                               "paper's; off: D sees each sample alone, kept smooth by R1 "
                                                               "or spectral norm; always off with wgan-gp or spectral norm)"})
    # where and how long it runs
    seed: int = field(default=0, metadata={"help": "random seed (a CPU run with the same seed is reproducible)"})
    device: str = field(default="auto", metadata={"help": "auto (cuda, else mps, else cpu), cpu, cuda, mps"})
    precision: str = field(default="auto", metadata={"help": "auto, fp32 or bf16 autocast"})
    # the budget and the record
    steps: int = field(default=0, metadata={"help": "stop after this many steps (0 = no step limit)"})
    seconds: float = field(default=0.0, metadata={"help": "stop after this many seconds of training time: the steps "
                                                           "themselves, not the live view, metrics or saves in between, "
                                                           "so the wall clock runs longer (0 = no time limit)"})
    snapshot_every: int = field(default=100, metadata={"help": "steps between sample-grid snapshots"})

    # --- helpers ---------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (not validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a checkpoint's JSON); unknown keys are a ConfigError."""
        if not isinstance(data, dict):
            raise ConfigError("config must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(repr(k)[:40] for k in set(data) - set(known))  # repr: a name is shown on one line
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(unknown[:5])}")
        values = {}
        for name, value in data.items():
            values[name] = _coerce(name, known[name].type, value)
        return cls(**values)

    def with_default_budget(self) -> "TrainConfig":
        """This config, with the default time budget `DEFAULT_SECONDS` when it sets neither steps nor seconds."""
        return self if self.steps or self.seconds else self.replace(seconds=DEFAULT_SECONDS)

    def validate(self) -> "TrainConfig":
        """Check every field; raise ConfigError naming the field and allowed range. Returns self."""
        _choice("dataset", self.dataset, tuple(DATASETS))
        _choice("arch", self.arch, ARCHS)
        _choice("loss", self.loss, LOSS_NAMES)
        _choice("device", self.device, DEVICES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("augment", self.augment, tuple(AUGMENTATIONS))
        _int_range("z_dim", self.z_dim, 1, 1024)
        _int_range("g_width", self.g_width, 4, 2048)
        _int_range("d_width", self.d_width, 4, 2048)
        _int_range("embed_dim", self.embed_dim, 1, 512)
        _int_range("batch_size", self.batch_size, 2, 4096)
        _int_range("d_steps", self.d_steps, 1, 20)
        _int_range("seed", self.seed, 0, 2**31 - 1)
        _int_range("steps", self.steps, 0, 10**9)
        _int_range("snapshot_every", self.snapshot_every, 1, 10**9)
        _int_range("r1_every", self.r1_every, 1, 1000)
        _float_range("lr_g", self.lr_g, 1e-7, 1.0)
        _float_range("lr_d", self.lr_d, 1e-7, 1.0)
        for name in ("beta1_g", "beta1_d"):
            _float_range(name, getattr(self, name), 0.0, 0.999)
        for name in ("beta2_g", "beta2_d"):
            _float_range(name, getattr(self, name), 0.0, 0.99999)
        _float_range("dropout", self.dropout, 0.0, 0.9)
        _float_range("label_smoothing", self.label_smoothing, 0.0, 0.5)
        _float_range("gp_weight", self.gp_weight, 0.0, 1000.0)
        _float_range("r1_weight", self.r1_weight, 0.0, 1000.0)
        _float_range("ema", self.ema, 0.0, 0.99999)
        _float_range("seconds", self.seconds, 0.0, 7 * 24 * 3600.0)

        spec = DATASETS[self.dataset]
        if spec.kind == "points" and self.arch != "toy":
            raise ConfigError(f"arch '{self.arch}' needs an image dataset; dataset '{self.dataset}' is 2D points: use arch=toy")
        if spec.kind == "image" and self.arch == "toy":
            raise ConfigError(f"arch 'toy' is for 2D points; dataset '{self.dataset}' is images: use arch=mlp or arch=dcgan")
        if self.conditional and not spec.labelled:
            raise ConfigError(f"conditional=True needs a labelled dataset; '{self.dataset}' has no labels")
        if self.dataset == "folder":
            if not self.data_dir:
                raise ConfigError("data_dir is required for dataset=folder: the folder of images to train on")
            if self.image_size not in (0, 28, 32, 64):
                raise ConfigError(f"image_size must be one of 0, 28, 32, 64, got {self.image_size}")
            if self.channels not in (0, 1, 3):
                raise ConfigError(f"channels must be 0, 1 or 3, got {self.channels}")
        if self.augment != "none" and spec.kind != "image":
            raise ConfigError(f"augment '{self.augment}' shifts and cuts images; dataset '{self.dataset}' is 2D points: use augment=none")
        if self.label_smoothing and self.loss in ("wgan-gp", "hinge"):
            raise ConfigError(f"label_smoothing applies to minimax, bce and lsgan, not to loss '{self.loss}': set it to 0")
        return self


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def _int_range(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def _float_range(name: str, value: Any, low: float, high: float) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high
    if ok and value != value:  # NaN
        ok = False
    if not ok:
        raise ConfigError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    """Convert JSON / command-line values to the field's type, with a ConfigError on failure."""
    type_name = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    try:
        if type_name == "bool":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if type_name == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if type_name == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be of type {type_name}, got {value!r}") from None


# --- presets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A named, described starting configuration."""

    name: str
    description: str
    overrides: dict[str, Any]
    lesson: str = ""  # what a teacher should point at while it runs
    fix: str = ""  # a lesson's counterpart without the failure: the B side of its one-click A/B pair

    def config(self, **changes: Any) -> TrainConfig:
        """The preset's config with `changes` applied (validated)."""
        values = {**self.overrides, **changes}
        return TrainConfig.from_dict(values).validate()


# Toys: a 2D latent and Adam(0, 0.9) found all 8 ring modes with >90% high-quality samples in
# ~1,000 steps across seeds (a sweep over z_dim, lr, betas, loss and EMA; see the README).
_TOY = dict(arch="toy", z_dim=2, g_width=128, d_width=128, batch_size=256, lr_g=1e-3, lr_d=1e-3,
            beta1_g=0.0, beta1_d=0.0, beta2_g=0.9, beta2_d=0.9, loss="bce", snapshot_every=50)
# DCGAN as in the paper (Radford et al. 2015): Adam 2e-4 / beta1 0.5, BCE.
_DCGAN_PAPER = dict(dataset="mnist-5k", arch="dcgan", z_dim=64, g_width=32, d_width=32, batch_size=64,
                    lr_g=2e-4, lr_d=2e-4, beta1_g=0.5, beta1_d=0.5, loss="bce", ema=0.999, snapshot_every=100)
# The same networks tuned for a CPU minute on 5,000 digits (benchmarks/ablation.py, docs/quality.md): a 10x
# learning rate without momentum (Adam 0 / 0.99) lets G follow D's changing verdicts within a few hundred
# steps; a lazy R1 penalty keeps D smooth at the reals so the larger steps do not oscillate, which also lets
# D drop its batch-norm (as StyleGAN's D does): D then scores reals and fakes in one pass (about 8% more
# steps) and no batch statistics mix the two. FCD-5k after 60 s (2-core Xeon, seed 0): 214 -> 76 with
# lr 1e-3 and batch-norm -> 59 as here. DiffAugment lost at this length (171 vs 96 at 3,000 steps), so it is off.
_FAST = dict(lr_g=2e-3, lr_d=2e-3, beta1_g=0.0, beta1_d=0.0, beta2_g=0.99, beta2_d=0.99, r1_weight=1.0, r1_every=16,
             d_batchnorm=False)
_MNIST_DCGAN = dict(_DCGAN_PAPER, **_FAST)
# the same recipe gives the conditional DCGAN its class control (FCD-5k 16, 97% after 60 s; 112 / 82% at 1,500
# steps with the paper's recipe)
_MNIST_CDCGAN = dict(_MNIST_DCGAN, conditional=True)
# The original GAN's MLPs with a 2.5x learning rate, no momentum, and samples from an EMA of G's weights:
# FCD-5k after 3,000 steps 692 -> 117, 8/10 -> 10/10 digits (the EMA alone: 348 -> 117).
_MNIST_MLP = dict(dataset="mnist-5k", arch="mlp", z_dim=100, g_width=256, d_width=256, dropout=0.3, batch_size=64,
                  lr_g=5e-4, lr_d=5e-4, beta1_g=0.0, beta1_d=0.0, beta2_g=0.99, beta2_d=0.99, loss="bce",
                  label_smoothing=0.1, ema=0.999, snapshot_every=100)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("ring8", "2D ring of 8 Gaussians, small MLPs: watch the generator find all 8 modes", dict(_TOY, dataset="ring8")),
        Preset("grid25", "2D 5x5 grid of 25 Gaussians: a harder mode-coverage test", dict(_TOY, dataset="grid25")),
        Preset("spiral", "2D spiral: a curved, connected distribution", dict(_TOY, dataset="spiral")),
        Preset(
            "mnist-mlp",
            "the original GAN (Goodfellow 2014): MLP G/D, LeakyReLU, dropout in D, on bundled MNIST-5k; Adam 5e-4 (0, 0.99) "
            "and an EMA of G for a CPU minute",
            dict(_MNIST_MLP),
        ),
        Preset("mnist-dcgan", "DCGAN (Radford 2015) on bundled MNIST-5k: transposed convs, batchnorm in G, tanh; tuned for "
               "a CPU minute: Adam 2e-3 (0, 0.99), a lazy R1 penalty on D instead of D's batchnorm", dict(_MNIST_DCGAN)),
        Preset("mnist-dcgan-2015", "DCGAN with the paper's own recipe (Adam 2e-4, beta1 0.5, no R1) on bundled MNIST-5k: "
               "compare its first minute with mnist-dcgan", dict(_DCGAN_PAPER)),
        Preset("mnist-cdcgan", "conditional DCGAN on bundled MNIST-5k: choose the digit to draw", dict(_MNIST_CDCGAN)),
        Preset("fashion-cdcgan", "conditional DCGAN on Fashion-MNIST (downloads 30 MB on first use)", dict(_DCGAN_PAPER, dataset="fashion-mnist", conditional=True)),
        Preset(
            "cifar10-dcgan",
            "DCGAN on CIFAR-10 32x32 colour (downloads 170 MB on first use; slow on a CPU)",
            dict(_DCGAN_PAPER, dataset="cifar10", g_width=64, d_width=64, z_dim=100, batch_size=64, ema=0.999),
        ),
        # The lesson path's presets (gan_core/lessons.py). Each is ring8 with one or two fields changed, chosen
        # with headless runs (seeds 0, 1 and 2) so that its effect shows within a few hundred steps.
        Preset(
            "ring8-game",
            "LESSON: the game on the ring, with a counterfeiter that learns 10x slower than the police (lr_g 1e-4): "
            "D(x) and D(G(z)) split apart, then close in on 0.5",
            dict(_TOY, dataset="ring8", lr_g=1e-4),
            lesson="the police win the first round (the curves split), then G catches up and both head back towards 0.5",
        ),
        Preset(
            "ring8-saturating",
            "LESSON: the original minimax G loss log(1-D(G(z))) against police that win at once (G learns 100x slower): "
            "G's gradient vanishes and D(G(z)) stays at 0",
            dict(_TOY, dataset="ring8", loss="minimax", lr_g=1e-5),
            lesson="G's gradient norm in the table: hundreds of times smaller than with the non-saturating loss (B), "
                   "so D(G(z)) stays at 0",
            fix="ring8-strong-d",
        ),
        Preset(
            "ring8-strong-d",
            "LESSON: a discriminator that wins outright: G learns 100x slower than D (lr_g 1e-5), D(x)->1, "
            "D(G(z))->0 within about 50 steps, then G claws back onto one or two modes",
            dict(_TOY, dataset="ring8", lr_g=1e-5),
            lesson="D(x) reaches 1 and D(G(z)) 0 within about 50 steps; later G, with the non-saturating loss, "
                   "climbs back, but onto one or two modes",
            fix="ring8",
        ),
        Preset(
            "ring8-smoothing",
            "ring8-strong-d with one-sided label smoothing 0.1: the police are trained to say 0.9 for real points, "
            "so D(x) stops at 0.9",
            dict(_TOY, dataset="ring8", lr_g=1e-5, label_smoothing=0.1),
        ),
        Preset(
            "ring8-collapse",
            "LESSON: mode collapse: 3 D steps per G step and a slow G (lr_g 1e-4): G settles on two modes that fool D",
            dict(_TOY, dataset="ring8", lr_g=1e-4, d_steps=3),
            lesson="the modes covered fall to two while the good samples rise: the collapse warning fires",
            fix="ring8-collapse-sn",
        ),
        Preset(
            "ring8-collapse-sn",
            "ring8-collapse with spectral normalisation in D (its steepness capped): the same slow G spreads over the ring",
            dict(_TOY, dataset="ring8", lr_g=1e-4, d_steps=3, spectral_norm=True),
        ),
        Preset(
            "mnist-no-smoothing",
            "LESSON: the MLP GAN without its one-sided label smoothing (the only change; dropout stays): D is "
            "trained to say 1, not 0.9, for real digits",
            dict(_MNIST_MLP, label_smoothing=0.0),
            lesson="compare D(x) with mnist-mlp: on MNIST the difference in two minutes is small (the ring8-smoothing "
                   "lesson shows it clearly)",
            fix="mnist-mlp",
        ),
    ]
}


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a ConfigError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
