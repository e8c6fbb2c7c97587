"""The command line, end to end, as a user runs it (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gan_test_utils import REPO
from gan_core import PRESETS


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "gan_core", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


def test_help_and_presets_list_every_preset():
    out = run_cli("presets")
    assert out.returncode == 0
    for name in PRESETS:
        assert name in out.stdout
    helped = run_cli("train", "--help")
    assert helped.returncode == 0 and "--batch-size" in helped.stdout and "--lr-g" in helped.stdout


@pytest.fixture(scope="module")
def cdcgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "c"
    result = run_cli("train", "--preset", "mnist-cdcgan", "--steps", "12", "--g-width", "16", "--d-width", "16",
                     "--snapshot-every", "5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_train_writes_checkpoint_metrics_and_grids(cdcgan_run):
    out, result = cdcgan_run
    assert "12/12" in result.stderr and "img/s" in result.stderr  # the progress bar
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    lines = (out / "metrics.csv").read_text().splitlines()
    assert lines[0].startswith("step,loss_d,loss_g,d_real,d_fake") and len(lines) == 13
    pngs = sorted(p.name for p in (out / "samples").glob("step_*.png"))
    assert pngs == ["step_000000.png", "step_000005.png", "step_000010.png", "step_000012.png"]


def test_sample_png_and_npz_with_label(cdcgan_run, tmp_path):
    out, _ = cdcgan_run
    result = run_cli("sample", str(out), "--n", "16", "--label", "3", "--out", str(tmp_path / "s.npz"))
    assert result.returncode == 0, result.stderr
    npz = np.load(tmp_path / "s.npz")
    assert npz["images"].shape == (16, 28, 28) and npz["images"].dtype == np.uint8
    assert (npz["labels"] == 3).all()
    assert run_cli("sample", str(out), "--n", "64", "--out", str(tmp_path / "s.png")).returncode == 0
    assert Image.open(tmp_path / "s.png").size[0] >= 8 * 28


def test_refuses_to_overwrite_a_run_and_resumes_it(cdcgan_run):
    out, _ = cdcgan_run
    again = run_cli("train", "--preset", "mnist-cdcgan", "--steps", "2", "--out", str(out))
    assert again.returncode == 2 and "already holds a run" in again.stderr
    resumed = run_cli("train", "--preset", "mnist-cdcgan", "--steps", "3", "--resume", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "done: 15 steps" in resumed.stderr


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "batch_size must be an integer in [2, 4096], got 0"),
    (["--lr-g", "-1"], "lr_g must be a number"),
    (["--dataset", "imagenet"], "dataset must be one of"),
    (["--conditional"], "conditional=True needs a labelled dataset"),
])
def test_bad_config_is_one_line_no_traceback(tmp_path, args, message):
    result = run_cli("train", "--preset", "ring8", "--steps", "1", *args, "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_corrupt_checkpoint_is_one_line_no_traceback(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    result = run_cli("sample", str(tmp_path), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "corrupt" in result.stderr


def test_sample_refuses_other_extensions_and_labels_on_unconditional(tmp_path):
    out = tmp_path / "r"
    assert run_cli("train", "--preset", "ring8", "--steps", "3", "--out", str(out)).returncode == 0
    bad = run_cli("sample", str(out), "--out", str(tmp_path / "s.jpg"))
    assert bad.returncode == 2 and ".png" in bad.stderr
    label = run_cli("sample", str(out), "--label", "1", "--out", str(tmp_path / "s.png"))
    assert label.returncode == 2 and "not a conditional run" in label.stderr
    points = run_cli("sample", str(out), "--n", "100", "--out", str(tmp_path / "p.npz"))
    assert points.returncode == 0 and np.load(tmp_path / "p.npz")["points"].shape == (100, 2)
