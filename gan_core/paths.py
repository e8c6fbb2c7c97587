"""Where the engine finds bundled assets and keeps downloaded data and runs."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"


def data_cache_dir() -> Path:
    """Folder for torchvision downloads: $GAN_DATA_DIR, else ~/.cache/gan-playground/data."""
    env = os.environ.get("GAN_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "gan-playground" / "data"


def runs_dir() -> Path:
    """Folder where the app saves finished runs: $GAN_RUNS_DIR, else ./runs under the project."""
    env = os.environ.get("GAN_RUNS_DIR")
    return Path(env) if env else PROJECT_ROOT / "runs"
