"""ONNX export: the exported generator gives the same samples in onnxruntime as in PyTorch, for any batch
size; the CLI writes it atomically and turns a bad run folder into one line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from gan_test_utils import REPO
from test_cli import run_cli
from gan_core import get_preset
from gan_core.checkpoint import save_checkpoint
from gan_core.export import export_run, write_export
from gan_core.generator import load_generator
from gan_core.trainer import Trainer

TOLERANCE = 1e-4  # max |ONNX - PyTorch| per value; fp32 on the CPU, measured differences are about 1e-6
PRETRAINED = REPO / "assets" / "pretrained"
TINY_RUNS = {  # preset, overrides: one of each generator family
    "dcgan": ("mnist-dcgan", dict(g_width=8, d_width=8)),
    "cdcgan": ("mnist-cdcgan", dict(g_width=8, d_width=8)),
    "mlp": ("mnist-mlp", dict(g_width=16, d_width=16)),
    "cmlp": ("mnist-mlp", dict(g_width=16, d_width=16, conditional=True)),
    "toy": ("ring8", dict(g_width=16, d_width=16)),
}


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory) -> dict[str, Path]:
    """A run folder per generator family, trained 6 steps (EMA on, so G and its EMA differ)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("export")
    runs = {}
    for key, (preset, overrides) in TINY_RUNS.items():
        trainer = Trainer(get_preset(preset).config(batch_size=16, ema=0.9, **overrides))
        for _ in range(6):
            trainer.step()
        runs[key] = save_checkpoint(trainer, base / key).parent
    torch.set_num_threads(threads)
    return runs


def onnx_samples(model: bytes, z: torch.Tensor, labels: torch.Tensor | None) -> np.ndarray:
    """Run the exported model in onnxruntime on the CPU."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feeds = {"z": z.numpy()} | ({"label": labels.numpy()} if labels is not None else {})
    return session.run(None, feeds)[0]


def assert_matches_pytorch(run: Path, model: bytes) -> None:
    generator = load_generator(run, device="cpu")
    for batch in (1, 7):  # the batch axis is dynamic: sizes other than the traced one work
        z = torch.randn(batch, generator.config.z_dim, generator=torch.Generator().manual_seed(batch))
        labels = torch.arange(batch) % generator.num_classes if generator.num_classes else None
        got = onnx_samples(model, z, labels)
        want = generator.sample(z=z, labels=labels).numpy()
        assert got.shape == want.shape == (batch, *generator.sample_shape)
        assert np.abs(got - want).max() <= TOLERANCE, f"{run.name}, batch {batch}: max diff {np.abs(got - want).max():.2e}"


@pytest.mark.parametrize("key", list(TINY_RUNS))
def test_onnx_gives_the_same_samples_as_pytorch(tiny_runs, key):
    exported = export_run(tiny_runs[key])
    assert_matches_pytorch(tiny_runs[key], exported.model)
    inputs = [i.name for i in ort.InferenceSession(exported.model, providers=["CPUExecutionProvider"]).get_inputs()]
    assert inputs == (["z", "label"] if key.startswith("c") else ["z"])


@pytest.mark.parametrize("name", ["mnist-dcgan", "mnist-cdcgan"])
def test_bundled_pretrained_generators_export(name):
    exported = export_run(PRETRAINED / name)
    assert_matches_pytorch(PRETRAINED / name, exported.model)
    props = {p.key: p.value for p in onnx.load_from_string(exported.model).metadata_props}
    assert props["gan_playground.source"] == name and props["gan_playground.weights"] == "EMA"
    assert json.loads(props["gan_playground.sample_shape"]) == [1, 28, 28]
    assert len(json.loads(props["gan_playground.class_names"])) == (10 if name == "mnist-cdcgan" else 0)


def test_the_ema_weights_are_exported_not_the_raw_generator(tiny_runs, tmp_path):
    """What the app samples from: the EMA generator (here moved well away from G so the two tell apart)."""
    from gan_core.checkpoint import load_checkpoint

    trainer = load_checkpoint(tiny_runs["dcgan"], device="cpu")
    with torch.no_grad():
        for p in trainer.G_ema.parameters():
            p.add_(0.05 * torch.randn_like(p))
    run = save_checkpoint(trainer, tmp_path / "ema").parent
    z = torch.randn(4, trainer.config.z_dim)
    got = onnx_samples(export_run(run).model, z, None)
    with torch.no_grad():
        ema, raw = (net.eval()(z).numpy() for net in (trainer.G_ema, trainer.G))
    assert np.abs(got - ema).max() <= TOLERANCE
    assert np.abs(got - raw).max() > 100 * TOLERANCE


def test_readme_says_what_goes_in_and_comes_out(tiny_runs):
    conditional = export_run(tiny_runs["cdcgan"]).readme
    assert "`z`: float32, shape (batch, 64)" in conditional and "`label`: int64, shape (batch,)" in conditional
    assert "in [0, 9]" in conditional and "(batch, 1, 28, 28)" in conditional and "[-1, 1]" in conditional
    toy = export_run(tiny_runs["toy"]).readme
    assert "`points`: float32 (batch, 2)" in toy and "label" not in toy and "[-1, 1]" not in toy


def test_readme_example_runs_as_written(tiny_runs, tmp_path, monkeypatch):
    """The README's Python snippet works on the file it comes with."""
    write_export(tiny_runs["cdcgan"], tmp_path / "g.onnx")
    readme = (tmp_path / "g.README.md").read_text()
    snippet = readme.split("```python\n")[1].split("```")[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, "README snippet", "exec"), scope)  # noqa: S102 (our own generated text)
    assert scope["images"].shape == (8, 1, 28, 28) and np.abs(scope["images"]).max() <= 1.0


def test_a_label_outside_the_classes_is_an_error_in_onnxruntime(tiny_runs):
    model = export_run(tiny_runs["cdcgan"]).model
    with pytest.raises(Exception, match="(?i)indices|out of bounds|out of range"):
        onnx_samples(model, torch.randn(1, 64), torch.tensor([10]))


def test_zip_bundle_holds_model_and_readme(tiny_runs, tmp_path):
    assert write_export(tiny_runs["toy"], tmp_path / "toy.zip") == [tmp_path / "toy.zip"]
    with zipfile.ZipFile(tmp_path / "toy.zip") as archive:
        assert sorted(archive.namelist()) == ["toy.README.md", "toy.onnx"]
        model = archive.read("toy.onnx")
        assert "toy.onnx" in archive.read("toy.README.md").decode()
    assert_matches_pytorch(tiny_runs["toy"], model)


def test_cli_exports_onnx_with_readme(tiny_runs, tmp_path):
    out = tmp_path / "g.onnx"
    result = run_cli("export", str(tiny_runs["cdcgan"]), "--format", "onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "g.onnx" in result.stderr and "g.README.md" in result.stderr
    assert "`label`" in (tmp_path / "g.README.md").read_text()
    assert_matches_pytorch(tiny_runs["cdcgan"], out.read_bytes())


@pytest.mark.parametrize("damage", ["truncated", "foreign", "missing"])
def test_cli_bad_run_is_one_line_and_leaves_nothing(tiny_runs, tmp_path, damage):
    run = tmp_path / "run"
    run.mkdir()
    weights = (tiny_runs["dcgan"] / "model.safetensors").read_bytes()
    if damage == "truncated":
        (run / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    elif damage == "foreign":
        from safetensors.torch import save

        (run / "model.safetensors").write_bytes(save({"weight": torch.zeros(3)}))
    out = tmp_path / "out" / "g.onnx"
    result = run_cli("export", str(run), "--format", "onnx", "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: ")
    expected = {"truncated": "corrupt or truncated", "foreign": "not a GAN Playground checkpoint", "missing": "not a GAN Playground run"}
    assert expected[damage] in result.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir()), "nothing may be left behind"


def test_cli_failed_export_keeps_the_previous_files(tiny_runs, tmp_path):
    out = tmp_path / "g.onnx"
    assert run_cli("export", str(tiny_runs["toy"]), "--format", "onnx", "--out", str(out)).returncode == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.safetensors").write_bytes(b"\x00" * 64)
    assert run_cli("export", str(tmp_path / "bad"), "--format", "onnx", "--out", str(out)).returncode == 2
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    wrong = run_cli("export", str(tiny_runs["toy"]), "--format", "onnx", "--out", str(tmp_path / "g.txt"))
    assert wrong.returncode == 2 and ".onnx" in wrong.stderr and not (tmp_path / "g.txt").exists()
