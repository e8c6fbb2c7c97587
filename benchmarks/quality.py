"""Quality per CPU second: train each CPU-sized preset from fixed seeds for a fixed wall-clock
budget, then measure what it learned with the offline metrics (gan_core.metrics).

    python benchmarks/quality.py --seeds 0,1,2        # all CPU presets, their budgets, median and range
    python benchmarks/quality.py --presets ring8 mnist-dcgan --scale 0.5
    python benchmarks/quality.py --before-after       # each preset also with its settings before issue 10

Prints a markdown table per seed (preset, seconds, steps, img/s, FCD-5k and its floor, classes covered,
class-control accuracy / 2D modes and HQ%), then one line per preset with the median and range over
the seeds, and writes each preset's sample grid and the tables into --out (default
benchmarks/results/quality/). Training time excludes the metric passes; torch runs with
--threads threads (default 1: what the app gives each training job on a 2-core machine).

--before-after trains every preset a second time, in the same run and alternating which goes first,
with the settings it had before the quality work (BEFORE below), so the two are compared on the same
machine under the same load.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core import PRESETS, TrainConfig, Trainer  # noqa: E402
from gan_core.metrics import (BENCHMARK_FCD_N, TOY_N_SAMPLES, class_control_accuracy, curve_metrics,  # noqa: E402
                              fcd_floor, image_metrics, toy_metrics)
from gan_core.runner import snapshot_image  # noqa: E402

# preset -> wall-clock training budget in seconds (the targets: ring8 5 s, grid25 10 s, the MNIST presets 60 s)
BUDGETS = {"ring8": 5, "grid25": 10, "spiral": 10, "mnist-mlp": 60, "mnist-dcgan": 60, "mnist-cdcgan": 60,
           "ring8-saturating": 10, "ring8-strong-d": 10}
# The presets' settings before the quality work (issue 10), for --before-after.
_DCGAN_BEFORE = dict(dataset="mnist-5k", arch="dcgan", z_dim=64, g_width=32, d_width=32, batch_size=64, lr_g=2e-4,
                     lr_d=2e-4, beta1_g=0.5, beta1_d=0.5, loss="bce", ema=0.999, snapshot_every=100)
BEFORE = {
    "mnist-dcgan": _DCGAN_BEFORE,
    "mnist-cdcgan": dict(_DCGAN_BEFORE, conditional=True),
    "mnist-mlp": dict(dataset="mnist-5k", arch="mlp", z_dim=100, g_width=256, d_width=256, dropout=0.3, batch_size=64,
                      lr_g=2e-4, lr_d=2e-4, loss="bce", label_smoothing=0.1, snapshot_every=100),
}


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
              config: TrainConfig | None = None) -> tuple[Trainer, int]:
    """Train `preset` (or `config`) for `seconds` of wall clock (data loading excluded); returns the
    trainer and its steps."""
    trainer = Trainer(config or PRESETS[preset].config(seed=seed))
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


def summary(preset: str, variant: str, results: list[dict[str, str]]) -> str:
    """One row: the median over seeds of each numeric column, with its range."""
    cells = []
    for column in ("steps", "fcd", "classes", "control", "modes", "hq"):
        values = [r[column] for r in results if r[column]]
        if not values:
            cells.append("")
            continue
        suffix = "%" if values[0].endswith("%") else ""
        of = values[0].split("/")[1] if "/" in values[0] else ""
        numbers = sorted(float(v.split("/")[0].rstrip("%").replace(",", "")) for v in values)
        middle = statistics.median(numbers)
        text = lambda x: f"{x:g}{suffix}" if of or column == "steps" else f"{x:.1f}{suffix}"  # noqa: E731
        cells.append(f"{text(middle)}{'/' + of if of else ''} ({text(numbers[0])}-{text(numbers[-1])})"
                     if len(numbers) > 1 else f"{text(middle)}{'/' + of if of else ''}")
    return f"| {preset} | {variant} | {len(results)} | " + " | ".join(cells) + " |"


def main() -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every time budget (e.g. 0.25 for a quick look)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (the summary gives median and range)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's jobs use 1 on 2 cores)")
    parser.add_argument("--before-after", action="store_true",
                        help="also train each preset with its settings before the quality work (BEFORE)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "quality"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fcd_floor(BENCHMARK_FCD_N, "mnist")  # computed once, outside any timing

    header = "| seed | preset | settings | seconds | steps | img/s | FCD-5k | floor | classes | class control | 2D modes | HQ |"
    rows = [header, "|" + "---|" * 12]
    results: dict[tuple[str, str], list[dict[str, str]]] = {}
    turn = 0
    for seed in seeds:
        for preset in args.presets:
            seconds = BUDGETS[preset] * args.scale
            variants = [("now", PRESETS[preset].config(seed=seed))]
            if args.before_after and preset in BEFORE:
                variants.append(("before", TrainConfig.from_dict(dict(BEFORE[preset], seed=seed)).validate()))
            turn += 1
            for name, config in variants[::-1] if turn % 2 == 0 else variants:  # alternate which goes first
                trainer, steps = train_for(preset, seconds, seed, config=config)
                rate = steps * config.batch_size * config.d_steps / seconds
                c = evaluate(trainer)
                c["steps"] = str(steps)
                results.setdefault((preset, name), []).append(c)
                rows.append(f"| {seed} | {preset} | {name} | {seconds:g} | {steps} | {rate:,.0f} | {c['fcd']} | {c['floor']} | "
                            f"{c['classes']} | {c['control']} | {c['modes']} | {c['hq']} |")
                snapshot_image(trainer).save(out / f"{preset}-seed{seed}{'' if name == 'now' else '-' + name}.png")
                print(rows[-1], file=sys.stderr)
    medians = ["| preset | settings | seeds | steps | FCD-5k | classes | class control | 2D modes | HQ |", "|" + "---|" * 9]
    medians += [summary(preset, name, r) for (preset, name), r in results.items()]
    text = (f"Machine: {machine()}\nSeeds {args.seeds}; budgets are wall-clock training seconds; "
            f"median (range) over the seeds.\n\n" + "\n".join(medians) + "\n\nEach run:\n\n" + "\n".join(rows) + "\n")
    (out / "quality.md").write_text(text)
    print(text)
    print(f"sample grids and quality.md in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
