"""The generator's timeline: a bounded set of snapshots of a run's sampling generator (its EMA copy when
the run keeps one), so a finished run can be replayed and explored at any point of its training.

    RUN/timeline.safetensors   fp16 weights of G at up to 16 steps, the run's fixed noise, JSON metadata

Snapshots are taken at steps that grow geometrically (`cadence.GrowingSteps`) and thinned so that at
most `MAX_SNAPSHOTS` remain, spread evenly on a log(step + 10) scale over the run so far: step 0, a
few early ones where the generator changes fastest, and the rest out to the latest checkpoint, however
long the run turns out to be. RunWriter writes the file (atomically) right after each checkpoint, so
the CLI and the app both leave one. A reader checks the whole header (metadata, every tensor's name,
shape and dtype against the model the checkpoint's config describes) before it reads a tensor.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor

from .checkpoint import atomic_write_bytes, read_checkpoint_header
from .checkpoint_schema import MAX_TENSOR_BYTES
from .config import TrainConfig
from .device import resolve_device
from .errors import CheckpointError
from .generator import Generator
from .models import GanModule, build_generator
from .safetensors_header import HeaderError, SafetensorsHeader, read_header
from .trainer import Trainer

log = logging.getLogger(__name__)

TIMELINE_FILE = "timeline.safetensors"
TIMELINE_KEY = "gan_playground_timeline"
FORMAT = "gan-playground-timeline"
FORMAT_VERSION = 1
MAX_SNAPSHOTS = 16  # kept while training
MAX_FILE_SNAPSHOTS = 64  # the most a reader accepts (a file written with a larger cap elsewhere)
SPACING_OFFSET = 10.0  # spacing on log(step + 10): steps 0-10 count as one early stretch, not five frames
MAX_FIXED_NOISE = 512
SMALL_DTYPE = torch.float16  # 10 mantissa bits: samples within ~1e-3 of the fp32 generator's
_DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}
FLOAT_NAMES = ("F16", "BF16", "F32")


def thin(steps: list[int], keep: int = MAX_SNAPSHOTS, offset: float = SPACING_OFFSET) -> list[int]:
    """The steps to drop from `steps` so that at most `keep` remain, spread evenly on a log(step + offset)
    scale. The first and the last always stay; each drop takes the inner step whose two neighbours are
    closest together, so the widest gap stays as narrow as it can."""
    kept = sorted(set(steps))
    dropped: list[int] = []
    while len(kept) > max(keep, 2):
        gaps = [math.log((kept[i + 1] + offset) / (kept[i - 1] + offset)) for i in range(1, len(kept) - 1)]
        dropped.append(kept.pop(1 + gaps.index(min(gaps))))
    return dropped


def _small(value: Tensor) -> Tensor:
    """A copy of a weight or buffer on the CPU, floats in SMALL_DTYPE (never a view of the live tensor)."""
    value = value.detach().to("cpu")
    return (value.to(SMALL_DTYPE) if value.is_floating_point() else value.clone()).contiguous()


class TimelineRecorder:
    """Collects a run's snapshots in memory (at most MAX_SNAPSHOTS + 1, a few MB for the MNIST models)
    and writes them next to the checkpoint. `resume=True` continues the timeline already in `run_dir`."""

    def __init__(self, trainer: Trainer, run_dir: str | Path, resume: bool = False):
        self.trainer = trainer
        self.path = Path(run_dir) / TIMELINE_FILE
        self.snapshots: dict[int, dict[str, Tensor]] = {}
        if resume:
            self._continue_saved()

    def capture(self) -> None:
        """Snapshot the sampling generator at the trainer's current step (skipped if non-finite: a
        diverging run), then thin the set back to its bound."""
        step = self.trainer.step_count
        if step in self.snapshots:
            return
        state = {name: _small(value) for name, value in self.trainer.sampler.state_dict().items()}
        if any(v.is_floating_point() and not torch.isfinite(v).all() for v in state.values()):
            return
        self.snapshots[step] = state
        for old in thin(list(self.snapshots)):
            del self.snapshots[old]

    def save(self) -> Path:
        """Write timeline.safetensors atomically, with the current step as its last snapshot."""
        self.capture()
        tensors = {f"s{step}.{name}": value for step, state in self.snapshots.items() for name, value in state.items()}
        tensors["fixed_noise"] = self.trainer.fixed_noise.detach().float().cpu().contiguous()
        if self.trainer.fixed_labels is not None:
            tensors["fixed_labels"] = self.trainer.fixed_labels.detach().long().cpu().contiguous()
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "steps": sorted(self.snapshots),
                "network": "G_ema" if self.trainer.G_ema is not None else "G"}
        atomic_write_bytes(self.path, save_safetensors_bytes(tensors, metadata={TIMELINE_KEY: json.dumps(meta)}))
        return self.path

    def _continue_saved(self) -> None:
        """Take over the snapshots saved up to the resumed step; a missing or unreadable file starts afresh."""
        if not self.path.is_file():
            return
        try:
            timeline = open_timeline(self.path.parent)
            if timeline is None:
                return
            with timeline.reader() as read:
                for step in (s for s in timeline.steps if s <= self.trainer.step_count):
                    self.snapshots[step] = read(step)
        except CheckpointError as exc:
            log.warning("starting a new timeline: %s", exc)
            self.snapshots.clear()


class TimelineChanged(CheckpointError):
    """The timeline file was replaced (by a save of the run training) between its check and its reading."""


@dataclass(frozen=True)
class Timeline:
    """A run's checked timeline file: which steps it holds, the model they fit, the run's fixed noise."""

    path: Path
    steps: tuple[int, ...]
    config: TrainConfig
    meta: dict[str, Any]  # the checkpoint's metadata
    names: tuple[str, ...]  # the generator's state-dict keys
    header_text: str  # the checked metadata, to tell whether the file was replaced since

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one sample of the run."""
        return tuple(self.meta["sample_shape"])

    @property
    def class_names(self) -> tuple[str, ...]:
        """The run's class names."""
        return tuple(self.meta.get("class_names", ()))

    def reader(self) -> "_Reader":
        """A context giving `read(step) -> state dict (as saved)` from one open file."""
        return _Reader(self)

    def fixed_inputs(self) -> tuple[Tensor, Optional[Tensor]]:
        """The run's fixed noise (and class labels, conditional runs): the same z's at every snapshot."""
        with self.reader() as read:
            return read.tensor("fixed_noise"), (read.tensor("fixed_labels") if self.config.conditional else None)

    def build(self, step: int, device: str = "auto") -> Generator:
        """The generator as it was at `step` (float32 weights), ready to sample."""
        if step not in self.steps:
            raise CheckpointError(f"{self.path}: no snapshot at step {step} (it holds {', '.join(map(str, self.steps))})")
        net = build_generator(self.config, self.sample_shape, len(self.class_names))
        with self.reader() as read:
            load_state(net, read(step), self.path)
        target = resolve_device(device)
        return Generator(self.config, net.to(target).eval(), self.sample_shape, self.class_names, target,
                         {**self.meta, "step": step})


class _Reader:
    def __init__(self, timeline: Timeline):
        self.timeline = timeline

    def __enter__(self) -> "_Reader":
        try:
            self.file = safe_open(str(self.timeline.path), framework="pt")
            self.file.__enter__()
            same = (self.file.metadata() or {}).get(TIMELINE_KEY) == self.timeline.header_text
        except (SafetensorError, OSError, ValueError) as exc:
            raise _corrupt(self.timeline.path, exc) from None
        if not same:  # a training run saved a new timeline since it was checked (the open file is a snapshot)
            self.file.__exit__(None, None, None)
            raise TimelineChanged(f"{self.timeline.path} was replaced while being read (the run is training); try again")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.file.__exit__(*exc)

    def tensor(self, name: str) -> Tensor:
        try:
            return self.file.get_tensor(name)
        except (SafetensorError, OSError, ValueError) as exc:
            raise _corrupt(self.timeline.path, exc) from None

    def __call__(self, step: int) -> dict[str, Tensor]:
        return {name: self.tensor(f"s{step}.{name}") for name in self.timeline.names}


def load_state(net: GanModule, state: dict[str, Tensor], source: Any) -> None:
    """Load a snapshot's (fp16) state into `net`'s float32 weights; non-finite weights are refused."""
    if any(v.is_floating_point() and not torch.isfinite(v).all() for v in state.values()):
        raise CheckpointError(f"{source}: a snapshot holds NaN/inf weights")
    full = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        net.load_state_dict(full, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: a snapshot does not fit the model ({' '.join(str(exc).split())[:200]})") from None


def open_timeline(run_dir: str | Path) -> Optional[Timeline]:
    """The checked timeline of the run in `run_dir`; None if it has none (older runs, pretrained ones,
    uploads). A corrupt, truncated or foreign file, or one that does not fit the run, is a CheckpointError."""
    run_dir = Path(run_dir)
    path = run_dir / TIMELINE_FILE
    if not path.is_file():
        return None
    try:
        header = read_header(path)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    except HeaderError as exc:
        raise _corrupt(path, exc) from None
    # Read after the timeline: a run saves its checkpoint first, so this one is at least as new.
    meta, config, _ = read_checkpoint_header(run_dir)
    steps = _check_metadata(header, path, meta)
    names = _check_tensors(header, path, config, meta, steps)
    return Timeline(path, steps, config, meta, names, header.metadata[TIMELINE_KEY])


def _corrupt(path: Path, exc: BaseException) -> CheckpointError:
    detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return CheckpointError(f"{path} is corrupt or truncated, or not a safetensors file ({detail})")


def _check_metadata(header: SafetensorsHeader, path: Path, meta: dict[str, Any]) -> tuple[int, ...]:
    if TIMELINE_KEY not in header.metadata:
        raise CheckpointError(f"{path} is a safetensors file but not a GAN Playground timeline (no '{TIMELINE_KEY}' metadata)")
    try:
        info = json.loads(header.metadata[TIMELINE_KEY])
    except (ValueError, RecursionError):
        raise CheckpointError(f"{path}: the timeline metadata is not valid JSON") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a GAN Playground timeline")
    version = info.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT_VERSION:
        raise CheckpointError(f"{path}: timeline format_version {str(version)[:20]!r} is not one this version reads")
    steps = info.get("steps")
    run_step = meta.get("step", 0)
    if (not isinstance(steps, list) or not 1 <= len(steps) <= MAX_FILE_SNAPSHOTS
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= run_step for s in steps)
            or steps != sorted(set(steps))):
        raise CheckpointError(f"{path}: steps must be 1 to {MAX_FILE_SNAPSHOTS} increasing integers from 0 to the "
                              f"checkpoint's step {run_step}")
    return tuple(steps)


def _check_tensors(header: SafetensorsHeader, path: Path, config: TrainConfig, meta: dict[str, Any],
                   steps: tuple[int, ...]) -> tuple[str, ...]:
    """Every tensor the header declares against the generator the run's config describes (meta device)."""
    if header.data_bytes > MAX_TENSOR_BYTES:
        raise CheckpointError(f"{path}: declares {header.data_bytes / 2**30:.1f} GiB of tensors, more than a timeline may hold")
    with torch.device("meta"):
        try:
            g = build_generator(config, tuple(meta["sample_shape"]), len(meta.get("class_names", [])))
        except Exception as exc:
            raise CheckpointError(f"{path}: the run's config describes no model ({exc})") from None
    model = {k: (tuple(v.shape), _DTYPE_NAMES.get(v.dtype, str(v.dtype))) for k, v in g.state_dict().items()}
    expected = {f"s{step}.{k}": want for step in steps for k, want in model.items()}
    n = header.tensors.get("fixed_noise")
    if n is None or n.dtype != "F32" or len(n.shape) != 2 or not 1 <= n.shape[0] <= MAX_FIXED_NOISE or n.shape[1] != config.z_dim:
        raise CheckpointError(f"{path}: fixed_noise must be F32 [n <= {MAX_FIXED_NOISE}, {config.z_dim}]")
    expected["fixed_noise"] = (n.shape, "F32")
    if config.conditional:
        expected["fixed_labels"] = ((n.shape[0],), "I64")
    for name, (shape, dtype) in expected.items():
        entry = header.tensors.get(name)
        if entry is None:
            raise CheckpointError(f"{path}: the timeline does not fit the run (no tensor {name})")
        ok_dtype = entry.dtype in FLOAT_NAMES if dtype in FLOAT_NAMES and name.startswith("s") else entry.dtype == dtype
        if entry.shape != shape or not ok_dtype:
            raise CheckpointError(f"{path}: the timeline does not fit the run (tensor {name} is {entry.dtype} "
                                  f"{list(entry.shape)}, the model needs {dtype} {list(shape)})")
    extra = sorted(set(header.tensors) - set(expected))
    if extra:
        raise CheckpointError(f"{path}: tensor {extra[0][:80]} is not part of a GAN Playground timeline")
    return tuple(model)


def iter_snapshots(timeline: Timeline, net: GanModule) -> Iterator[int]:
    """Load each snapshot into `net` in turn (oldest first), yielding its step: one open file for all."""
    with timeline.reader() as read:
        for step in timeline.steps:
            load_state(net, read(step), timeline.path)
            yield step
