"""When a training loop's side tasks run: every N steps and/or every S seconds, stretched so that a
task never takes more than its share of the loop's time.

One mechanism for the CLI's `RunWriter` (flush metrics.csv, sample grids, checkpoints) and the app's
job worker (live view, metrics, checkpoints), in the spirit of keras' callbacks: the loop calls
`run_due(tasks, step)` after every step and each task decides for itself whether it is due.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional


@dataclass
class Cadence:
    """Due every `steps` steps and/or every `seconds` of wall time (0 = not by that measure).

    With a `share` (e.g. 0.05), the time interval after a run grows to cost / share, so a slow task
    (a big sample grid, a metrics pass) uses at most that share of the loop's time. `first` is the
    wait before the first run by time (default: one interval). `clock` says what "seconds" are (default:
    wall time; a run that shares a training slot counts only the time it held the slot)."""

    seconds: float = 0.0
    steps: int = 0
    share: float = 0.0
    first: Optional[float] = None
    clock: Callable[[], float] = time.monotonic
    _next_time: float = field(init=False, repr=False)
    _next_step: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        wait = self.seconds if self.first is None else self.first
        self._next_time = self.clock() + wait if self.seconds > 0 else math.inf
        self._next_step = self.steps if self.steps > 0 else 0

    def due(self, step: int, now: float) -> bool:
        """Whether the task should run after `step`, at monotonic time `now`."""
        return now >= self._next_time or (self.steps > 0 and step >= self._next_step)

    def done(self, step: int, now: float, cost: float = 0.0) -> None:
        """Record a run that ended at `now` after `step` and took `cost` seconds."""
        if self.seconds > 0:
            self._next_time = now + max(self.seconds, cost / self.share if self.share > 0 else 0.0)
        if self.steps > 0:
            self._next_step = (step // self.steps + 1) * self.steps


@dataclass
class GrowingSteps:
    """Due at steps that grow geometrically: after `step`, next at (step + offset) * ratio - offset (at least
    one step later). E.g. ratio 1.15, offset 10, from step 1: steps 1, 3, 5, 8, 11, 15, ..., 64 times in 100,000 steps.
    For tasks whose interest fades as a run goes on (the generator's timeline)."""

    ratio: float = 1.15
    offset: float = 10.0
    next_step: int = 0

    def due(self, step: int, now: float) -> bool:
        """Whether the task should run after `step` (`now` is ignored: only steps count)."""
        return step >= self.next_step

    def done(self, step: int, now: float, cost: float = 0.0) -> None:
        """Record a run after `step`."""
        self.next_step = max(step + 1, math.ceil((step + self.offset) * self.ratio - self.offset))


@dataclass
class SideTask:
    """A named action with its cadence, e.g. SideTask("checkpoint", Cadence(seconds=20), save)."""

    name: str
    cadence: Cadence | GrowingSteps
    action: Callable[[], Any]

    def run(self, step: int) -> float:
        """Run now whatever the cadence says; returns the seconds it took (and restarts the cadence)."""
        clock = getattr(self.cadence, "clock", time.monotonic)
        started, at = time.monotonic(), clock()
        self.action()
        ended = time.monotonic()
        self.cadence.done(step, at + (ended - started), ended - started)
        return ended - started

    def run_if_due(self, step: int, now: Optional[float] = None) -> bool:
        """Run if due after `step` (`now`: the time on the cadence's clock, if known); True if it ran."""
        clock = getattr(self.cadence, "clock", time.monotonic)
        if now is None or clock is not time.monotonic:
            now = clock()
        if not self.cadence.due(step, now):
            return False
        self.run(step)
        return True


def run_due(tasks: Iterable[SideTask], step: int) -> list[str]:
    """Run every task that is due after `step`; returns the names of those that ran."""
    now = time.monotonic()
    return [task.name for task in tasks if task.run_if_due(step, now)]
