"""GAN Playground engine: configs, data, models, losses, the trainer, checkpoints and metrics.

Pure PyTorch; never imports Streamlit (the app in playground.py / pages/ builds on this package).
"""

__version__ = "0.1.0"

from .config import PRESETS, TrainConfig, get_preset  # noqa: E402
from .errors import CheckpointError, ConfigError, DataUnavailable, GanError  # noqa: E402
from .trainer import Diverged, StepRecord, Trainer  # noqa: E402

__all__ = ["PRESETS", "TrainConfig", "get_preset", "Trainer", "StepRecord", "Diverged",
           "GanError", "ConfigError", "DataUnavailable", "CheckpointError", "__version__"]
