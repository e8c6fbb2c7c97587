"""End to end in headless Chromium: pick a run on the Runs page, download its generator as ONNX, and run the
downloaded model in onnxruntime (the same samples as the app's PyTorch generator)."""

from __future__ import annotations

import re
import zipfile

import numpy as np
import onnxruntime as ort
import torch
from browser_utils import assert_no_crash
from test_browser import open_app, screenshot

from gan_core.generator import load_generator

RUN = "e2e-mnist-cdcgan"  # made by make_tiny_runs; conditional, so the model takes z and a label


def test_download_onnx_from_the_runs_page_and_run_it(page, app_url, app_runs_dir, screenshots, tmp_path):
    open_app(page, app_url, "runs", "Runs")
    page.locator("[data-testid=stSelectbox]", has_text="Run").click()
    page.get_by_role("option", name=RUN).click()
    page.get_by_text(f"64 samples from {RUN}").wait_for(timeout=30_000)
    button = page.get_by_role("button", name="ONNX")
    with page.expect_download(timeout=120_000) as download:  # built on the click: a few seconds on a busy CPU
        button.click()
    archive = tmp_path / "download.zip"
    download.value.save_as(archive)
    assert download.value.suggested_filename == f"{RUN}-onnx.zip"
    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == [f"{RUN}.README.md", f"{RUN}.onnx"]
        model = bundle.read(f"{RUN}.onnx")
        readme = bundle.read(f"{RUN}.README.md").decode()
    assert "`label`: int64" in readme and "[-1, 1]" in readme

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    generator = load_generator(app_runs_dir / RUN, device="cpu")
    z = torch.randn(5, generator.config.z_dim, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 3, 7, 9])
    images = session.run(None, {"z": z.numpy(), "label": labels.numpy()})[0]
    assert images.shape == (5, 1, 28, 28)
    assert np.abs(images - generator.sample(z=z, labels=labels).numpy()).max() <= 1e-4

    assert_no_crash(page)
    page.set_viewport_size({"width": 1024, "height": 768})  # projector size: the button row must still read
    page.locator("[data-testid=stSelectbox]", has_text="Run").click()  # a trained generator for the docs
    page.get_by_role("option", name=re.compile(r"^mnist-cdcgan .*pretrained")).click()
    page.get_by_text("64 samples from mnist-cdcgan").wait_for(timeout=30_000)
    screenshot(page, screenshots, "runs-onnx-1024")
