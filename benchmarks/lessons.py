"""Headless runs of the training lessons (gan_core/lessons.py): the step at which each lesson's check first
sees its effect, and the CPU seconds it took to get there, with the live metrics the app measures.

    python benchmarks/lessons.py                      # every training lesson, seed of its preset
    python benchmarks/lessons.py --lessons game,collapse --seeds 0,1

Pairs are trained the way the app trains them: step-keyed draws, one step of A then one of B. The
quality pass (and the collapse warning) runs every `--metrics-every` steps, as the app's runs every few
seconds. tests/test_lessons.py imports `run_lesson` from here.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_core.lessons import LESSONS, Lesson, Moment, Side, check, get_lesson  # noqa: E402
from gan_core.live.quality import measure, with_collapse_warning  # noqa: E402
from gan_core.live.view import HISTORY_FIELDS  # noqa: E402
from gan_core.trainer import Trainer  # noqa: E402


class _Run:
    """One side: its trainer, step history and live metrics."""

    def __init__(self, config, keyed: bool):
        self.trainer = Trainer(config, step_keyed_draws=keyed)
        self.history: dict[str, list[float]] = {name: [] for name in HISTORY_FIELDS}
        self.metrics = None
        self.rng = torch.Generator().manual_seed(0)

    def step(self) -> None:
        record = self.trainer.step()
        for name in HISTORY_FIELDS:
            self.history[name].append(float(getattr(record, name)))

    def measure(self) -> None:
        self.metrics = with_collapse_warning(measure(self.trainer, self.rng, self.metrics), self.trainer.step_count)

    def side(self) -> Side:
        return Side(self.history, self.metrics, self.trainer.config.to_dict())


def run_lesson(lesson: Lesson, max_steps: int, seed: Optional[int] = None,
               metrics_every: int = 50) -> tuple[Optional[Moment], int, float, list[_Run]]:
    """Train the lesson's run (or pair) until its check sees the effect or `max_steps`; returns (the moment
    or None, the steps trained, CPU seconds, the sides)."""
    config_a, config_b = lesson.configs()
    if seed is not None:
        config_a = config_a.replace(seed=seed)
        config_b = config_b.replace(seed=seed) if config_b is not None else None
    runs = [_Run(config_a, keyed=config_b is not None)] + ([_Run(config_b, keyed=True)] if config_b else [])
    started = time.process_time()
    for step in range(1, max_steps + 1):
        for run in runs:
            run.step()
        if step % metrics_every == 0:
            for run in runs:
                run.measure()
        if step % 10 == 0 or step % metrics_every == 0:
            moment = check(lesson, runs[0].side(), runs[1].side() if len(runs) > 1 else None)
            if moment is not None:
                return moment, step, time.process_time() - started, runs
    return None, max_steps, time.process_time() - started, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lessons", default="", help="comma-separated lesson keys (default: the 2D toy lessons)")
    parser.add_argument("--seeds", default="", help="comma-separated seeds (default: each preset's own)")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--metrics-every", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    keys = args.lessons.split(",") if args.lessons else [x.key for x in LESSONS if x.preset.startswith("ring8")]
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [None]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    for key in keys:
        lesson = get_lesson(key)
        for seed in seeds:
            moment, steps, seconds, runs = run_lesson(lesson, args.max_steps, seed, args.metrics_every)
            warning = runs[0].metrics.warning if runs[0].metrics is not None else ""
            seen = f"step {moment.step}: {moment.text}" if moment else "NOT SEEN"
            print(f"{key:12s} seed {seed if seed is not None else 'preset'}: {steps:5d} steps, {seconds:6.1f} CPU s | {seen}"
                  f"{' | warning on A' if warning else ''}", flush=True)


if __name__ == "__main__":
    main()
