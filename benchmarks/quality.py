"""Quality per CPU second: train each CPU-sized preset from a fixed seed for a fixed wall-clock
budget, then measure what it learned with the offline metrics (gan_core.metrics).

    python benchmarks/quality.py                      # all CPU presets, their default budgets
    python benchmarks/quality.py --presets ring8 mnist-dcgan --scale 0.5
    python benchmarks/quality.py --before-after       # each preset also with the speed paths off

Prints a markdown table (preset, seconds, steps, img/s, FCD-5k and its floor, classes covered,
class-control accuracy / 2D modes and HQ%) and writes each preset's sample grid and the table
into --out (default benchmarks/results/quality/). Training time excludes the metric passes.

--before-after trains every preset twice in the same run, alternating which goes first: once as
shipped ("fast": bf16 autocast on CPUs with bf16 support, channels_last for DCGANs) and once
with those speed paths off ("plain": fp32, default memory format), i.e. quality per CPU second
before and after the speed work. (The step's smaller structural savings, such as reusing D's
last fakes for G's update, are in both.) The 2D toys train in fp32 either way, so they run once.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core import PRESETS, Trainer  # noqa: E402
from gan_core.device import resolve_device  # noqa: E402
from gan_core.trainer import Speed, auto_speed  # noqa: E402
from gan_core.metrics import (BENCHMARK_FCD_N, TOY_N_SAMPLES, class_control_accuracy, curve_metrics,  # noqa: E402
                              fcd_floor, image_metrics, toy_metrics)
from gan_core.runner import snapshot_image  # noqa: E402

# preset -> wall-clock training budget in seconds (the targets: ring8 10 s, mnist-dcgan 60 s, mnist-cdcgan 120 s)
BUDGETS = {"ring8": 10, "grid25": 20, "spiral": 10, "mnist-mlp": 60, "mnist-dcgan": 60, "mnist-cdcgan": 120,
           "ring8-saturating": 10, "ring8-strong-d": 10}


def machine() -> str:
    """One line describing the CPU / GPU the numbers come from."""
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    return f"{cpu}, {torch.get_num_threads()} torch threads{gpu}, torch {torch.__version__}"


def train_for(preset: str, seconds: float, seed: int, progress: bool = True,
              speed: Speed | None = None) -> tuple[Trainer, int]:
    """Train `preset` for `seconds` of wall clock (data loading excluded); returns the trainer and steps.
    `speed` overrides the trainer's execution settings (default: as shipped)."""
    trainer = Trainer(PRESETS[preset].config(seed=seed), speed=speed)
    trainer.data  # noqa: B018  (load before the clock starts)
    started = time.perf_counter()
    next_print = started + 5
    while time.perf_counter() - started < seconds:
        trainer.step()
        if progress and time.perf_counter() > next_print:
            print(f"  {preset}: {time.perf_counter() - started:.0f}/{seconds:.0f} s, step {trainer.step_count}", file=sys.stderr)
            next_print += 5
    return trainer, trainer.step_count


def evaluate(trainer: Trainer) -> dict[str, str]:
    """The metric columns for one trained preset."""
    cols = {"fcd": "", "floor": "", "classes": "", "control": "", "modes": "", "hq": ""}
    gen = torch.Generator().manual_seed(99)
    if trainer.spec.kind == "points":
        data = trainer.data
        points = trainer.sample(z=torch.randn(TOY_N_SAMPLES, trainer.config.z_dim, generator=gen))
        m = (toy_metrics(points, data.centres, data.std) if data.centres is not None
             else curve_metrics(points, data.curve, data.std, n_segments=20))
        cols.update(modes=f"{m.modes_covered}/{m.n_modes}", hq=f"{100 * m.hq_fraction:.1f}%")
        return cols
    z = torch.randn(BENCHMARK_FCD_N, trainer.config.z_dim, generator=gen)
    images = torch.cat([trainer.sample(z=chunk) for chunk in z.split(500)])
    m = image_metrics(images, n=BENCHMARK_FCD_N, dataset=trainer.config.dataset)
    cols.update(fcd=f"{m['fcd']:.2f}", floor=f"{m['fcd_floor']:.2f}", classes=f"{m['classes_covered']}/10")
    if trainer.num_classes:
        control = class_control_accuracy(lambda labels: trainer.sample(z=torch.randn(len(labels), trainer.config.z_dim, generator=gen),
                                                                        labels=labels), dataset=trainer.config.dataset)
        cols["control"] = f"{100 * control.accuracy:.1f}%"
    return cols


def main() -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every time budget (e.g. 0.25 for a quick look)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before-after", action="store_true",
                        help="also train each preset with the speed paths off (fp32, default memory format)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fcd_floor(BENCHMARK_FCD_N, "mnist")  # computed once, outside any timing

    variants: list[tuple[str, Speed | None]] = [("fast", None)]
    if args.before_after:
        variants.append(("plain", Speed()))
    header = "| preset | speed paths | seconds | steps | img/s | FCD-5k | floor | classes | class control | 2D modes | HQ |"
    rows = [header, "|" + "---|" * 11]
    for i, preset in enumerate(args.presets):
        seconds = BUDGETS[preset] * args.scale
        config = PRESETS[preset].config(seed=args.seed)
        todo = [v for v in variants if v[1] is None or auto_speed(config, resolve_device(config.device)) != v[1]]
        for name, speed in todo[::-1] if i % 2 else todo:  # alternate which goes first
            trainer, steps = train_for(preset, seconds, args.seed, speed=speed)
            cfg = trainer.config
            rate = steps * cfg.batch_size * cfg.d_steps / seconds
            c = evaluate(trainer)
            rows.append(f"| {preset} | {name} | {seconds:g} | {steps} | {rate:,.0f} | {c['fcd']} | {c['floor']} | "
                        f"{c['classes']} | {c['control']} | {c['modes']} | {c['hq']} |")
            snapshot_image(trainer).save(out / f"{preset}{'' if speed is None else '-plain'}.png")
            print(rows[-1], file=sys.stderr)
    table = "\n".join(rows)
    text = f"Machine: {machine()}\nSeed {args.seed}; budgets are wall-clock training seconds.\n\n{table}\n"
    (out / "quality.md").write_text(text)
    print(text)
    print(f"sample grids and quality.md in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
