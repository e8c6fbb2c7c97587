"""Reliability figures: fuzzed checkpoints, kill -9 of the command line during training and
checkpoint writes, oversized runs and checkpoints refused before allocation, and a full disk.

    python benchmarks/reliability.py                 # everything: 100 CLI kills, 100 server kills, 20 sessions
    python benchmarks/reliability.py --kills 20 --server-kills 0 --sessions 0 --skip storage

The app server's checks (kill -9 of the server, N browser sessions) are in benchmarks/reliability_app.py.

Prints one table (what was tried / survived / lost) with the machine. The fuzz mutations are the
same as the test suite's (tests/test_checkpoint_fuzz.py), here through every loader.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from gan_core import get_preset  # noqa: E402
from gan_core.checkpoint import WEIGHTS_FILE, load_checkpoint, read_metadata  # noqa: E402
from gan_core.errors import GanError  # noqa: E402
from gan_core.runs import recover_runs_folder  # noqa: E402
import reliability_app  # noqa: E402 - the app server's checks (benchmarks/)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fuzz(work: Path) -> tuple[str, int, int, int, str]:
    """Every mutant through every loader: only successes or the project's error count as survived."""
    import test_checkpoint_fuzz as fz
    from gan_core.generator import load_generator
    from gan_core.uploads import import_upload

    tried = survived = 0
    started = time.perf_counter()
    for preset in ("ring8", "mnist-dcgan", "mnist-cdcgan"):
        blob = fz.checkpoint_bytes(work, preset)
        for i, (what, mutant) in enumerate(fz.mutants(blob, random.Random(preset))):
            folder = work / "fuzz" / f"{preset}-{i}"
            folder.mkdir(parents=True)
            (folder / WEIGHTS_FILE).write_bytes(mutant)
            for call in (lambda: fz.trainer_from_bytes(mutant, "cpu", what), lambda: read_metadata(folder),
                         lambda: load_generator(folder, "cpu"), lambda: import_upload([("model.safetensors", mutant)],
                                                                                      root=work / "imported")):
                tried += 1
                try:
                    call()
                except GanError:
                    pass
                except Exception as exc:  # noqa: BLE001 - this is what the benchmark counts
                    print(f"  escaped: {what}: {type(exc).__name__}: {exc}"[:200])
                    continue
                survived += 1
    seconds = time.perf_counter() - started
    return "fuzz: mutated checkpoints x 4 loaders", tried, survived, tried - survived, \
        f"{seconds:.0f} s, peak RSS {peak_rss_mb():.0f} MB"


def kills(work: Path, n: int) -> tuple[str, int, int, int, str]:
    """Start (or resume) the CLI, kill -9 it at a random moment, then check the run folder loads."""
    out, rng = work / "killed", random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    tried, survived, steps = 0, 0, []
    for i in range(n):
        args = [sys.executable, "-m", "gan_core", "train", "--preset", "ring8", "--steps", "1000000",
                "--checkpoint-seconds", "0.3", "--out", str(out)] + (["--resume"] if (out / WEIGHTS_FILE).exists() else [])
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.5, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not (out / WEIGHTS_FILE).exists():
            continue  # killed before the first checkpoint: nothing existed to lose
        tried += 1
        try:
            recover_runs_folder(work)
            meta, trainer = read_metadata(out), load_checkpoint(out, device="cpu")
            agrees = json.loads((out / "config.json").read_text()) == meta
            if agrees and trainer.step_count >= (steps[-1] if steps else 0):
                survived += 1
                steps.append(trainer.step_count)
            else:
                print(f"  kill {i}: config.json agrees {agrees}, step {trainer.step_count} after {steps[-1:]}")
        except GanError as exc:
            print(f"  kill {i}: the run folder did not load: {exc}")
    return "crash: kill -9 of the CLI, then load + --resume", tried, survived, tried - survived, \
        f"steps reached {steps[-1] if steps else 0:,}; every kill resumed from the previous checkpoint"


def resources(work: Path) -> tuple[str, int, int, int, str]:
    """The largest config the form allows, and a checkpoint declaring a huge image, refused up front."""
    import test_checkpoint_fuzz as fz
    from gan_core.budget import check_run_budget
    from gan_core.checkpoint import trainer_from_bytes

    huge = get_preset("mnist-dcgan").config(g_width=2048, d_width=2048, batch_size=4096, z_dim=1024)
    before, started, refused = peak_rss_mb(), time.perf_counter(), 0
    try:
        check_run_budget(huge, (1, 28, 28), num_classes=10)
    except GanError:
        refused += 1
    header, meta, data = fz.split(fz.checkpoint_bytes(work, "mnist-dcgan"))
    try:
        trainer_from_bytes(fz.join(header, {**meta, "sample_shape": [1, 3000, 3000]}, data), "cpu")
    except GanError:
        refused += 1
    return "resources: 474 M-parameter config, [1, 3000, 3000] checkpoint", 2, refused, 2 - refused, \
        f"refused in {time.perf_counter() - started:.2f} s, RSS grew {peak_rss_mb() - before:.0f} MB"


def storage(work: Path) -> tuple[str, int, int, int, str]:
    """A runs folder on a 1 MB tmpfs: the save that does not fit is a message, the previous one loads."""
    from gan_core.checkpoint import save_checkpoint
    from gan_core.trainer import Trainer

    disk = work / "small-disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        return "storage: full disk (1 MB tmpfs)", 0, 0, 0, "skipped: cannot mount a tmpfs here (needs root)"
    try:
        trainer = Trainer(get_preset("ring8").config(g_width=32, d_width=32))
        save_checkpoint(trainer, disk / "run")
        big = Trainer(get_preset("ring8").config(g_width=512, d_width=512))
        message, ok = "", False
        try:
            save_checkpoint(big, disk / "run")
        except GanError as exc:
            message = str(exc)
        ok = "full" in message and load_checkpoint(disk / "run").config.g_width == 32 and not list((disk / "run").glob(".*.tmp"))
        return "storage: full disk (1 MB tmpfs)", 1, int(ok), int(not ok), f"message: {message[:70]}"
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--skip", nargs="*", default=[], choices=["fuzz", "kills", "resources", "storage"])
    reliability_app.add_arguments(parser)  # the app server's checks
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gan-reliability-"))
    os.environ["GAN_RUNS_DIR"] = str(work / "runs")
    rows = []
    try:
        for name, run in (("fuzz", lambda: fuzz(work)), ("kills", lambda: kills(work, args.kills)),
                          ("resources", lambda: resources(work)), ("storage", lambda: storage(work))):
            if name not in args.skip:
                rows.append(run())
                print(f"done: {rows[-1][0]}", file=sys.stderr)
        if args.server_kills or args.sessions:
            rows.extend(reliability_app.run_all(work, args))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}\n")
    print("| check | tried | survived | lost | notes |\n| --- | --- | --- | --- | --- |")
    for what, tried, survived, lost, notes in rows:
        print(f"| {what} | {tried:,} | {survived:,} | {lost:,} | {notes} |")


if __name__ == "__main__":
    main()
