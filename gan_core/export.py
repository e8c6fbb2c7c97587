"""A trained generator as an ONNX model, for use outside PyTorch (onnxruntime, a web page, another app).

The model is the generator the app samples from (`load_generator`: the EMA weights when the run kept
them), in eval mode, with a dynamic batch axis. It is built by `torch.onnx.export`'s torch.export-based
exporter (the default since PyTorch 2.9; the TorchScript one is deprecated), which needs the `onnx` and
`onnxscript` packages. A README travels with it: what goes in (z, and the label for conditional runs)
and what comes out ([-1, 1] images of shape C x H x W, or 2D points for the toy runs).
"""

from __future__ import annotations

import copy
import io
import json
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import Tensor, nn

from .checkpoint import atomic_write_bytes
from .errors import GanError
from .generator import Generator, load_generator

OPSET = 18  # not the exporter's newest: older runtimes (and onnxruntime-web builds) run it too
EXAMPLE_BATCH = 2  # torch.export treats a size-1 axis as fixed: trace with 2 so the batch axis stays dynamic
OUTPUT_SUFFIXES = (".onnx", ".zip")
_EXPORT_LOCK = threading.Lock()  # torch.export traces through process-wide state: one export at a time (app sessions)


class _OnnxGenerator(nn.Module):
    """G called as the ONNX model is: `(z)` or `(z, label)`, samples out."""

    def __init__(self, net: nn.Module, conditional: bool):
        super().__init__()
        self.net, self.conditional = net, conditional

    def forward(self, z: Tensor, label: Optional[Tensor] = None) -> Tensor:
        return self.net(z, label) if self.conditional else self.net(z)


@dataclass(frozen=True)
class OnnxExport:
    """An exported generator: the ONNX model's bytes and its README (Markdown)."""

    model: bytes
    readme: str
    name: str  # the run's name: files are <name>.onnx and <name>.README.md

    def zip_bytes(self) -> bytes:
        """A zip with <name>.onnx and <name>.README.md (what the app offers for download)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{self.name}.onnx", self.model)
            archive.writestr(f"{self.name}.README.md", self.readme)
        return buffer.getvalue()


def io_names(generator: Generator) -> tuple[list[str], str]:
    """The ONNX model's input names (['z'] or ['z', 'label']) and its output name ('images' or 'points')."""
    inputs = ["z", "label"] if generator.num_classes else ["z"]
    return inputs, "points" if generator.spec.kind == "points" else "images"


def generator_to_onnx(generator: Generator, source: str = "") -> bytes:
    """The ONNX model (bytes) of a loaded generator, batch axis dynamic; `source` names the run in its metadata."""
    try:
        import onnx  # noqa: F401  (the exporter needs both; say so in one line instead of a traceback)
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise GanError(f"ONNX export needs the onnx and onnxscript packages ({exc.name} is missing): "
                       "pip install -r requirements.txt") from None
    net = copy.deepcopy(generator.net).to("cpu").float().eval()  # the app's copy stays on its device
    module = _OnnxGenerator(net, bool(generator.num_classes)).eval()
    inputs, output = io_names(generator)
    example: tuple[Tensor, ...] = (torch.zeros(EXAMPLE_BATCH, generator.config.z_dim),)
    if generator.num_classes:
        example += (torch.zeros(EXAMPLE_BATCH, dtype=torch.long),)
    with _EXPORT_LOCK, torch.no_grad(), warnings.catch_warnings():
        # z and label share the batch axis; the exporter says it keeps one name for both, which is the point
        warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape constraints")
        program = torch.onnx.export(module, example, None, dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=inputs, output_names=[output],
                                    dynamic_shapes={name: {0: "batch"} for name in inputs})
    model = program.model_proto
    model.doc_string = f"GAN Playground generator{f' from {source}' if source else ''}: {output} {describe_output(generator)}"
    for key, value in _model_properties(generator, source).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def _model_properties(generator: Generator, source: str) -> dict[str, str]:
    """What the ONNX file says about itself (metadata_props), read back by any ONNX tool."""
    c = generator.config
    return {"gan_playground.source": source, "gan_playground.dataset": c.dataset, "gan_playground.arch": c.arch,
            "gan_playground.step": str(generator.meta.get("step", 0)), "gan_playground.z_dim": str(c.z_dim),
            "gan_playground.sample_shape": json.dumps(list(generator.sample_shape)),
            "gan_playground.class_names": json.dumps(list(generator.class_names) if generator.num_classes else []),
            "gan_playground.weights": "EMA" if c.ema > 0 else "G", "gan_playground.output": f"{io_names(generator)[1]} {describe_output(generator)}"}


def describe_output(generator: Generator) -> str:
    """One line: the type, shape and range of what the model returns."""
    if generator.spec.kind == "points":
        return "float32 (batch, 2), 2D points in the toy data's coordinates (not squashed to a range)"
    c, h, w = generator.sample_shape
    return f"float32 (batch, {c}, {h}, {w}) = (batch, C, H, W), values in [-1, 1] (tanh)"


def onnx_readme(generator: Generator, name: str) -> str:
    """The README (Markdown) that goes with `<name>.onnx`: inputs, output, how to run it."""
    c = generator.config
    inputs, output = io_names(generator)
    cond = generator.num_classes
    lines = [
        f"# {name}.onnx: a GAN Playground generator",
        "",
        f"Trained with GAN Playground: {c.arch}{' (conditional)' if cond else ''} on `{c.dataset}`, loss {c.loss}, "
        f"step {generator.meta.get('step', 0)}; {'the EMA (moving-average) weights, the ones the app samples from' if c.ema > 0 else 'the generator weights'}. "
        f"ONNX opset {OPSET} (tested with ONNX Runtime 1.30 on the CPU).",
        "",
        "## Inputs",
        "",
        f"- `z`: float32, shape (batch, {c.z_dim}). Latent vectors drawn from a standard normal N(0, I), "
        "as in training; batch is any size from 1 up.",
    ]
    if cond:
        names = generator.class_names
        classes = ("label k is the class named k" if list(names) == [str(i) for i in range(cond)]
                   else ", ".join(f"{i} = {n!r}" for i, n in enumerate(names)))
        lines.append(f"- `label`: int64, shape (batch,). The class to draw for each z, in [0, {cond - 1}] ({classes}); "
                     "a label outside that range is an error.")
    lines += ["", "## Output", "", f"- `{output}`: {describe_output(generator)}."]
    if generator.spec.kind == "points":
        lines.append("  Each row is one (x, y) point of the 2D distribution the generator learned.")
    else:
        lines.append("  To get 8-bit pixels: `((images + 1) * 127.5).round().clip(0, 255).astype(np.uint8)`"
                     + (" (one channel: grey)." if generator.sample_shape[0] == 1 else "."))
    feeds = '{"z": z' + (', "label": np.arange(8, dtype=np.int64) % ' + str(cond) if cond else "") + "}"
    lines += ["", "## Run it", "", "```python", "import numpy as np", "import onnxruntime as ort", "",
              f'session = ort.InferenceSession("{name}.onnx")',
              f"z = np.random.default_rng(0).standard_normal((8, {c.z_dim})).astype(np.float32)",
              f"{output} = session.run(None, {feeds})[0]",
              f"print({output}.shape)  # {_shape_text(generator, 8)}", "```", "",
              f"The ONNX file's metadata (`metadata_props`) holds the same facts: z_dim, class names, sample shape, "
              f"inputs {', '.join(inputs)}.", ""]
    return "\n".join(lines)


def _shape_text(generator: Generator, n: int) -> str:
    return str((n, *generator.sample_shape))


def export_run(run: str | Path, file_stem: Optional[str] = None) -> OnnxExport:
    """Export the generator of the run in `run` (a run folder or its model.safetensors) as ONNX + README;
    `file_stem` names the files (default: the run's folder name)."""
    path = Path(run)
    run_name = (path.name if path.is_dir() else path.parent.name) or "generator"
    generator = load_generator(path, device="cpu")
    stem = file_stem or run_name
    return OnnxExport(generator_to_onnx(generator, source=run_name), onnx_readme(generator, stem), stem)


def write_export(run: str | Path, out: str | Path) -> list[Path]:
    """Write the run's ONNX export to `out`: X.onnx with X.README.md beside it, or X.zip holding both.

    Everything is built in memory first and each file is written atomically, so a failure leaves any
    files already at those paths as they were. Returns the paths written."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise GanError(f"--out must end in .onnx (with a .README.md beside it) or .zip (both in one file), not {out.name!r}")
    if out.is_dir():
        raise GanError(f"{out} is a folder: give a file name ending in {suffix}")
    exported = export_run(run, file_stem=out.stem)
    if suffix == ".zip":
        atomic_write_bytes(out, exported.zip_bytes())
        return [out]
    readme = out.with_name(f"{out.stem}.README.md")
    atomic_write_bytes(readme, exported.readme.encode())
    atomic_write_bytes(out, exported.model)
    return [out, readme]
