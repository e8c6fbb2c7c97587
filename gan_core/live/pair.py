"""An A/B pair: two runs of one session that share the seed, the data order and the fixed noise, and
differ only in the config fields chosen for B (loss, label smoothing, D steps...).

A pair holds ONE training slot and ONE worker thread, which steps the two trainers in lockstep: one
step of A, then one step of B, so both sides always stand at the same step (equal steps, not equal
wall-clock: the curves are compared step by step, and a side with 5 D steps takes longer per step).
Pause, step and stop act on both sides at once (between two rounds). Each side is an ordinary `Job`
(its own view, history, side tasks and run folder); the pair saves them as two runs linked to each
other by `pair` in their metadata: {"id", "side": "A" or "B", "other": the other run's folder name}.

What is shared exactly (the trainers use step-keyed draws, see `Trainer(step_keyed_draws=True)`):
- the seed: the initial weights are the same when the model fields (arch, widths, z_dim, dropout...)
  are the same;
- the fixed noise (and fixed labels) of the sample grids, when z_dim is the same;
- the real batches and the noise of every step, when batch_size is the same: the D update right
  before G's update, and G's update itself, get identical inputs on both sides; a side with more D
  steps per G step gets extra batches of its own for its extra D updates (nothing else shifts);
- the live view's and the metrics' random samples (seeded from the seed).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..config import TrainConfig
from ..runner import RunWriter
from ..trainer import Trainer
from .job import Controls, Job, JobHost, JobSettings, TrainerFactory
from .loop import TrainingLoop, finish, load_trainer, outcome, save
from .scheduler import SlotLoad
from .view import JobState, JobView

SIDES = ("A", "B")


def keyed_trainer(config: TrainConfig) -> Trainer:
    """The trainer of a pair's side: step-keyed draws, so both sides see the same batches and noise."""
    return Trainer(config, step_keyed_draws=True)


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, A's value, B's value) for every config field that differs, in the config's order."""
    return [(name, a.get(name), b.get(name)) for name in a if a.get(name) != b.get(name)]


class _SideHost:
    """What a side (a Job) asks its host, answered for the pair: the pair holds the slot and the thread."""

    def __init__(self, pair: "PairJob"):
        self.pair = pair

    @property
    def settings(self) -> JobSettings:
        return self.pair.host.settings

    def queue_position(self, job: Job) -> Optional[int]:
        return self.pair.host.queue_position(self.pair)

    def withdraw(self, job: Job) -> None:
        """The pair leaves the queue itself (PairJob.stop)."""

    def release(self, job: Job) -> None:
        """The pair gives its slot back once both sides have ended (run_pair)."""

    def expired(self, job: Job) -> bool:
        return self.pair.host.expired(self.pair)

    def threads_per_job(self) -> int:
        return self.pair.host.threads_per_job()

    def load(self, job: Job) -> Optional[SlotLoad]:
        return self.pair.host.load(self.pair)


@dataclass(frozen=True)
class PairView:
    """An immutable picture of a pair for the page: both sides' views and the pair's own state."""

    id: str
    session: str
    name: str
    a: JobView
    b: JobView
    state: JobState
    message: str
    queue_position: Optional[int]
    version: int

    @property
    def active(self) -> bool:
        """True while the pair is queued, loading, running or paused."""
        return self.state.active

    @property
    def step(self) -> int:
        """The step both sides have reached."""
        return min(self.a.step, self.b.step)

    @property
    def sides(self) -> tuple[JobView, JobView]:
        """(A's view, B's view)."""
        return self.a, self.b

    @property
    def differences(self) -> list[tuple[str, Any, Any]]:
        """The config fields in which B differs from A: (field, A's value, B's value)."""
        return config_differences(self.a.config, self.b.config)


class PairJob(Controls):
    """Two runs of one session trained side by side in one slot and one thread (see the module doc)."""

    side_class: type = Job  # a worker process builds its sides as worker.RemoteJob

    def __init__(self, host: JobHost, session: str, config_a: TrainConfig, config_b: TrainConfig,
                 run_dir_a: Path, run_dir_b: Path, preset_a: str = "", preset_b: str = "",
                 start_paused: bool = False, trainer_factory: Optional[TrainerFactory] = None,
                 owner: Optional[str] = None):
        self.host = host
        self.id = uuid.uuid4().hex[:12]
        self.session = session
        self._init_controls(threading.Condition(), start_paused)
        side_host = _SideHost(self)
        factory = trainer_factory or keyed_trainer
        side = self.side_class
        self.a = side(side_host, session, config_a, run_dir_a, preset_a, trainer_factory=factory, lock=self._cond, owner=owner)
        self.b = side(side_host, session, config_b, run_dir_b, preset_b, trainer_factory=factory, lock=self._cond, owner=owner)
        self.trainer_factory = factory
        self.sides = (self.a, self.b)
        pair_id = uuid.uuid4().hex[:12]
        for side, name, other in zip(self.sides, SIDES, reversed(self.sides)):
            side.pair = {"id": pair_id, "side": name, "other": other.name}
        self.name = f"{self.a.name} vs {self.b.name}"

    # --- what the manager and the pages see ---------------------------------------------------
    @property
    def state(self) -> JobState:
        """The pair's state: that of a side still active (A's when both are), else A's final state."""
        return next((s.state for s in self.sides if s.state.active), self.a.state)

    @property
    def run_dirs(self) -> tuple[Path, ...]:
        """Both sides' run folders."""
        return self.a.run_dir, self.b.run_dir

    @property
    def run_dir(self) -> Path:
        """A's run folder (the pair's first)."""
        return self.a.run_dir

    @property
    def _version(self) -> int:
        return self.a._version + self.b._version

    def view(self) -> PairView:
        """Both sides' views and the pair's state (build it once per page run)."""
        position = self.host.queue_position(self)
        a, b = self.a.view(), self.b.view()
        state = next((v.state for v in (a, b) if v.state.active), a.state)
        message = next((v.message for v in (a, b) if v.state == state), a.message)
        return PairView(id=self.id, session=self.session, name=self.name, a=a, b=b, state=state, message=message,
                        queue_position=position, version=a.version + b.version)

    def wait_for_view(self, version: int, timeout: float = 2.0) -> bool:
        """Wait until a side's view has changed since `version` (see `PairView.version`) or the pair ended."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._version <= version and self.state.active:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # --- commands: Controls' pause, resume, step_once, set_speed act on the pair ---------------------
    def stop(self, wait: bool = True, timeout: float = 30.0, reason: str = "") -> None:
        """Stop both sides (a queued pair never starts); the worker saves both runs."""
        for side in self.sides:
            side.stop(wait=False, reason=reason)  # its stop flag, seen while the trainers load
        super().stop(wait=wait, timeout=timeout, reason=reason)

    def _shown_state(self) -> JobState:
        return self.a.state

    def _set_state(self, state: JobState, message: str) -> None:
        for side in self.sides:
            side._set_state(state, message)

    # --- life cycle ------------------------------------------------------------------------------
    def start(self, worker: Optional[Callable[["PairJob"], None]] = None) -> None:
        """Start `worker(pair)` (default: run_pair) in the pair's one thread."""
        with self._cond:
            if self._stop:
                return
            self._set_state(JobState.LOADING, "preparing")
        self._thread = threading.Thread(target=worker or run_pair, args=(self,), name=f"gan-job-{self.id}", daemon=True)
        self._thread.start()

    def cancel(self, message: str) -> None:
        """End a pair that never started (it held no slot)."""
        for side in self.sides:
            side.cancel(message)


class _SideEnded(Exception):
    """Side `index` raised `error` (it diverged, its data failed...): the pair ends."""

    def __init__(self, index: int, error: Exception):
        super().__init__(str(error))
        self.index, self.error = index, error


def _on_side(index: int, action: Callable[..., Any], *args: Any) -> Any:
    try:
        return action(*args)
    except Exception as exc:
        raise _SideEnded(index, exc) from exc


def run_pair(pair: PairJob) -> None:
    """The whole life of a started pair: load both sides, step them in lockstep until a stop or either
    side's budget, save both (or keep a diverged side's last good checkpoint), free the one slot."""
    sides = pair.sides
    trainers: list[Optional[Trainer]] = [None, None]
    writers: list[Optional[RunWriter]] = [None, None]
    ends = [(JobState.STOPPED, "", ""), (JobState.STOPPED, "", "")]
    try:
        torch.set_num_threads(pair.host.threads_per_job())
        for i, side in enumerate(sides):
            trainers[i] = _on_side(i, load_trainer, side)
            if trainers[i] is None:
                return
        for i, side in enumerate(sides):
            # Each side saves its own checkpoints (with the pair link in their metadata).
            writers[i] = _on_side(i, RunWriter, trainers[i], side.run_dir, False, 0)
            _on_side(i, save, side, writers[i], "running")
        loops = [TrainingLoop(side, trainer, writer) for side, trainer, writer in zip(sides, trainers, writers)]
        ended = _lockstep(pair, loops)
        ends = [ended, ended]
    except _SideEnded as failed:
        other = 1 - failed.index
        ends[failed.index] = outcome(sides[failed.index], failed.error)
        state = ends[failed.index][0].value
        ends[other] = (JobState.STOPPED, f"stopped: side {SIDES[failed.index]} {state} at step "
                                         f"{_steps(trainers[failed.index]):,}", "")
    except Exception as exc:  # a bug outside both sides: end both, say why
        ends = [outcome(sides[0], exc)] * 2
    finally:
        try:
            for i, side in enumerate(sides):
                finish(side, trainers[i], writers[i], *ends[i])
        finally:
            pair.host.release(pair)


def _steps(trainer: Optional[Trainer]) -> int:
    return trainer.step_count if trainer is not None else 0


def _lockstep(pair: PairJob, loops: list[TrainingLoop]) -> tuple[JobState, str, str]:
    """Rounds of one step of A then one step of B until a stop or a budget; returns how both end."""
    for loop in loops:
        loop.view.run(0)
    while True:
        command = pair.next_command()
        if command.stop:
            step = loops[0].trainer.step_count
            return JobState.STOPPED, command.reason or f"stopped at step {step:,}", ""
        for name, loop in zip(SIDES, loops):
            ended = loop.budget_end()
            if ended is not None:
                return ended[0], f"{ended[1]} (side {name})", ""
        if not pair.take_turn():  # fair sharing: the pair's turn at its one slot
            continue
        for i, loop in enumerate(loops):
            _on_side(i, loop.advance, command)


# --- the comparison table of the page --------------------------------------------------------------
def _last(view: JobView, column: str) -> Optional[float]:
    values = view.history.get(column) or []
    return float(values[-1]) if values else None


def _metric_numbers(view: JobView) -> dict[str, Optional[float]]:
    m = view.metrics
    if m is None or m.kind == "none":
        return {}
    if m.kind == "image":
        return {f"FCD ({m.fcd_n:,} samples, lower is better)": m.fcd[-1] if m.fcd else None,
                f"Classes drawn (of {m.n_modes})": m.covered[-1] if m.covered else None}
    return {f"Modes covered (of {m.n_modes})": m.covered[-1] if m.covered else None,
            "Good samples (%)": 100 * m.hq_fraction[-1] if m.hq_fraction else None}


def comparison_rows(view: PairView) -> list[dict[str, str]]:
    """The live numbers of both sides and their difference, one row per quantity (strings, ready to show):
    step, the latest losses and D's verdicts, speed, and the quality metrics (FCD or 2D modes)."""
    a, b = view.a, view.b
    numbers: list[tuple[str, Optional[float], Optional[float], str]] = [
        ("Step", a.step, b.step, ",.0f"),
        ("D loss", _last(a, "loss_d"), _last(b, "loss_d"), ".3f"),
        ("G loss", _last(a, "loss_g"), _last(b, "loss_g"), ".3f"),
        ("D(x) on real", _last(a, "d_real"), _last(b, "d_real"), ".3f"),
        ("D(G(z)) on fakes", _last(a, "d_fake"), _last(b, "d_fake"), ".3f"),
        ("G's gradient norm", _last(a, "grad_norm_g"), _last(b, "grad_norm_g"), ".3g"),
        ("Training seconds", a.train_seconds, b.train_seconds, ".1f"),
    ]
    ma, mb = _metric_numbers(a), _metric_numbers(b)
    numbers += [(name, ma.get(name), mb.get(name), ".1f" if "FCD" in name or "%" in name else ".0f")
                for name in dict.fromkeys([*ma, *mb])]

    def text(value: Optional[float], fmt: str, sign: str = "") -> str:
        return "–" if value is None else format(value, sign + fmt)

    return [{"Quantity": name, "A": text(va, fmt), "B": text(vb, fmt),
             "B − A": text(vb - va if va is not None and vb is not None else None, fmt, "+")}
            for name, va, vb, fmt in numbers]
