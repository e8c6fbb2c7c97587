"""How many torch threads a CPU run trains with: the count that trains fastest right now, measured.

A lone run may use every core, but more threads are not always faster: a tiny model gains little from
intra-op parallelism, and when a browser watching the run shares the cores, a second thread is often
descheduled and every parallel op waits for it. `ThreadTuner` tries the candidate counts in turn for a few
seconds of training each, keeps the fastest, and tries again after a while (the machine's load changes:
tabs open and close, other runs start).

Its clock should count only the time spent in training steps (the job's loop passes one): a metrics pass
or a view that lands inside one probe would otherwise make that count look slow. Each probe first lets
the new count settle (the first steps at a new count are slow), and the counts are tried in alternation,
twice each, so that a burst of load from a browser does not decide it alone.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

ENV_TORCH_THREADS = "GAN_TORCH_THREADS"  # set: exactly this many threads, no tuning

SETTLE_SECONDS = 0.5  # training time at a new count before it is measured
PROBE_SECONDS = 2.0  # then measured for this long (about 60 mnist-dcgan steps, 300 ring8 steps)
ROUNDS = 2  # each count is probed this many times, in alternation (2, 1, 2, 1)
HOLD_SECONDS = 60.0  # then the fastest is kept this long before the next probe
GAP_SECONDS = 3.0  # a longer gap between two calls (paused, waiting for a turn) restarts the window


def fixed_by_operator() -> bool:
    """True when $GAN_TORCH_THREADS sets the thread count (then it is used as it is)."""
    return bool(os.environ.get(ENV_TORCH_THREADS, "").strip())


def candidates(allowed: int) -> list[int]:
    """The thread counts worth trying when `allowed` are allowed: all of them, half, and one."""
    return sorted({max(1, allowed), max(1, allowed // 2), 1}, reverse=True)


class ThreadTuner:
    """Chooses the thread count from measured steps per second (call `choose` about once a second while
    the run trains)."""

    def __init__(self, probe_seconds: float = PROBE_SECONDS, hold_seconds: float = HOLD_SECONDS,
                 clock: Callable[[], float] = time.monotonic, settle_seconds: float = SETTLE_SECONDS,
                 rounds: int = ROUNDS):
        self.probe_seconds, self.hold_seconds, self.clock = probe_seconds, hold_seconds, clock
        self.settle_seconds, self.rounds = settle_seconds, max(1, rounds)
        self._allowed = 0
        self._todo: list[int] = []
        self._totals: dict[int, list[float]] = {}  # count -> [steps, seconds] measured in this probe
        self._current = 1
        self._window: Optional[tuple[float, int]] = None  # (start time, start step) at the current count
        self._settled = False  # whether the window is past its settling time
        self._last_call = 0.0
        self._hold_until = 0.0

    @property
    def rates(self) -> dict[int, float]:
        """Steps per second measured at each count in the last probe (all its rounds together)."""
        return {n: steps / seconds for n, (steps, seconds) in self._totals.items() if seconds > 0}

    def choose(self, allowed: int, step: int) -> int:
        """The thread count to train with now, given that `allowed` may be used and the run is at `step`."""
        now = self.clock()
        if allowed <= 1:
            self._allowed, self._current, self._todo = allowed, 1, []
            return 1
        if allowed != self._allowed or (not self._todo and now >= self._hold_until):
            self._allowed, self._todo, self._totals = allowed, candidates(allowed) * self.rounds, {}
            self._start(self._todo[0], now, step)
        elif now - self._last_call > GAP_SECONDS:  # the run did not train meanwhile: measure afresh
            self._window = (now, step) if self._todo else None
        self._last_call = now
        if not self._todo or self._window is None:
            return self._current
        start, first = self._window
        if not self._settled:
            if now - start >= self.settle_seconds:
                self._window, self._settled = (now, step), True
        elif now - start >= self.probe_seconds:
            total = self._totals.setdefault(self._todo.pop(0), [0.0, 0.0])
            total[0] += step - first
            total[1] += now - start
            if self._todo:
                self._start(self._todo[0], now, step)
            else:
                rates = self.rates
                self._current = max(rates, key=lambda n: (rates[n], -n))
                self._window, self._hold_until = None, now + self.hold_seconds
        return self._current

    def _start(self, threads: int, now: float, step: int) -> None:
        self._current, self._window, self._last_call = threads, (now, step), now
        self._settled = self.settle_seconds <= 0
