"""Mutated checkpoints (wrong types in every metadata field, huge or negative shapes, bad dtypes and
offsets, optimiser keys without an index, a wrong RNG state, deep nesting, truncations, flipped
bytes) reach every loader: each either loads or fails with the project's one-line error, quickly and
without allocating what the file merely declares."""

from __future__ import annotations

import json
import random
import resource
import time

import pytest

from gan_core import get_preset
from gan_core.checkpoint import META_KEY, WEIGHTS_FILE, metadata_from_bytes, read_metadata, save_checkpoint, trainer_from_bytes
from gan_core.errors import GanError
from gan_core.generator import load_generator
from gan_core.runs import list_runs
from gan_core.uploads import import_upload
from gan_core.trainer import Trainer

JUNK = [None, "abc", -1, 10**12, 2**70, 1e308, float("nan"), True, [], {}, [[[[[[[[1]]]]]]]], "x" * 5000, [1, 3000, 3000]]
SMALL = dict(g_width=8, d_width=8, batch_size=16)


def split(blob: bytes) -> tuple[dict, dict, bytes]:
    """(header without metadata, metadata dict, data section) of a checkpoint."""
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + size])
    meta = json.loads(header.pop("__metadata__")[META_KEY])
    return header, meta, blob[8 + size:]


def join(header: dict, meta: object, data: bytes, raw_meta: str | None = None) -> bytes:
    text = json.dumps({**header, "__metadata__": {META_KEY: raw_meta if raw_meta is not None else json.dumps(meta)}}).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


def mutants(blob: bytes, rng: random.Random):
    """Every mutation of one real checkpoint, each as (what, bytes)."""
    header, meta, data = split(blob)
    for field in list(meta) + ["sample_shape", "class_names", "final_metrics", "last_record", "format_version"]:
        for value in JUNK:
            yield f"meta.{field}={str(value)[:20]}", join(header, {**meta, field: value}, data)
        yield f"meta.{field} removed", join(header, {k: v for k, v in meta.items() if k != field}, data)
    for key in ("g_width", "batch_size", "dataset", "arch", "conditional", "z_dim", "ema"):
        for value in JUNK[:9]:
            yield f"config.{key}={str(value)[:20]}", join(header, {**meta, "config": {**meta["config"], key: value}}, data)
    yield "meta not JSON", join(header, meta, data, raw_meta="{not json")
    yield "meta deeply nested", join(header, meta, data, raw_meta="[" * 5000 + "]" * 5000)
    yield "meta a list", join(header, meta, data, raw_meta="[1, 2]")
    names = sorted(header)
    for name in rng.sample(names, min(8, len(names))):
        entry = header[name]
        for change in ({"shape": []}, {"shape": [-1]}, {"shape": [10**9, 10**9]}, {"dtype": "F64"}, {"dtype": "XX"},
                       {"data_offsets": [0, 10**15]}, {"data_offsets": [8, 4]}, {"data_offsets": "junk"}, "junk"):
            mutated = {**entry, **change} if isinstance(change, dict) else change
            yield f"tensor {name} {change}", join({**header, name: mutated}, meta, data)
        yield f"tensor {name} removed", join({k: v for k, v in header.items() if k != name}, meta, data)
    weight = next(n for n in names if n.startswith("G."))
    for extra in ("opt_g.exp_avg", "opt_g.99999.exp_avg", "opt_g.0.bogus", "surprise", "rng_state"):
        yield f"extra tensor {extra}", join({**header, extra: header[weight]}, meta, data)
    for cut in sorted(rng.sample(range(1, len(blob)), 40)):
        yield f"truncated at {cut}", blob[:cut]
    for _ in range(150):
        at = rng.randrange(len(blob) if rng.random() < 0.5 else min(len(blob), 8 + int.from_bytes(blob[:8], "little")))
        yield f"byte {at} flipped", blob[:at] + bytes([blob[at] ^ (1 << rng.randrange(8))]) + blob[at + 1:]


def checkpoint_bytes(tmp_path, preset: str) -> bytes:
    trainer = Trainer(get_preset(preset).config(**SMALL))
    trainer.step()
    folder = tmp_path / f"src-{preset}"
    save_checkpoint(trainer, folder, {"owner": "u-x", "name": preset, "final_metrics": {"fcd": 1.5}})
    return (folder / WEIGHTS_FILE).read_bytes()


def attempt(call, *args, **kwargs) -> str:
    """'ok' or 'refused'; anything but the project's error fails the test."""
    try:
        call(*args, **kwargs)
    except GanError as exc:
        assert "\n" not in str(exc), f"a refusal is one line: {exc}"
        return "refused"
    return "ok"


@pytest.mark.parametrize("preset", ["ring8", "mnist-dcgan", "mnist-cdcgan"])
def test_every_loader_survives_a_thousand_mutations(tmp_path, preset):
    rng = random.Random(preset)
    blob = checkpoint_bytes(tmp_path, preset)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes: dict[str, int] = {}
    slowest = 0.0
    for i, (what, mutant) in enumerate(mutants(blob, rng)):
        started = time.perf_counter()
        for result in (attempt(metadata_from_bytes, mutant, what), attempt(trainer_from_bytes, mutant, "cpu", what)):
            outcomes[result] = outcomes.get(result, 0) + 1
        if i % 7 == 0:  # the file-based loaders on a share of them (they read from disk)
            folder = tmp_path / "runs" / f"m{i}"
            folder.mkdir(parents=True)
            (folder / WEIGHTS_FILE).write_bytes(mutant)
            attempt(read_metadata, folder)
            attempt(load_generator, folder, "cpu")
            attempt(import_upload, [("model.safetensors", mutant)], owner="u-y", root=tmp_path / "imported")
        slowest = max(slowest, time.perf_counter() - started)
    listed = list_runs(tmp_path / "runs", include_pretrained=False)  # never raises, whatever is in the folder
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"{preset}: {sum(outcomes.values())} loads of {i + 1} mutants: {outcomes}; {len(listed)} folders listed, "
          f"{sum(1 for r in listed if r.error)} unreadable; slowest {slowest:.2f} s; peak RSS +{grown_mb:.0f} MB")
    assert i + 1 >= 340, "about 1,000 mutants over the three presets"
    assert outcomes.get("refused", 0) > outcomes.get("ok", 0), "most mutants must be refused"
    assert slowest < 5.0, f"a mutant took {slowest:.1f} s to load or refuse"
    assert grown_mb < 500, f"loading mutants grew the process by {grown_mb:.0f} MB"
