"""What made the unconditional MNIST presets learn faster: each change of the quality work alone, on top
of the settings before it, and all of them together, trained for the same wall clock and scored offline.

    python benchmarks/ablation.py                          # mnist-dcgan and mnist-mlp, 60 s, seed 0
    python benchmarks/ablation.py --presets mnist-dcgan --seconds 30 --seeds 0,1

Prints a markdown table (preset, change, steps reached, FCD-5k, classes covered) and writes it to
benchmarks/results/ablation.md. Variants run one after the other with 1 torch thread, as
benchmarks/quality.py does; the order is rotated between seeds so that drifting load does not
favour one variant.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import BEFORE, evaluate, machine, train_for  # noqa: E402

from gan_core import PRESETS, TrainConfig  # noqa: E402
from gan_core.metrics import BENCHMARK_FCD_N, fcd_floor  # noqa: E402


def changes(preset: str) -> dict[str, dict]:
    """The preset's changes against its settings before, one variant each (name -> overrides)."""
    now, before = PRESETS[preset].config().to_dict(), TrainConfig.from_dict(BEFORE[preset]).to_dict()
    # fields that only make sense together are varied together
    groups = {"r1_weight": ("r1_weight", "r1_every"), "lr_g": ("lr_g", "lr_d"), "lr_d": ("lr_g", "lr_d"),
              "beta1_g": ("beta1_g", "beta1_d", "beta2_g", "beta2_d"), "beta1_d": ("beta1_g", "beta1_d", "beta2_g", "beta2_d"),
              "beta2_g": ("beta1_g", "beta1_d", "beta2_g", "beta2_d"), "beta2_d": ("beta1_g", "beta1_d", "beta2_g", "beta2_d"),
              "g_width": ("g_width", "d_width"), "d_width": ("g_width", "d_width")}
    variants: dict[str, dict] = {}
    for name in now:
        if now[name] == before[name] or name in ("seconds", "steps", "snapshot_every"):
            continue
        keys = groups.get(name, (name,))
        label = ", ".join(f"{k}={now[k]}" for k in keys if now[k] != before[k])
        variants[label] = {k: now[k] for k in keys}
    return variants


# What was tried on top of the final settings and lost (kept in the table so a reader sees it).
TRIED = {
    "mnist-dcgan": {"now + augment=translation": dict(augment="translation"),
                    "now + spectral_norm, hinge": dict(spectral_norm=True, loss="hinge", r1_weight=0.0)},
    "mnist-mlp": {"now + r1_weight=1.0": dict(r1_weight=1.0, r1_every=16)},
}


def main() -> int:
    """Run the ablation and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["mnist-dcgan", "mnist-mlp"], choices=list(BEFORE))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "ablation.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fcd_floor(BENCHMARK_FCD_N, "mnist")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = ["| preset | settings | steps | FCD-5k | classes |", "|---|---|---|---|---|"]
    for preset in args.presets:
        variants = {"before": {}, **{f"before + {k}": v for k, v in changes(preset).items()}, "now (all together)": None,
                    **{k: {**PRESETS[preset].config().to_dict(), **v} for k, v in TRIED.get(preset, {}).items()}}
        results: dict[str, list[tuple[int, float, int]]] = {name: [] for name in variants}
        for turn, seed in enumerate(seeds):
            names = list(variants)
            names = names[turn % len(names):] + names[:turn % len(names)]
            for name in names:
                overrides = variants[name]
                config = (PRESETS[preset].config(seed=seed) if overrides is None
                          else TrainConfig.from_dict({**BEFORE[preset], **overrides, "seed": seed}).validate())
                trainer, steps = train_for(preset, args.seconds, seed, progress=False, config=config)
                c = evaluate(trainer)
                results[name].append((steps, float(c["fcd"]), int(c["classes"].split("/")[0])))
                print(f"  {preset} seed {seed} {name}: {steps} steps, FCD {c['fcd']}, {c['classes']}", file=sys.stderr)
        for name, values in results.items():
            steps, fcd, classes = (statistics.median(v[i] for v in values) for i in range(3))
            rows.append(f"| {preset} | {name} | {steps:.0f} | {fcd:.1f} | {classes:.0f}/10 |")
    text = (f"Machine: {machine()}\nSeeds {args.seeds}, {args.seconds:g} s of training each (median over seeds).\n\n"
            + "\n".join(rows) + "\n")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
