"""Training speed of gan_core against the loop people copy from tutorials, on this machine.

    python benchmarks/throughput.py                    # throughput table (all models, batch 64, 128, preset's)
    python benchmarks/throughput.py --quick            # the same, fewer and shorter repeats
    python benchmarks/throughput.py --models dcgan,toy --batches 64
    python benchmarks/throughput.py --latency          # interactive latency (slider image, 10-class grid)
    python benchmarks/throughput.py --ui-cadence       # the app's live view vs headless training
    python benchmarks/throughput.py --all              # everything (the report's command)

Throughput: for each model and batch size, (a) a reference loop written as in pytorch/examples
(dcgan): a torch DataLoader over a torchvision-style dataset of PIL images with ToTensor and
Normalize per sample, fp32, default memory format, nn.Sigmoid at the end of D with nn.BCELoss,
zero_grad() and plain Adam, and (b) gan_core's Trainer on the same models, batch, loss and
threads. A and B alternate with warm-up; the table shows medians, the ratio, the FLOPs of one
training step (torch.utils.flop_counter: matmuls and convolutions) and the achieved GFLOP/s next
to the machine's measured matmul GFLOP/s in fp32 and bf16. Rounds during which other processes
were busy are run again (see --max-other-load): on a small machine they distort everything.

UI cadence: the app's real job worker (gan_core.live) with its live view (sample grid, the
police's verdict, every second) and metrics (every 5 s), against the same worker with the view
and metrics switched off, alternating; prints the ratio of training speeds.

Latency: server-side milliseconds (median of 50) of one image for a latent-slider move and of a
10-class grid for class control, without and with a training job running, from a thread using 1
and 2 torch threads (a page's script thread).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gan_core import Trainer, get_preset  # noqa: E402
from gan_core.config import TrainConfig  # noqa: E402
from gan_core.data import ImageData, ToyData, load_dataset  # noqa: E402
from gan_core.images import grid_image, to_uint8  # noqa: E402
from gan_core.models import build_models  # noqa: E402

# model key -> (preset, description)
MODELS = {
    "mlp": ("mnist-mlp", "MLP GAN"),
    "dcgan": ("mnist-dcgan", "DCGAN-28"),
    "cdcgan": ("mnist-cdcgan", "cond. DCGAN-28"),
    "dcgan32": ("cifar10-dcgan", "DCGAN-32 colour"),
    "toy": ("ring8", "2D toy (ring8)"),
}
TOY_REFERENCE_POINTS = 100_000  # the reference loop's fixed toy dataset (a tutorial samples one up front)
RANDOM_COLOUR_IMAGES = 5_000  # CIFAR-10 is not downloadable here: random uint8 3x32x32 images


# --- machine -------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    amx = "AMX " if torch.backends.cpu.get_cpu_capability() and torch.cpu._is_amx_tile_supported() else ""
    return (f"{cpu_model()}, {cores} cores ({amx}{torch.backends.cpu.get_cpu_capability()}), torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch threads, load average {load:.2f} at start")


class OtherLoad:
    """CPU use of other processes while a block runs, in cores (from /proc/stat; Linux only, else nan)."""

    value = float("nan")

    def __enter__(self) -> "OtherLoad":
        self._start = self._sample()
        return self

    def __exit__(self, *exc) -> None:
        end = self._sample()
        if self._start is not None and end is not None:
            (busy0, own0, t0), (busy1, own1, t1) = self._start, end
            self.value = max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))

    @staticmethod
    def _sample() -> Optional[tuple[float, float, float]]:
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:9]]
        except OSError:
            return None
        t = os.times()
        busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
        return busy, t.user + t.system + t.children_user + t.children_system, time.perf_counter()


def matmul_gflops(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Measured GFLOP/s of an n x n matmul: the best of several short runs (a peak, so the best)."""
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(8):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds / 8:
            a @ b
            count += 1
        rates.append(2 * n**3 * count / (time.perf_counter() - started) / 1e9)
    return max(rates)


def step_flops(step: Callable[[], object]) -> float:
    """FLOPs of one call of `step` (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


# --- the tutorial-style reference loop -------------------------------------------------------------
class TutorialImageDataset(torch.utils.data.Dataset):
    """Like torchvision.datasets.MNIST / CIFAR10: a uint8 array, one PIL image per item, then transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable):
        self.data, self.targets, self.transform = images, labels, transform
        self.mode = "L" if images.ndim == 3 else "RGB"

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        from PIL import Image

        img = Image.fromarray(self.data[index], mode=self.mode)
        return self.transform(img), int(self.targets[index])


class WithSigmoid(nn.Module):
    """The tutorial's D: the model followed by nn.Sigmoid, so it outputs probabilities for nn.BCELoss."""

    def __init__(self, d: nn.Module):
        super().__init__()
        self.d, self.sigmoid = d, nn.Sigmoid()

    def forward(self, x, labels=None):
        return self.sigmoid(self.d(x, labels))


class ReferenceLoop:
    """pytorch/examples dcgan's loop on gan_core's G and D (non-saturating BCE, k=1)."""

    def __init__(self, cfg: TrainConfig, data: ImageData | ToyData, workers: int = 0):
        from torchvision import transforms

        torch.manual_seed(cfg.seed)
        self.conditional = cfg.conditional
        self.num_classes = data.num_classes
        self.z_dim = cfg.z_dim
        if isinstance(data, ToyData):
            points, _ = data.sample_real(TOY_REFERENCE_POINTS)
            dataset = torch.utils.data.TensorDataset(points, torch.zeros(len(points), dtype=torch.long))
            shape = (2,)
        else:
            images = data.images.cpu().numpy()
            images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
            channels = data.shape[0]
            transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)])
            labels = data.labels.cpu().numpy() if data.labels is not None else np.zeros(len(images), np.int64)
            dataset = TutorialImageDataset(images, labels, transform)
            shape = data.shape
        self.loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                                  num_workers=workers, drop_last=True)
        self._batches = iter(self.loader)
        self.netG, d = build_models(cfg, shape, data.num_classes)
        self.netD = WithSigmoid(d)
        self.criterion = nn.BCELoss()
        self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=cfg.lr_d, betas=(cfg.beta1_d, cfg.beta2_d))
        self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=cfg.lr_g, betas=(cfg.beta1_g, cfg.beta2_g))
        self.real_label, self.fake_label = 1.0 - cfg.label_smoothing, 0.0

    def _next(self):
        try:
            return next(self._batches)
        except StopIteration:  # a new epoch
            self._batches = iter(self.loader)
            return next(self._batches)

    def step(self) -> tuple[float, float, float]:
        real_cpu, labels = self._next()
        labels = labels if self.conditional else None
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        self.netD.zero_grad()
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), self.real_label, dtype=real_cpu.dtype)
        output = self.netD(real_cpu, labels)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(batch_size, self.z_dim)
        fake_labels = torch.randint(self.num_classes, (batch_size,)) if self.conditional else None
        fake = self.netG(noise, fake_labels)
        label.fill_(self.fake_label)
        output = self.netD(fake.detach(), fake_labels)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        self.optimizerD.step()
        # (2) Update G network: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)  # fake labels are real for generator cost
        output = self.netD(fake, fake_labels)
        errG = self.criterion(output, label)
        errG.backward()
        self.optimizerG.step()
        return errD.item(), errG.item(), D_x


# --- setup ---------------------------------------------------------------------------------------
def model_config(key: str, batch: Optional[int]) -> TrainConfig:
    """The preset's config for the comparison, without the lazy R1 penalty, which the reference loop
    does not have (the trainer keeps its EMA update, extra work the reference does not do either)."""
    preset, _ = MODELS[key]
    changes = dict(device="cpu", r1_weight=0.0)
    if batch:
        changes["batch_size"] = batch
    return get_preset(preset).config(**changes)


def model_data(key: str, cfg: TrainConfig) -> ImageData | ToyData:
    if key == "dcgan32":
        gen = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (RANDOM_COLOUR_IMAGES, 3, 32, 32), dtype=torch.uint8, generator=gen)
        labels = torch.randint(0, 10, (RANDOM_COLOUR_IMAGES,), generator=gen)
        return ImageData("random-3x32x32", images, labels, tuple(str(i) for i in range(10)), torch.device("cpu"))
    return load_dataset(cfg.dataset, "cpu")


def rate(step: Callable[[], object], seconds: float) -> float:
    """Calls of `step` per second over about `seconds`."""
    count, started = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return count / elapsed


def wait_for_quiet(max_other: float, until: float) -> None:
    """Sleep until other processes use at most `max_other` cores (measured over 1 s), or `until`."""
    while time.monotonic() < until:
        with OtherLoad() as other:
            time.sleep(1.0)
        if not other.value > max_other:
            return


@dataclass
class Alternation:
    rates: dict[str, list[float]]  # steps/s of each variant, one per accepted round
    other_load: float  # the highest load of other processes in an accepted round (cores)
    retried: int  # rounds run again because other processes were busy


def alternate(steps: dict[str, Callable[[], object]], seconds: float, repeats: int, warmup: int,
              max_other: float = math.inf, patience: float = 0.0) -> Alternation:
    """Steps/s of each variant over `seconds`, after `warmup` steps each (see `alternate_runs`)."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    runs = {name: (lambda step=step: rate(step, seconds)) for name, step in steps.items()}
    return alternate_runs(runs, repeats, max_other, patience)


def alternate_runs(runs: dict[str, Callable[[], float]], repeats: int, max_other: float = math.inf,
                   patience: float = 0.0) -> Alternation:
    """`repeats` rounds that call each run (it returns a rate) in turn, the order flipping every
    round. A round during which other processes used more than `max_other` cores is run again
    after a quiet moment, while `patience` seconds of waiting remain."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    worst, retried, give_up = 0.0, 0, time.monotonic() + patience
    round_index = 0
    while round_index < repeats:
        order = list(runs) if round_index % 2 == 0 else list(reversed(runs))
        with OtherLoad() as other:
            measured = {name: runs[name]() for name in order}
        if other.value > max_other and time.monotonic() < give_up:
            retried += 1
            wait_for_quiet(max_other, give_up)
            continue
        for name, value in measured.items():
            rates[name].append(value)
        worst = max(worst, other.value) if not math.isnan(other.value) else worst
        round_index += 1
    return Alternation(rates, worst, retried)


@dataclass
class Row:
    model: str
    batch: int
    ref_ips: float
    core_ips: float
    ref_spread: str
    core_spread: str
    core_flops: float
    ref_flops: float
    note: str
    other_load: float
    retried: int

    @property
    def ratio(self) -> float:
        return self.core_ips / self.ref_ips


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


def measure_model(key: str, batch: Optional[int], args) -> Row:
    cfg = model_config(key, batch)
    data = model_data(key, cfg)
    reference = ReferenceLoop(cfg, data, workers=args.ref_workers)
    trainer = Trainer(cfg, data)
    run = alternate({"reference": reference.step, "gan_core": trainer.step}, args.seconds, args.repeats, args.warmup,
                    args.max_other_load, args.patience)
    results = run.rates
    ref_steps, core_steps = statistics.median(results["reference"]), statistics.median(results["gan_core"])
    b = cfg.batch_size
    speed = trainer.speed
    note = ", ".join(filter(None, [str(speed.amp_dtype).replace("torch.", "") if speed.amp_dtype else "fp32",
                                   "channels_last" if speed.channels_last else ""]))
    return Row(MODELS[key][1], b, ref_steps * b, core_steps * b,
               spread([r * b for r in results["reference"]]), spread([r * b for r in results["gan_core"]]),
               step_flops(trainer.step), step_flops(reference.step), note, run.other_load, run.retried)


def throughput(args) -> None:
    print(f"machine: {machine_line()}")
    wait_for_quiet(args.max_other_load, time.monotonic() + args.patience)
    peak32, peak16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"matmul 2048x2048 (best of 8): {peak32:,.0f} GFLOP/s fp32, {peak16:,.0f} GFLOP/s bf16 "
          f"({torch.get_num_threads()} threads)")
    print(f"reference loop: DataLoader(num_workers={args.ref_workers}) over PIL images + ToTensor/Normalize, fp32, "
          f"Sigmoid + BCELoss, plain Adam. {args.repeats} alternating rounds of {args.seconds:g} s after {args.warmup} warm-up steps each.\n")
    rows = []
    for key in args.models:
        batches = [b if b != "preset" else None for b in args.batches]
        seen = set()
        for batch in batches:
            size = batch or model_config(key, None).batch_size
            if size in seen:
                continue
            seen.add(size)
            row = measure_model(key, batch, args)
            rows.append(row)
            print(f"  {row.model} batch {row.batch}: reference {row.ref_ips:,.0f} img/s, gan_core {row.core_ips:,.0f} img/s, "
                  f"x{row.ratio:.2f}", flush=True)
    print()
    print("| model | batch | reference img/s (range) | gan_core img/s (range) | gan_core steps/s | ratio | gan_core path "
          "| GFLOP/step core / ref | achieved GFLOP/s core / ref | % of matmul peak: core (its dtype) / ref (fp32) "
          "| other load (retried rounds) |")
    print("|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in rows:
        core_gf = r.core_flops * r.core_ips / r.batch / 1e9
        ref_gf = r.ref_flops * r.ref_ips / r.batch / 1e9
        core_peak = peak16 if r.note.startswith("bfloat16") else peak32
        print(f"| {r.model} | {r.batch} | {r.ref_ips:,.0f} ({r.ref_spread}) | {r.core_ips:,.0f} ({r.core_spread}) "
              f"| {r.core_ips / r.batch:,.1f} | **{r.ratio:.2f}x** | {r.note} | {r.core_flops / 1e9:.3f} / {r.ref_flops / 1e9:.3f} "
              f"| {core_gf:.1f} / {ref_gf:.1f} | {100 * core_gf / core_peak:.0f}% / {100 * ref_gf / peak32:.0f}% "
              f"| {r.other_load:.2f} ({r.retried}) |")
    print(f"\nmachine: {machine_line().rsplit(', load', 1)[0]}, load average {os.getloadavg()[0]:.2f} at end")
    print("other load: the most cores other processes used during an accepted round of that row (0 = the machine was ours); "
          f"rounds above {args.max_other_load:g} were run again after a quiet moment, for up to {args.patience:g} s per row")


# --- interactive latency ---------------------------------------------------------------------------
def latency_ms(fn: Callable[[], object], n: int = 50) -> float:
    for _ in range(5):
        fn()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


@contextlib.contextmanager
def background_training(preset: str, threads: int):
    """A training loop in a worker thread (the app trains while someone explores), like a job."""
    stop = threading.Event()

    def loop():
        torch.set_num_threads(threads)
        trainer = Trainer(get_preset(preset).config(device="cpu"))
        while not stop.is_set():
            trainer.step()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(2.0)
    try:
        yield
    finally:
        stop.set()
        worker.join()


def in_thread(threads: int, fn: Callable[[], object]):
    """fn() in a new thread using `threads` torch threads (like a page's script thread); its result."""
    result = []

    def run():
        torch.set_num_threads(threads)
        result.append(fn())

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return result[0]


def latency(args) -> None:
    from gan_core.live import JobManager

    print(f"machine: {machine_line()}")
    job_threads = JobManager(max_jobs=1).threads_per_job()
    dcgan = Trainer(get_preset("mnist-dcgan").config(device="cpu"))
    cdcgan = Trainer(get_preset("mnist-cdcgan").config(device="cpu"))
    for t in (dcgan, cdcgan):
        for _ in range(20):
            t.step()
    z1 = torch.randn(1, dcgan.config.z_dim)
    z10 = torch.randn(1, cdcgan.config.z_dim).repeat(10, 1)
    classes = torch.arange(10)

    def slider():  # one image for a latent-slider move, as a uint8 picture
        return to_uint8(dcgan.sample(z=z1))

    def class_grid():  # one z drawn as each of the 10 classes, as a uint8 grid
        return grid_image(cdcgan.sample(z=z10, labels=classes), nrow=10)

    def both():
        return latency_ms(slider), latency_ms(class_grid)

    rows = []
    with OtherLoad() as other:
        for page_threads in (1, 2):
            idle = in_thread(page_threads, both)
            with background_training("mnist-dcgan", job_threads):
                busy = in_thread(page_threads, both)
            rows.append((page_threads, idle, busy))
    print(f"\n| interaction | target | torch threads of the page's thread | no training | while a job trains (mnist-dcgan, {job_threads} thread) |")
    print("|---|---:|---:|---:|---:|")
    for i, (name, target) in enumerate((("latent slider: 1 image (mnist-dcgan)", 20), ("class control: 10-class grid (mnist-cdcgan)", 60))):
        for page_threads, idle, busy in rows:
            print(f"| {name} | <= {target} ms | {page_threads} | {idle[i]:.1f} ms | {busy[i]:.1f} ms |")
    print(f"(server-side: sample() plus conversion to a uint8 picture, median of 50; other processes used {other.value:.2f} "
          "cores meanwhile; with more torch threads than free cores, OpenMP's waiting threads stall each small op)")


# --- UI cadence ------------------------------------------------------------------------------------
def job_rate(preset: str, with_view: bool, seconds: float, warmup: float, root: Path) -> float:
    """Steps/s of the app's job worker over `seconds` after `warmup`, with or without its live view."""
    from gan_core.live import JobManager

    if with_view:
        manager = JobManager(max_jobs=1, root=root)  # the app's cadence: view every 1 s, metrics every 5 s
    else:
        manager = JobManager(max_jobs=1, root=root, view_seconds=1e9, metrics_seconds=1e9)
    session = f"bench-{time.monotonic_ns()}"
    job = manager.submit(session, get_preset(preset).config(device="cpu"), name="bench")
    try:
        deadline = time.monotonic() + 120
        while job.view().state.value in ("queued", "loading") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(warmup)
        start_step, started = job.view().step, time.monotonic()
        while time.monotonic() - started < seconds:  # the page polls once a second
            time.sleep(1.0)
            manager.touch(session)
            job.view()
        end_step, elapsed = job.view().step, time.monotonic() - started
    finally:
        manager.shutdown()
    return (end_step - start_step) / elapsed


def ui_cadence(args) -> None:
    from gan_core.live import JobManager

    print(f"machine: {machine_line()}")
    threads = JobManager(max_jobs=1).threads_per_job()
    print(f"job worker: gan_core.live (view every 1 s: sample grid + PNG + police's verdict; metrics every 5 s: "
          f"FCD-1k), {threads} torch thread(s) per job; {args.ui_repeats} alternating rounds of {args.ui_seconds:g} s\n")
    print("| preset | headless steps/s (range) | with live view steps/s (range) | ratio | other load (retried rounds) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.ui_presets:
            runs = {name: (lambda view=(name == "view"): job_rate(preset, view, args.ui_seconds, args.ui_warmup, Path(tmp)))
                    for name in ("headless", "view")}
            run = alternate_runs(runs, args.ui_repeats, args.max_other_load, args.patience)
            results = run.rates
            a, b = statistics.median(results["headless"]), statistics.median(results["view"])
            print(f"| {preset} | {a:,.1f} ({spread(results['headless'])}) | {b:,.1f} ({spread(results['view'])}) "
                  f"| **{b / a:.2f}** | {run.other_load:.2f} ({run.retried}) |", flush=True)


# --- main ------------------------------------------------------------------------------------------
def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats (a rough check)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--batches", default="64,128,preset", help="comma list of batch sizes ('preset' = the preset's own)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default: the cores)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="alternating A/B rounds")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up steps of each loop")
    parser.add_argument("--ref-workers", type=int, default=0, help="DataLoader workers of the reference loop")
    parser.add_argument("--max-other-load", type=float, default=0.3,
                        help="run a round again if other processes used more cores than this meanwhile (inf = never)")
    parser.add_argument("--patience", type=float, default=120.0, help="seconds per row to wait for a quiet machine")
    parser.add_argument("--latency", action="store_true", help="only the interactive-latency benchmark")
    parser.add_argument("--ui-cadence", action="store_true", help="only the live-view-vs-headless benchmark")
    parser.add_argument("--ui-presets", default="mnist-dcgan,ring8", help="presets for --ui-cadence")
    parser.add_argument("--ui-seconds", type=float, default=20.0, help="seconds per --ui-cadence run")
    parser.add_argument("--ui-warmup", type=float, default=4.0, help="seconds before a --ui-cadence run is timed")
    parser.add_argument("--ui-repeats", type=int, default=3, help="alternating rounds of --ui-cadence")
    parser.add_argument("--all", action="store_true", help="throughput, latency and UI cadence")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    args.batches = [b.strip() if b.strip() == "preset" else int(b) for b in args.batches.split(",") if b.strip()]
    args.ui_presets = [p.strip() for p in args.ui_presets.split(",") if p.strip()]
    if args.quick:
        args.seconds, args.repeats, args.warmup = 1.0, 3, 5
        args.ui_seconds, args.ui_repeats, args.ui_warmup = 10.0, 1, 3.0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.all or not (args.latency or args.ui_cadence):
        throughput(args)
    if args.all or args.latency:
        print()
        latency(args)
    if args.all or args.ui_cadence:
        print()
        ui_cadence(args)


if __name__ == "__main__":
    main()
