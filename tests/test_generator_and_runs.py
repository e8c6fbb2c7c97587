"""Loading a generator alone, the typed run metadata, metrics.csv history, and side-task cadences."""

from __future__ import annotations

import time

import pytest
import torch

from gan_core import get_preset
from gan_core.cadence import Cadence, SideTask, run_due
from gan_core.checkpoint import save_checkpoint
from gan_core.errors import CheckpointError, GanError
from gan_core.generator import load_generator
from gan_core.runner import RunWriter
from gan_core.runs import FinalMetrics, list_runs, read_history
from gan_core.trainer import Trainer


@pytest.mark.parametrize("preset,ema", [("mnist-cdcgan", 0.999), ("ring8", 0.0)])
def test_a_loaded_generator_draws_what_the_trainer_drew(tmp_path, preset, ema):
    trainer = Trainer(get_preset(preset).config(g_width=8, d_width=8, batch_size=16, ema=ema, precision="fp32"))
    for _ in range(3):
        trainer.step()
    save_checkpoint(trainer, tmp_path / "run")
    generator = load_generator(tmp_path / "run", device="cpu")
    assert not hasattr(generator, "D") and not hasattr(generator, "opt_g"), "a generator is G alone"
    z = torch.randn(6, trainer.config.z_dim)
    labels = torch.arange(6) % 10 if trainer.num_classes else None
    assert torch.allclose(generator.sample(z=z, labels=labels), trainer.sample(z=z, labels=labels), atol=1e-5)
    if trainer.num_classes:
        assert generator.class_names == trainer.class_names and generator.sample(4, labels=3).shape[0] == 4
        with pytest.raises(GanError, match="label must be in"):
            generator.sample(2, labels=10)
    else:
        with pytest.raises(GanError, match="not conditional"):
            generator.sample(2, labels=1)


def test_a_generator_whose_weights_do_not_fit_its_config_is_refused(tmp_path):
    trainer = Trainer(get_preset("ring8").config(g_width=16, d_width=16))
    trainer.config = trainer.config.replace(g_width=32)  # the saved config now describes another model
    save_checkpoint(trainer, tmp_path / "run")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(tmp_path / "run")
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "missing")


def test_final_metrics_read_junk_as_missing_and_summarise():
    assert FinalMetrics.from_meta({"fcd": "abc", "classes_covered": None}).summary() == ""
    assert FinalMetrics.from_meta("not a dict") == FinalMetrics()
    images = FinalMetrics.from_meta({"fcd": 19.94, "classes_covered": 10, "n_classes": 10, "fcd_n": 1000})
    assert images.summary() == "FCD 19.9, 10/10 classes" and images.fcd_n == 1000
    toys = FinalMetrics(modes_covered=8, n_modes=8, hq_fraction=0.958)
    assert toys.summary() == "8/8 modes, 96% near a mode" and FinalMetrics.from_meta(toys.to_meta()) == toys


def test_run_info_reads_typed_numbers_from_a_saved_run(tmp_path):
    trainer = Trainer(get_preset("ring8").config(g_width=16, d_width=16))
    writer = RunWriter(trainer, tmp_path / "runs" / "r1")
    for _ in range(5):
        writer.record(trainer.step())
    writer.checkpoint({"final_metrics": {"modes_covered": 3, "n_modes": 8}, "status": "stopped"})
    writer.close()
    (run,) = list_runs(tmp_path / "runs", include_pretrained=False)
    assert run.step == 5 and run.status == "stopped" and run.train_seconds > 0
    assert set(run.last_record) >= {"loss_d", "loss_g", "d_real", "d_fake"}
    assert run.final_metrics.summary() == "3/8 modes"
    history = read_history(run.path)
    assert history["step"] == [1.0, 2.0, 3.0, 4.0, 5.0] and len(history["loss_d"]) == 5
    assert read_history(run.path, cap=2)["step"] == [3.0, 5.0], "averaged down, the newest step kept"
    assert read_history(tmp_path / "nowhere") == {}


def test_cadence_by_steps_by_seconds_and_by_share():
    ran = []
    by_steps = SideTask("grid", Cadence(steps=3), lambda: ran.append("grid"))
    assert [run_due([by_steps], s) for s in range(1, 8)] == [[], [], ["grid"], [], [], ["grid"], []]

    by_time = Cadence(seconds=0.05)
    assert not by_time.due(0, time.monotonic())
    assert by_time.due(0, time.monotonic() + 0.06)

    stretched = Cadence(seconds=0.01, share=0.1)
    now = time.monotonic()
    stretched.done(0, now, cost=0.5)  # a 0.5 s task at 10% of the time: next run 5 s later, not 0.01 s
    assert not stretched.due(1, now + 4.9) and stretched.due(1, now + 5.01)
    assert not Cadence(seconds=0).due(10**6, now + 10**6), "0 means never by time"


def test_a_run_with_junk_metadata_is_listed_as_unreadable_not_a_crash(tmp_path):
    trainer = Trainer(get_preset("ring8").config(g_width=16, d_width=16))
    save_checkpoint(trainer, tmp_path / "runs" / "good")
    save_checkpoint(trainer, tmp_path / "runs" / "junk", {"final_metrics": {"fcd": "not a number"}})
    runs = {r.name: r for r in list_runs(tmp_path / "runs", include_pretrained=False)}
    assert runs["good"].error == "" and runs["good"].step == 0
    assert runs["junk"].error.startswith("unreadable:") and "final_metrics" in runs["junk"].error
    assert runs["junk"].meta == {} and runs["junk"].final_metrics == FinalMetrics()


def test_the_run_budget_is_estimated_without_allocating():
    import resource

    from gan_core.budget import check_run_budget, estimate_run_bytes
    from gan_core.errors import ConfigError

    config = get_preset("mnist-dcgan").config()
    trainer = Trainer(config.replace(precision="fp32"))
    params = sum(trainer.num_parameters.values())
    estimate = estimate_run_bytes(config, (1, 28, 28), 10)
    assert params * 4 * 4 <= estimate < 50 * params * 4 + 2**30, "weights, grads and Adam state at least"
    huge = config.replace(g_width=2048, d_width=2048, batch_size=4096, z_dim=1024)
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    with pytest.raises(ConfigError, match=r"lower g_width/d_width \(2048/2048\), batch_size \(4096\)"):
        check_run_budget(huge, (1, 28, 28), limit_bytes=2 * 2**30, num_classes=10)
    assert time.perf_counter() - started < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024, "refused before allocating"
