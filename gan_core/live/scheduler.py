"""Fair sharing of the training slots among the admitted runs, and an honest estimate of a queued run's wait.

The manager admits up to `max_admitted` runs; they share `slots` training slots round-robin, in quanta:

- a run that wants to train asks for a turn (`FairShare.request`); a free slot is granted at once,
  otherwise the run joins the back of the line;
- a run trains for one quantum (`Turns`, default `DEFAULT_QUANTUM_SECONDS` of steps), then yields: it goes
  to the back of the line and the run at the front gets the slot (if nobody waits, it keeps its slot);
- a run that pauses, waits between slow-motion steps, or ends gives its slot back at once (`done`).

So every admitted run advances (and its live view, which is due at the start of each quantum, refreshes)
at least once per round of `ceil(admitted / slots)` quanta. The line is strictly first-in first-out.
Nothing here knows about threads or processes: a grant is a callback, which a worker thread turns into
an event (`Turns.grant`) and a worker process receives as a message (worker.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Optional

DEFAULT_QUANTUM_SECONDS = 0.25
REFRESH_TARGET_SECONDS = 5.0  # every admitted run's view refreshes at least this often (sets the default cap)

Grant = Callable[[], None]


class FairShare:
    """`slots` training slots shared round-robin by the runs that ask for them (see the module doc).
    Thread-safe; grants are called outside the lock (they must not block)."""

    def __init__(self, slots: int):
        self.slots = max(1, int(slots))
        self._lock = threading.Lock()
        self._holders: set[Hashable] = set()
        self._line: deque[tuple[Hashable, Grant]] = deque()

    def request(self, key: Hashable, grant: Grant) -> None:
        """`key` wants a slot: granted at once if it holds one or one is free and nobody waits, else it
        joins the back of the line."""
        with self._lock:
            if key not in self._holders and not self._waiting(key):
                self._line.append((key, grant))
            grants = self._fill()
            if key in self._holders and not any(g is grant for g in grants):
                grants.append(grant)
        _call(grants)

    def yield_turn(self, key: Hashable, grant: Grant) -> None:
        """`key`'s quantum is over: it keeps its slot if nobody waits, else goes to the back of the line."""
        with self._lock:
            self._holders.discard(key)
            if not self._waiting(key):
                self._line.append((key, grant))
            grants = self._fill()
        _call(grants)

    def done(self, key: Hashable) -> None:
        """`key` gives its slot back (paused, ended) and leaves the line; the next in line gets the slot."""
        with self._lock:
            self._holders.discard(key)
            self._line = deque((k, g) for k, g in self._line if k != key)
            grants = self._fill()
        _call(grants)

    def holding(self, key: Hashable) -> bool:
        """True while `key` holds a slot."""
        with self._lock:
            return key in self._holders

    def counts(self) -> tuple[int, int]:
        """(slots in use, runs waiting for one)."""
        with self._lock:
            return len(self._holders), len(self._line)

    def _waiting(self, key: Hashable) -> bool:
        return any(k == key for k, _ in self._line)

    def _fill(self) -> list[Grant]:
        grants = []
        while self._line and len(self._holders) < self.slots:
            key, grant = self._line.popleft()
            self._holders.add(key)
            grants.append(grant)
        return grants


def _call(grants: list[Grant]) -> None:
    for grant in grants:
        grant()


class Turns:
    """A worker's side of the fair share: `take()` before each training step returns once the run holds a
    slot for the current quantum; `idle()` gives the slot back before the worker waits (pause, slow motion).

    `ask(kind)` reaches the `FairShare` ("request", "yield" or "done"); its answer is a call of `grant()`,
    possibly from another thread (or, in a worker process, from the thread that reads the server's messages).
    """

    def __init__(self, ask: Callable[[str], None], quantum_seconds: float = DEFAULT_QUANTUM_SECONDS):
        self._ask = ask
        self.quantum = max(0.001, float(quantum_seconds))
        self._granted = threading.Event()
        self._holding = False
        self._asked = False
        self._since = 0.0
        self._held = 0.0  # seconds of finished turns
        self.waits = 0  # how many times the run waited for a turn (tests, benchmarks)

    def own_time(self) -> float:
        """Seconds this run has held a slot (a clock that stands still while others train): the metrics and
        checkpoint cadences of a shared run count this, so they do not fall due at every turn."""
        return self._held + (time.monotonic() - self._since if self._holding else 0.0)

    def grant(self) -> None:
        """The run got a slot (the FairShare's answer)."""
        self._granted.set()

    def take(self, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Block until the run may train a step; False if `cancelled()` became true while it waited."""
        if self._holding and time.monotonic() - self._since < self.quantum:
            return True
        if not self._asked:
            self._granted.clear()
            self._asked = True
            if self._holding:
                self._held += time.monotonic() - self._since
            self._ask("yield" if self._holding else "request")
            self._holding = False
        while not self._granted.wait(0.05):
            if cancelled():
                return False
        self._holding, self._asked, self._since = True, False, time.monotonic()
        self.waits += 1
        return True

    def idle(self) -> None:
        """The worker is about to wait (paused, between slow-motion steps, ending): give the slot back."""
        if self._holding or self._asked:
            if self._holding:
                self._held += time.monotonic() - self._since
            self._holding, self._asked = False, False
            self._granted.clear()
            self._ask("done")


@dataclass(frozen=True)
class SlotLoad:
    """How the server's training capacity is shared right now, as one run sees it (for the page)."""

    mode: str  # "fair" (slots shared in quanta), "queue" (first come, first served) or "ray" (a CPU each)
    slots: int  # training slots (runs that train at the same instant)
    cores: int  # CPU cores of the server
    admitted: int  # runs sharing the slots (loading, running or paused)
    queued: int  # runs waiting to be admitted
    max_admitted: int
    estimated_wait: Optional[float] = None  # seconds until this queued run starts (None: not queued, or unknown)

    def sharing_text(self) -> str:
        """'sharing 2 cores with 19 other runs' (or 'the only run on 2 cores'), for the speed caption."""
        cores = f"{self.cores} core{'s' * (self.cores != 1)}"
        others = self.admitted - 1
        if self.mode == "ray":  # each run has one CPU of a node to itself
            return (f"one CPU of a Ray cluster with {cores}: " + ("the only run training" if others <= 0
                    else f"{self.admitted} runs train at once"))
        if self.mode == "queue" or others <= 0:
            return f"{cores}, {self.slots} training slot{'s' * (self.slots != 1)}: " + (
                "the only run training" if others <= 0 else f"{self.admitted} runs train at once")
        share = min(1.0, self.slots / max(1, self.admitted))
        return (f"sharing {cores} with {others} other run{'s' * (others != 1)}: each trains about "
                f"{share:.0%} of the time")


    def capacity_text(self) -> str:
        """What this server does with many runs, in one sentence (Home page, sidebar)."""
        if self.mode == "ray":
            cpus = f"its {self.cores} CPUs" if self.cores else "its CPUs"
            return (f"This server trains on a Ray cluster: each run on one of {cpus}, as many at once as there "
                    f"are CPUs; further runs wait for one (up to {self.max_admitted} runs followed).")
        if self.mode == "queue":
            return (f"This server trains up to {self.slots} run{'s' * (self.slots != 1)} at once, each with a "
                    "training slot to itself; further runs wait in a queue, first come, first served.")
        return (f"This server trains up to {self.max_admitted} runs at once: they share its {self.slots} training "
                f"slot{'s' * (self.slots != 1)} in turns of a fraction of a second, so every run keeps learning; "
                "further runs wait in a queue.")

    def queued_text(self, position: Optional[int]) -> str:
        """The queued banner: position, why, and the estimated wait."""
        if self.mode == "ray":
            return (f"**Queued, position {position or '?'}.** Every CPU of the Ray cluster ({self.cores}) is training "
                    f"another run, or its node is still starting yours. Yours starts by itself; keep this tab open.")
        if self.mode == "queue":
            why = ("The server's only training slot is" if self.slots == 1 else f"All {self.slots} training slots are")
            why += " busy with other sessions' runs."
        else:
            why = f"The server already trains {self.admitted} run{'s' * (self.admitted != 1)}, as many as it takes at once."
        wait = wait_text(self.estimated_wait)
        wait = (f" Estimated wait: **{wait}** (if the runs ahead train to their budget)." if wait
                else " No estimate yet (the runs ahead have not measured their speed).")
        return (f"**Queued, position {position or '?'}.** {why}{wait} Yours starts by itself; keep this tab open.")


def wait_text(seconds: Optional[float]) -> str:
    """'about 3 min' for an estimated wait ('' when there is none)."""
    if seconds is None:
        return ""
    if seconds < 60:
        return "less than a minute"
    return f"about {math.ceil(seconds / 60):,} min"


def remaining_train_seconds(config: Any, step: int, train_seconds: float,
                            seconds_per_step: Optional[float]) -> Optional[float]:
    """Training seconds a run still needs for its budget (the smaller of its step and time budgets), or None
    when it has a step budget only and no speed is known yet."""
    left: list[float] = []
    if getattr(config, "seconds", 0):
        left.append(max(0.0, config.seconds - train_seconds))
    if getattr(config, "steps", 0):
        if seconds_per_step is None:
            return min(left) if left else None
        left.append(max(0.0, (config.steps - step) * seconds_per_step))
    return min(left) if left else None


def estimated_waits(remaining: list[float], queued: list[float], slots: int, max_admitted: int) -> list[float]:
    """Wall seconds until each queued run is admitted, in line order.

    `remaining`: training seconds the admitted runs still need; `queued`: those of the queued runs (their
    whole budget). The admitted runs share the slots equally (processor sharing: with n > slots runs each
    trains slots/n of the time), a run ends when its training seconds are used up, and the first in line
    takes its place. Assumes every run trains to its budget (one that is stopped early frees its place sooner)."""
    slots, cap = max(1, slots), max(1, max_admitted)
    active = sorted(max(0.0, r) for r in remaining)
    line, waits, now = list(queued), [], 0.0
    while line:
        while line and len(active) < cap:
            waits.append(now)
            active.append(max(0.0, line.pop(0)))
        if not line:
            break
        rate = min(1.0, slots / len(active))
        first = min(active)
        now += first / rate
        active = sorted(r - first for r in active)[1:]
    return waits
