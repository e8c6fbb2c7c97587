"""Command line: `python -m gan_core {presets,train,sample,export,info}`. Errors print one line, exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional, Sequence

import numpy as np

from .config import PRESETS, TrainConfig, get_preset
from .errors import GanError

if TYPE_CHECKING:  # the trainer (and torch) load only for the commands that need them
    from .runner import RunWriter
    from .trainer import StepRecord, Trainer

EPILOG = """examples:
  python -m gan_core presets
  python -m gan_core train --preset ring8 --seconds 30 --out runs/ring
  python -m gan_core train --preset mnist-dcgan --seconds 120 --out runs/mnist
  python -m gan_core train --preset mnist-mlp --steps 2000 --batch-size 128 --lr-g 1e-4 --out runs/mlp
  python -m gan_core train --preset mnist-dcgan --seconds 120 --out runs/mnist --ray auto   # on a Ray cluster
  python -m gan_core sample runs/mnist --n 64 --out digits.png
  python -m gan_core sample runs/cdigits --n 64 --label 3 --out threes.npz
  python -m gan_core export runs/mnist --out shared/mnist   # weights only, no optimiser state
  python -m gan_core export runs/mnist --format onnx --out g.onnx   # the generator as ONNX + g.README.md
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands presets, train, sample, export, info)."""
    parser = argparse.ArgumentParser(
        prog="python -m gan_core",
        description="GAN Playground engine: train a generator (the counterfeiter) against a discriminator "
                    "(the police), then draw samples from it. Runs on the CPU, or a GPU when present.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("presets", help="list the named starting configurations")

    train = sub.add_parser("train", help="train a GAN and write a run folder",
                           description="Train from a preset; any config field can be overridden (dashes for underscores). "
                                       "Writes RUNDIR/model.safetensors + config.json (checkpoint), metrics.csv, samples/*.png.",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    train.add_argument("--preset", default="ring8", choices=list(PRESETS), metavar="NAME", help="starting configuration (see `presets`)")
    train.add_argument("--out", required=True, metavar="RUNDIR", help="folder for the checkpoint, metrics and sample grids")
    train.add_argument("--resume", action="store_true", help="continue the run already in RUNDIR")
    train.add_argument("--checkpoint-seconds", type=float, default=60.0, help="save a checkpoint this often")
    train.add_argument("--ray", default=None, metavar="ADDRESS",
                       help="train on a node of the Ray cluster at ADDRESS (auto, host:6379 or ray://host:10001) and "
                            "stream the progress bar back; the run folder is written here (needs `pip install ray`)")
    overrides = train.add_argument_group("config overrides (default: the preset's value)")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            overrides.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=f.metadata["help"])
        else:
            overrides.add_argument(flag, dest=f.name, default=None, metavar=str(f.type).upper(), help=f.metadata["help"])

    sample = sub.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run", metavar="RUNDIR", help="a run folder (or its model.safetensors)")
    sample.add_argument("--n", type=int, default=64, help="how many samples (default 64)")
    sample.add_argument("--label", type=int, default=None, help="class to draw, for conditional runs (e.g. 3)")
    sample.add_argument("--seed", type=int, default=0, help="seed for the latent vectors (default 0)")
    sample.add_argument("--out", required=True, metavar="FILE", help=".png for a grid, .npz for arrays (images uint8, labels)")
    sample.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")

    export = sub.add_parser("export", help="copy a run's weights without optimiser state, or its generator as ONNX",
                            description="--format safetensors (default): G, D and EMA weights + config, no optimiser state, "
                                        "into the folder --out. --format onnx: the generator the app samples from (EMA "
                                        "weights if kept) as an ONNX model with a dynamic batch axis, to --out X.onnx "
                                        "(with X.README.md beside it: inputs, output, how to run it) or X.zip (both).")
    export.add_argument("run", metavar="RUNDIR", help="a run folder (or its model.safetensors)")
    export.add_argument("--format", default="safetensors", choices=("safetensors", "onnx"), help="what to write (default safetensors)")
    export.add_argument("--out", required=True, metavar="PATH", help="safetensors: a folder; onnx: a file ending in .onnx or .zip")

    info = sub.add_parser("info", help="show a run's config and numbers")
    info.add_argument("run", metavar="RUNDIR")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "presets":
            return cmd_presets()
        if args.command == "train":
            return cmd_train(args)
        if args.command == "sample":
            return cmd_sample(args)
        if args.command == "info":
            return cmd_info(args)
        if args.command == "export":
            return cmd_export(args)
        parser.print_help()
        return 2
    except GanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def cmd_presets() -> int:
    """Print every preset with its one-line description."""
    width = max(map(len, PRESETS))
    for name, preset in PRESETS.items():
        print(f"{name:<{width}}  {preset.description}")
    return 0


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset's config with the command line's overrides applied and validated."""
    changes = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}
    preset = get_preset(args.preset)
    return TrainConfig.from_dict({**preset.overrides, **changes}).with_default_budget().validate()


def trainer_to_train(config: TrainConfig, out: Path, resume: bool) -> Trainer:
    """A new trainer for `out`, or (resume) the one saved there with the budget extended."""
    from .checkpoint import WEIGHTS_FILE, load_checkpoint, remove_orphan_temp_files, repair_config_json
    from .trainer import Trainer

    if out.is_dir():  # clean up after a crashed earlier run: temp files, a config.json behind its weights
        remove_orphan_temp_files(out, older_than=0)
        repair_config_json(out)
    if resume:
        trainer = load_checkpoint(out, device=config.device)
        budget = dict(steps=config.steps and trainer.step_count + config.steps, seconds=config.seconds and trainer.seconds + config.seconds)
        trainer.config = trainer.config.replace(**budget)
        return trainer
    if (out / WEIGHTS_FILE).exists():
        raise GanError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    return Trainer(config)


def cmd_train(args: argparse.Namespace) -> int:
    """Train with a progress bar; write checkpoints, metrics.csv and sample grids into --out (with --ray, on
    a node of a Ray cluster, the files sent back here)."""
    if args.ray:
        from .ray_train import train_on_ray

        return train_on_ray(args.ray, train_config_from_args(args), args.preset, Path(args.out), args.resume,
                            args.checkpoint_seconds)
    from .checkpoint import WEIGHTS_FILE
    from .runner import RunWriter
    from .trainer import Diverged

    config = train_config_from_args(args)
    out = Path(args.out)
    trainer = trainer_to_train(config, out, args.resume)
    writer = RunWriter(trainer, out, resume=args.resume, checkpoint_seconds=args.checkpoint_seconds)
    c = trainer.config
    print(f"training {args.preset}: {c.arch}{' (conditional)' if c.conditional else ''} on {c.dataset}, loss {c.loss}, "
          f"device {trainer.device}, G {trainer.num_parameters['G']:,} / D {trainer.num_parameters['D']:,} parameters -> {out}",
          file=sys.stderr)
    bar = ProgressBar(c, trainer.step_count, trainer.seconds)
    writer.snapshot()
    code = 0
    try:
        train_loop(trainer, writer, lambda rec, speed: bar.show(rec.step, trainer.seconds, step_postfix(rec, speed)))
    except Diverged as exc:
        bar.close()
        writer.close()
        kept = f"the last good checkpoint in {out} is kept" if (out / WEIGHTS_FILE).exists() else "nothing was saved"
        print(f"error: {exc}; {kept}.", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        code = 130
        print("\ninterrupted: saving the checkpoint", file=sys.stderr)
    bar.close()
    writer.snapshot()
    writer.checkpoint()
    writer.close()
    print(done_line(trainer.step_count, trainer.seconds, c, out), file=sys.stderr)
    return code


def train_loop(trainer: Trainer, writer: RunWriter, on_step: Callable[[StepRecord, float], None],
               stop: Callable[[], bool] = lambda: False) -> None:
    """Step until the budget is reached (or `stop()`), recording every step; `on_step(record, img/s)` after
    each (img/s smoothed). Shared by the local CLI and its Ray actor (ray_train.py)."""
    speed = 0.0
    while not trainer.budget_reached() and not stop():
        rec = trainer.step()
        writer.record(rec)
        speed = rec.images_per_s if not speed else 0.95 * speed + 0.05 * rec.images_per_s
        on_step(rec, speed)


def step_postfix(rec: StepRecord, speed: float) -> str:
    """The progress bar's numbers after a step."""
    return (f"step {rec.step} D {rec.loss_d:.3f} G {rec.loss_g:.3f} D(x) {rec.d_real:.2f} "
            f"D(G(z)) {rec.d_fake:.2f} {speed:,.0f} img/s")


def done_line(steps: int, seconds: float, c: TrainConfig, out: Path) -> str:
    """The CLI's last line after training."""
    rate = steps / max(seconds, 1e-9)
    return (f"done: {steps} steps in {seconds:.1f} s of training ({rate:.1f} steps/s, "
            f"{rate * c.batch_size * c.d_steps:,.0f} img/s); checkpoint, metrics.csv and samples/ in {out}")


class ProgressBar:
    """The training bar (tqdm, on stderr) in steps or seconds of the budget; `show` moves it to a position."""

    def __init__(self, config: TrainConfig, step: int, seconds: float):
        from tqdm import tqdm

        self.by_steps = bool(config.steps)
        self.total = config.steps if self.by_steps else config.seconds
        self.bar = tqdm(total=self.total, initial=step if self.by_steps else seconds, unit="step" if self.by_steps else "s",
                        dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 5.0,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}] {postfix}")
        self._postfix_step = -1

    def show(self, step: int, seconds: float, postfix: str) -> None:
        """Move the bar to `step` (or `seconds`) and, every 10 steps, show `postfix`."""
        if step // 10 != self._postfix_step:
            self._postfix_step = step // 10
            self.bar.set_postfix_str(postfix, refresh=False)
        position = step if self.by_steps else min(seconds, self.total)
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


def cmd_sample(args: argparse.Namespace) -> int:
    """Write n samples as a PNG grid or an .npz of uint8 images and labels."""
    import torch

    from .checkpoint import load_checkpoint
    from .images import sample_picture, to_uint8

    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise GanError(f"--out must end in .png (a grid) or .npz (arrays), not {out.name!r}")
    if not 1 <= args.n <= 10_000:
        raise GanError(f"--n must be in [1, 10000], got {args.n}")
    trainer = load_checkpoint(args.run, device=args.device)
    if args.label is not None and not trainer.num_classes:
        raise GanError(f"{args.run} is not a conditional run: --label cannot be used")
    trainer.rng.manual_seed(args.seed)
    labels = args.label if args.label is not None else (torch.arange(args.n) % trainer.num_classes if trainer.num_classes else None)
    samples = trainer.sample(args.n, labels=labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    label_array = (np.full(args.n, args.label) if args.label is not None else
                   labels.numpy() if labels is not None else np.full(args.n, -1)).astype(np.int64)
    if out.suffix.lower() == ".npz":
        if trainer.spec.kind == "points":
            np.savez(out, points=samples.numpy(), labels=label_array)
        else:
            np.savez_compressed(out, images=to_uint8(samples), labels=label_array)
    else:
        sample_picture(samples, nrow=int(np.ceil(np.sqrt(args.n)))).save(out)
    what = f" of class {trainer.class_names[args.label]!r}" if args.label is not None else ""
    print(f"wrote {args.n} samples{what} from step {trainer.step_count} to {out}", file=sys.stderr)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Save a run's G, D (and EMA) weights, config and metadata without the optimiser state; or, with
    --format onnx, its generator as ONNX with a README."""
    if args.format == "onnx":
        return cmd_export_onnx(args)
    from .checkpoint import load_checkpoint, read_metadata, save_checkpoint

    trainer = load_checkpoint(args.run, device="cpu")
    extra = {k: v for k, v in read_metadata(args.run).items() if k == "last_record"}
    path = save_checkpoint(trainer, args.out, {**extra, "exported_from": str(args.run)}, include_optimizer=False)
    print(f"exported step {trainer.step_count} to {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    """Write the run's generator as X.onnx + X.README.md, or X.zip; nothing is written if the export fails."""
    from .export import write_export

    written = write_export(args.run, args.out)
    sizes = ", ".join(f"{p} ({p.stat().st_size / 1e3:,.0f} kB)" for p in written)
    print(f"exported the generator of {args.run} as ONNX: {sizes}", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    """Print a run's metadata as JSON."""
    from .checkpoint import read_metadata

    print(json.dumps(read_metadata(args.run), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
