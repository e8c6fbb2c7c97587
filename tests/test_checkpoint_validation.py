"""Checkpoint and config loaders validate before they trust: every bad file is a one-line CheckpointError."""

from __future__ import annotations

import errno
import json
import resource
import time
from pathlib import Path

import pytest
import torch

from ckpt_mutations import edit_header, edit_meta, join, set_path, split
from gan_core import PRESETS, CheckpointError, GanError, Trainer
from gan_core import runs
from gan_core.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_checkpoint, read_metadata, save_checkpoint, trainer_from_bytes


@pytest.fixture(scope="module")
def ring_blob(tmp_path_factory) -> bytes:
    trainer = Trainer(PRESETS["ring8"].config(g_width=16, d_width=16, device="cpu"))
    trainer.step()
    folder = tmp_path_factory.mktemp("ring")
    save_checkpoint(trainer, folder)
    return (folder / WEIGHTS_FILE).read_bytes()


def _write(folder: Path, blob: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / WEIGHTS_FILE).write_bytes(blob)
    return folder


def _refused(blob: bytes, folder: Path, match: str) -> None:
    """read_metadata/load_checkpoint/trainer_from_bytes all refuse with a one-line CheckpointError naming `match`."""
    _write(folder, blob)
    for call in (lambda: read_metadata(folder), lambda: load_checkpoint(folder, device="cpu"),
                 lambda: trainer_from_bytes(blob, device="cpu")):
        with pytest.raises(CheckpointError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("path, value", [
    ("step", "abc"), ("step", float("nan")), ("step", float("inf")), ("step", 10**30), ("step", -3),
    ("seconds", "x"), ("seconds", -1.0), ("seconds", float("inf")),
    ("final_metrics", {"fcd": "low"}), ("final_metrics", [1, 2]), ("last_record", {"loss_d": "x"}),
    ("class_names", "abc"), ("class_names", [1, 2]), ("owner", 5), ("name", ["x"]), ("status", {}),
    ("format_version", "1"), ("config", "ring8"), ("config.z_dim", "huge"), ("config.z_dim", [1]),
    ("config.seed", float("inf")), ("config.lr_g", {"a": 1}), ("sample_shape", "2"), ("sample_shape", [0]),
    ("sample_shape", [-2]), ("sample_shape", []), ("sample_shape", [3]),
])
def test_wrong_type_metadata_is_refused_naming_the_field(ring_blob, tmp_path, path, value):
    blob = edit_meta(ring_blob, lambda m: set_path(m, path, value))
    _refused(blob, tmp_path / "run", path.split(".")[-1])


def test_huge_sample_shape_is_refused_before_building_anything(tmp_path):
    trainer = Trainer(PRESETS["mnist-mlp"].config(g_width=8, d_width=8, device="cpu"))
    save_checkpoint(trainer, tmp_path / "good")
    blob = edit_meta((tmp_path / "good" / WEIGHTS_FILE).read_bytes(), lambda m: m.update(sample_shape=[1, 700, 700]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="sample_shape"):
        trainer_from_bytes(blob, device="cpu")
    assert time.perf_counter() - start < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def _tensors(blob: bytes, change) -> bytes:
    from safetensors.torch import load, save

    header, _ = split(blob)
    tensors = load(blob)
    change(tensors)
    return save(tensors, metadata=header["__metadata__"])


@pytest.mark.parametrize("name, change", [
    ("rng_state", lambda t: t.update(rng_state=torch.zeros(10, dtype=torch.uint8))),
    ("rng_state", lambda t: t.update(rng_state=torch.zeros(t["rng_state"].numel(), dtype=torch.float32))),
    ("rng_state", lambda t: t.update(rng_state=t["rng_state"].view(-1, 1))),
    ("opt_g", lambda t: t.update({"opt_g.exp_avg": torch.zeros(3)})),
    ("opt_g", lambda t: t.update({"opt_g.x.exp_avg": torch.zeros(3)})),
    ("opt_g.0.exp_avg", lambda t: t.update({"opt_g.0.exp_avg": torch.zeros(3)})),
    ("opt_d.99", lambda t: t.update({"opt_d.99.exp_avg": torch.zeros(3)})),
    ("opt_g.0.step", lambda t: t.update({"opt_g.0.step": torch.zeros(3)})),
    ("G.net.0.weight", lambda t: t.update({"G.net.0.weight": torch.zeros(1, 1)})),
    ("G.net.0.weight", lambda t: t.update({"G.net.0.weight": t["G.net.0.weight"].double()})),
    ("extra", lambda t: t.update({"extra": torch.zeros(1)})),
    ("D.net.0.bias", lambda t: t.pop("D.net.0.bias")),
])
def test_bad_tensors_are_refused_naming_the_tensor(ring_blob, tmp_path, name, change):
    blob = _tensors(ring_blob, change)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        trainer_from_bytes(blob, device="cpu")
    _write(tmp_path / "run", blob)
    with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
        load_checkpoint(tmp_path / "run", device="cpu")


def test_deeply_nested_json_is_refused(ring_blob, tmp_path):
    header, data = split(ring_blob)
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps(header)[:-1] + f', "junk": {deep}}}'
    _refused(join(None, data, text), tmp_path / "a", "corrupt|nest")
    blob = edit_header(ring_blob, lambda h: h["__metadata__"].update(gan_playground='{"a": ' + deep + "}"))
    _refused(blob, tmp_path / "b", "nest|metadata")


@pytest.mark.parametrize("change", [
    lambda h: h["__metadata__"].update(extra=5),
    lambda h: h.update(__metadata__=["x"]),
    lambda h: h["G.net.0.weight"].update(shape=[10**12, 10**12]),
    lambda h: h["G.net.0.weight"].update(shape=[-1, 4]),
    lambda h: h["G.net.0.weight"].update(shape="4"),
    lambda h: h["G.net.0.weight"].update(dtype="F99"),
    lambda h: h["G.net.0.weight"].update(data_offsets=[0, 10**15]),
    lambda h: h["G.net.0.weight"].update(data_offsets=[-8, 8]),
    lambda h: h.update(x=[1, 2]),
])
def test_malformed_headers_are_refused(ring_blob, tmp_path, change):
    _refused(edit_header(ring_blob, change), tmp_path / "run", "corrupt|header|metadata|shape|dtype|offsets")


def test_list_runs_lists_unreadable_folders_with_an_error(ring_blob, tmp_path):
    _write(tmp_path / "good", ring_blob)
    _write(tmp_path / "junk-step", edit_meta(ring_blob, lambda m: m.update(step="abc", class_names=5, config=[])))
    _write(tmp_path / "garbage", b"\xff" * 64)
    (tmp_path / "empty").mkdir()
    found = {r.name: r for r in runs.list_runs(tmp_path, include_pretrained=False)}
    assert set(found) == {"good", "junk-step", "garbage"}
    assert found["good"].error == "" and found["good"].step == 1
    for name in ("junk-step", "garbage"):
        info = found[name]
        assert info.error.startswith("unreadable: ") and info.meta == {}
        assert (info.step, info.dataset, info.class_names, info.conditional, info.is_points) == (0, "?", [], False, False)
        assert name in info.label


def test_runinfo_properties_are_safe_on_junk_meta(tmp_path):
    for meta in ({"step": "abc", "config": [], "class_names": 5, "sample_shape": 3},
                 {"step": float("nan"), "config": {"conditional": "yes"}, "class_names": [1, None], "dataset": {}}):
        info = runs.RunInfo(tmp_path, "x", "saved", meta, 0.0)
        assert isinstance(info.step, int) and isinstance(info.label, str) and isinstance(info.class_names, list)
        assert isinstance(info.dataset, str) and isinstance(info.is_points, bool) and isinstance(info.owner, str)


@pytest.mark.parametrize("code, match", [(errno.ENOSPC, "is full; free some space"), (errno.EROFS, "GAN_RUNS_DIR"),
                                         (errno.EACCES, "GAN_RUNS_DIR"), (errno.ENOENT, "removed")])
def test_storage_faults_are_one_line_messages_and_keep_the_old_checkpoint(tmp_path, monkeypatch, code, match):
    import os

    trainer = Trainer(PRESETS["ring8"].config(g_width=16, d_width=16, device="cpu"))
    save_checkpoint(trainer, tmp_path)
    good, good_cfg = (tmp_path / WEIGHTS_FILE).read_bytes(), (tmp_path / CONFIG_FILE).read_bytes()
    trainer.step()
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the second rename fails: the first file must be rolled back
            raise OSError(code, os.strerror(code))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CheckpointError, match=match) as info:
        save_checkpoint(trainer, tmp_path)
    monkeypatch.setattr(os, "replace", real_replace)
    assert "\n" not in str(info.value)
    assert (tmp_path / WEIGHTS_FILE).read_bytes() == good and (tmp_path / CONFIG_FILE).read_bytes() == good_cfg
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert load_checkpoint(tmp_path, device="cpu").step_count == 0


def test_enospc_while_writing_is_a_message(tmp_path, monkeypatch):
    import os

    trainer = Trainer(PRESETS["ring8"].config(g_width=16, d_width=16, device="cpu"))

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(CheckpointError, match="is full; free some space"):
        save_checkpoint(trainer, tmp_path / "run")
    monkeypatch.undo()
    assert not list((tmp_path / "run").iterdir())


def test_remove_orphan_temp_files(tmp_path):
    import os

    from gan_core.checkpoint import remove_orphan_temp_files

    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "some-run").mkdir()
    old = [run / ".model.safetensors.abc12345.tmp", tmp_path / "some-run" / ".config.json.x_y2k9ab.tmp"]
    keep = [run / ".model.safetensors.new12345.tmp", run / "notes.tmp", run / "model.safetensors", run / ".hidden",
            run / ".bashrc.tmp", run / ".a.b.c.d.e.f.tmp.tmp2"]
    for p in old + keep:
        p.write_bytes(b"x")
    for p in old + keep[1:]:
        os.utime(p, (time.time() - 3600, time.time() - 3600))
    assert remove_orphan_temp_files(tmp_path) == 2  # the runs folder: its run folders too
    assert all(not p.exists() for p in old) and all(p.exists() for p in keep)
    assert remove_orphan_temp_files(tmp_path / "missing") == 0


def test_a_checkpoint_over_the_run_memory_budget_is_refused_before_building(ring_blob, monkeypatch):
    monkeypatch.setenv("GAN_RUN_MEMORY_MB", "0.1")  # this ring8 run needs ~0.4 MB
    with pytest.raises(CheckpointError, match="config is too large to load here.*g_width/d_width"):
        trainer_from_bytes(ring_blob, device="cpu")
    monkeypatch.setenv("GAN_RUN_MEMORY_MB", "64")
    assert trainer_from_bytes(ring_blob, device="cpu").step_count == 1


@pytest.mark.parametrize("preset", ["ring8", "mnist-mlp", "mnist-dcgan", "mnist-cdcgan"])
def test_the_budget_counts_the_real_parameters(preset):
    """The estimate is (state) + batch_size x (activations per sample): its state part, recovered from two
    batch sizes, is within a factor 2 of the real parameters x 4 bytes x (weights, grads, 2 Adam moments, EMA)."""
    from gan_core.budget import estimate_run_bytes

    from gan_core.data import DATASETS

    config = PRESETS[preset].config(device="cpu")
    spec = DATASETS[config.dataset]
    trainer = Trainer(config, sample_shape=spec.shape, class_names=spec.class_names)
    real = 4 * (4 * sum(trainer.num_parameters.values()) + (trainer.num_parameters["G"] if config.ema > 0 else 0))
    classes = len(trainer.class_names)
    e2, e4 = (estimate_run_bytes(config.replace(batch_size=b), trainer.sample_shape, classes) for b in (2, 4))
    state = e2 - (e4 - e2)
    assert real / 2 <= state <= 2 * real, (state, real)
    assert estimate_run_bytes(config, trainer.sample_shape, classes) > real


def test_a_huge_config_is_refused_quickly_without_allocating():
    from gan_core.budget import check_run_budget
    from gan_core.errors import ConfigError

    config = PRESETS["mnist-dcgan"].config(device="cpu")
    check_run_budget(config, (1, 28, 28), 2 * 2**30, 0)  # a normal preset passes (and warms the meta kernels)
    huge = config.replace(g_width=2048, d_width=2048, batch_size=4096, z_dim=1024)
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(ConfigError, match=r"needs about .* GB.*lower g_width/d_width \(2048/2048\), batch_size \(4096\)"):
        check_run_budget(huge, (1, 28, 28), 2 * 2**30, 10)
    seconds, grown_kib = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(f"huge config refused in {seconds:.3f} s, peak RSS +{grown_kib / 1024:.1f} MiB")
    assert seconds < 0.5 and grown_kib < 20 * 1024
