"""The evaluator behind the image metrics: a small CNN classifier bundled as safetensors in `assets/`
(trained by `benchmarks/train_evaluator.py`), the mean and covariance of its features on the real
test split, and checked reading and writing of those asset files (see gan_core.metrics).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import Tensor, nn

from .errors import EvaluatorError
from .paths import ASSETS_DIR, PROJECT_ROOT
from .safetensors_header import data_section, parse_header

NO_EVALUATOR_MESSAGE = "no evaluator for this dataset"
EVALUATOR_FORMAT = "gan-playground-evaluator/1"
STATS_FORMAT = "gan-playground-feature-stats/1"
FEATURE_DIM = 128
TRAIN_SCRIPT = "benchmarks/train_evaluator.py"
FLOOR_SEED = 1234

# Dataset names used by the app -> the evaluator that scores them (mnist-5k is a subset of mnist).
_EVALUATOR_FOR = {"mnist": "mnist", "mnist-5k": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar10"}
_BUNDLED = {"mnist"}

_lock = threading.RLock()
_evaluators: dict[tuple[str, str], Evaluator] = {}
_stats: dict[str, tuple[ReferenceStats, str]] = {}  # file -> (stats, evaluator checksum)


# ---------------------------------------------------------------------------------------------
# The evaluator network


class Evaluator(nn.Module):
    """Small CNN classifier: conv 32 - conv 64 - 128-d feature layer - class logits.

    The layer sizes follow the input shape, so the same class serves 1x28x28 grey and
    3x32x32 colour datasets. Inputs are images in [-1, 1].
    """

    def __init__(self, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10,
                 feature_dim: int = FEATURE_DIM) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.input_shape = (int(channels), int(height), int(width))
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        self.dataset = ""
        self.data_sha256 = ""
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.drop_conv = nn.Dropout(0.25)
        self.fc = nn.Linear(64 * (height // 4) * (width // 4), feature_dim)
        self.drop_fc = nn.Dropout(0.4)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """The (N, feature_dim) activations of the feature layer (after its ReLU)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(self.drop_conv(x).flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, num_classes)."""
        return self.head(self.drop_fc(self.features(x)))


@dataclass(frozen=True)
class ReferenceStats:
    """Mean (D,) and covariance (D, D), float64, of evaluator features on the real test split."""

    mu: Tensor
    sigma: Tensor
    n: int
    dataset: str


# ---------------------------------------------------------------------------------------------
# Which datasets have an evaluator, and loading it


def evaluator_key(dataset_name: str) -> str | None:
    """The evaluator a dataset name maps to ("mnist-5k" -> "mnist"), or None if it has none."""
    return _EVALUATOR_FOR.get(dataset_name.strip().lower())


def evaluator_paths(dataset: str) -> tuple[Path, Path]:
    """(weights file, reference-stats file) in assets/ for an evaluator key such as "mnist"."""
    return ASSETS_DIR / f"{dataset}_evaluator.safetensors", ASSETS_DIR / f"{dataset}_test_stats.safetensors"


def train_command(dataset: str) -> str:
    """The command that (re)creates the evaluator files of a dataset."""
    return f"python {TRAIN_SCRIPT} --dataset {dataset}"


def has_evaluator(dataset_name: str) -> bool:
    """True if image metrics exist for this dataset: MNIST (bundled) or a trained one in assets/.

    The app shows NO_EVALUATOR_MESSAGE instead of metrics when this is False.
    """
    key = evaluator_key(dataset_name)
    if key is None:
        return False
    if key in _BUNDLED:
        return True  # a missing bundled file is a broken install, reported by load_evaluator
    return all(p.is_file() for p in evaluator_paths(key))


def load_evaluator(dataset: str = "mnist", path: str | Path | None = None,
                   device: str | torch.device | None = None) -> Evaluator:
    """The evaluator of a dataset (or the file at `path`), in eval mode, on `device` (CPU default).

    Cached per file and device, safe to call from several threads. Raises EvaluatorError with a
    one-line message if the dataset has no evaluator or the file is missing, corrupt or foreign.
    """
    file = Path(path) if path is not None else evaluator_paths(require_key(dataset))[0]
    dev = torch.device(device) if device is not None else torch.device("cpu")
    cache_key = (str(file.resolve()), str(dev))
    with _lock:
        evaluator = _evaluators.get(cache_key)
        if evaluator is None:
            evaluator = _read_evaluator(file, evaluator_key(dataset) or dataset).to(dev)
            _evaluators[cache_key] = evaluator
    return evaluator


def load_reference_stats(dataset: str = "mnist", path: str | Path | None = None,
                         evaluator: Evaluator | None = None) -> ReferenceStats:
    """Feature mean and covariance of the real test split, checked against `evaluator` if given.

    Cached per file; raises EvaluatorError if the file is missing, damaged or was computed with
    a different evaluator than `evaluator`.
    """
    key = require_key(dataset) if path is None else (evaluator_key(dataset) or dataset)
    file = Path(path) if path is not None else evaluator_paths(key)[1]
    with _lock:
        cached = _stats.get(str(file.resolve()))
        if cached is None:
            cached = _read_stats(file, key)
            _stats[str(file.resolve())] = cached
    stats, evaluator_sha = cached
    if evaluator is not None and evaluator.data_sha256 != evaluator_sha:
        raise EvaluatorError(_problem(file, key, "was computed with a different evaluator file"))
    return stats


def clear_caches() -> None:
    """Forget loaded evaluators and reference stats (after retraining, in tests)."""
    with _lock:
        _evaluators.clear()
        _stats.clear()


def require_key(dataset: str) -> str:
    """The evaluator key of a dataset that has one, else EvaluatorError saying how to train one."""
    key = evaluator_key(dataset)
    if key is None or not has_evaluator(dataset):
        hint = f": train one with `{train_command(key)}`" if key else ""
        raise EvaluatorError(f"{NO_EVALUATOR_MESSAGE} ({dataset}){hint}")
    return key


def _display(file: Path) -> str:
    try:
        return str(file.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(file)


def _problem(file: Path, dataset: str, what: str) -> str:
    return f"metrics asset {_display(file)} {what}; re-create it with `{train_command(dataset)}`"


def save_asset(path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> str:
    """Write a safetensors asset whose header records the sha256 of its tensor data; return that hash.

    The header is written with sorted keys, so the same tensors and metadata always give the same
    bytes (and file sha256). Written to a temporary file first, then renamed.
    """
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    raw = save_safetensors_bytes(tensors)
    data = data_section(raw)
    data_sha = hashlib.sha256(data).hexdigest()
    header = json.loads(raw[8:len(raw) - len(data)])
    header["__metadata__"] = {**metadata, "data_sha256": data_sha}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header so the data starts 8-byte aligned
    raw = len(text).to_bytes(8, "little") + text + data
    load_safetensors_bytes(raw)  # refuse to write anything safetensors itself cannot read
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return data_sha


def read_asset(file: Path, dataset: str, fmt: str) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file whose data checksum matches its metadata."""
    if not file.is_file():
        raise EvaluatorError(_problem(file, dataset, "is missing"))
    raw = file.read_bytes()
    try:
        metadata = dict(parse_header(raw).metadata)
        tensors = load_safetensors_bytes(raw)
    except Exception:  # any parse failure means the same thing to the user: a damaged file
        raise EvaluatorError(_problem(file, dataset, "is corrupt or truncated (not a readable safetensors file)")) from None
    if metadata.get("format") != fmt:
        raise EvaluatorError(_problem(file, dataset, f"is not a {fmt} file"))
    # The data section hash catches bit flips that still parse; it is stored in the header.
    if hashlib.sha256(data_section(raw)).hexdigest() != metadata.get("data_sha256"):
        raise EvaluatorError(_problem(file, dataset, "does not match its checksum (damaged)"))
    return tensors, metadata


def _read_evaluator(file: Path, dataset: str) -> Evaluator:
    tensors, meta = read_asset(file, dataset, EVALUATOR_FORMAT)
    dataset = meta.get("dataset", dataset)
    try:
        shape = tuple(int(v) for v in meta["input_shape"].split(","))
        evaluator = Evaluator(shape, int(meta["num_classes"]), int(meta["feature_dim"]))  # type: ignore[arg-type]
    except (KeyError, ValueError, TypeError):
        raise EvaluatorError(_problem(file, dataset, "has missing or invalid metadata")) from None
    expected = {k: tuple(v.shape) for k, v in evaluator.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != found or any(t.dtype != torch.float32 for t in tensors.values()):
        raise EvaluatorError(_problem(file, dataset, "has unexpected tensor names or shapes"))
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise EvaluatorError(_problem(file, dataset, "contains non-finite weights"))
    evaluator.load_state_dict(tensors)
    evaluator.dataset = dataset
    evaluator.data_sha256 = meta["data_sha256"]
    evaluator.requires_grad_(False)
    return evaluator.eval()


def _read_stats(file: Path, dataset: str) -> tuple[ReferenceStats, str]:
    tensors, meta = read_asset(file, dataset, STATS_FORMAT)
    mu, sigma = tensors.get("mu"), tensors.get("sigma")
    ok = (mu is not None and sigma is not None and set(tensors) == {"mu", "sigma"} and mu.dtype == torch.float64
          and sigma.dtype == torch.float64 and mu.ndim == 1 and tuple(sigma.shape) == (mu.shape[0], mu.shape[0]))
    if not ok or not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
        raise EvaluatorError(_problem(file, dataset, "has unexpected tensor names, shapes or values"))
    stats = ReferenceStats(mu=mu, sigma=sigma, n=int(meta.get("n", 0)), dataset=meta.get("dataset", dataset))
    return stats, meta.get("evaluator_data_sha256", "")
