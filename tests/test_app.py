"""The Streamlit app through AppTest: every page renders, bad settings are refused, a tiny run trains,
conditional runs list their classes, uploads are checked. (AppTest runs no timers: the tests wait for
the training job themselves and call `at.run()` again.)"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from gan_test_utils import wait_until

from gan_core import get_preset
from gan_core.checkpoint import WEIGHTS_FILE, save_checkpoint
from gan_core.errors import CheckpointError, GanError
from gan_core.app.nav import PAGES as PAGE_INFO
from gan_core.live import JobManager, JobState, set_manager
from gan_core.paths import runs_dir
from gan_core.runs import delete_run, list_runs, rename_run
from gan_core.uploads import import_upload
from gan_core.trainer import Trainer

APP = str(Path(__file__).resolve().parents[1] / "playground.py")
PAGES = [p.path for p in PAGE_INFO]


@pytest.fixture(autouse=True)
def manager(monkeypatch):
    """A fresh process-wide job manager per test (one slot, first come first served, quick cadences; jobs in
    threads, since some tests patch the engine in this process), shut down afterwards."""
    m = JobManager(max_jobs=1, view_seconds=0.2, metrics_seconds=1.0, checkpoint_seconds=1.0, scheduling="queue",
                   workers="thread")
    previous = set_manager(m)
    yield m
    m.shutdown(timeout=30)
    set_manager(previous)


def app():
    """A started AppTest of the whole app (the router ran once, so pages can be switched to)."""
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(APP, default_timeout=60).run()


def open_page(page: str):
    at = app()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}: {[b.label for b in at.button]}"
    return matches[0]


def session_job(at, manager: JobManager):
    return manager.job_for(at.session_state["session_id"])


def tiny_run(name: str, preset: str = "mnist-cdcgan", steps: int = 2, owner: str = "") -> Path:
    """Train a tiny run for a couple of steps and save it into the runs folder."""
    trainer = Trainer(get_preset(preset).config(g_width=8, d_width=8, batch_size=16))
    for _ in range(steps):
        trainer.step()
    folder = runs_dir() / name
    save_checkpoint(trainer, folder, {"owner": owner, "name": name})
    return folder


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_with_the_offline_defaults(page, monkeypatch):
    monkeypatch.setenv("GAN_TEACHER_KEY", "a-key")  # the class view exists only on a server with a teacher key
    at = open_page(page)
    assert at.title, f"{page} shows no title"
    assert not at.error


def test_home_explains_and_names_the_device():
    at = app()
    assert at.latex and r"\min_G \max_D" in at.latex[0].value
    assert any("CPU" in c.value or "GPU" in c.value for c in at.caption)
    assert any("counterfeiter" in m.value for m in at.markdown)


def test_invalid_hyperparameters_show_an_error_and_do_not_start(manager):
    at = open_page("pages/train.py")
    at.number_input(key="train_lr_g").set_value(5.0)
    button(at, "Start").click().run()
    assert any("lr_g must be a number in [1e-07, 1]" in e.value for e in at.error), [e.value for e in at.error]
    assert session_job(at, manager) is None

    at.number_input(key="train_lr_g").set_value(2e-4)
    at.selectbox(key="train_loss").set_value("hinge")
    at.number_input(key="train_label_smoothing").set_value(0.1)
    button(at, "Start").click().run()
    assert any("label_smoothing" in e.value for e in at.error)
    assert session_job(at, manager) is None


def test_a_tiny_run_from_the_train_page_records_losses_and_samples(manager):
    at = open_page("pages/train.py")
    for name, value in dict(g_width=8, d_width=8, batch_size=16).items():
        at.number_input(key=f"train_{name}").set_value(value)
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert job is not None and job.config.g_width == 8 and job.config.dataset == "mnist-5k"
    assert wait_until(lambda: job.view().step >= 3 and job.view().latest is not None)

    at.run()
    assert not at.exception
    view = job.view()
    assert view.history["loss_d"] and view.history["loss_g"]
    assert at.metric and any(m.label == "Step" for m in at.metric)
    captions = [c for img in at.image for c in img.captions]
    assert any("the same latent vectors z" in c for c in captions), captions
    assert len(at.get("plotly_chart")) >= 2, "loss and verdict charts"

    button(at, "Stop").click().run()
    assert job.state == JobState.STOPPED
    assert (job.run_dir / WEIGHTS_FILE).exists()
    assert any("Saved as" in s.value for s in at.success)
    assert button(at, "Start").disabled is False


def test_unavailable_dataset_says_so_and_offers_mnist_5k(manager, monkeypatch):
    from gan_core import data
    from gan_core.errors import DataUnavailable

    def offline(*args, **kwargs):
        raise DataUnavailable("dataset 'mnist' is not available (download failed: offline). Use the bundled dataset mnist-5k")

    monkeypatch.setattr(data, "load_torchvision", offline)
    at = open_page("pages/train.py")
    at.selectbox(key="train_dataset").set_value("mnist")
    at.run()
    assert any("downloaded the first time" in i.value for i in at.info)
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert wait_until(lambda: not job.state.active)
    at.run()
    assert any("not available" in e.value for e in at.error)
    button(at, "Train on the bundled mnist-5k instead").click().run()
    new_job = session_job(at, manager)
    assert new_job is not job and new_job.config.dataset == "mnist-5k"
    new_job.stop()


def test_lab_page_steps_one_update_in_slow_motion(manager):
    at = open_page("pages/lab.py")
    at.number_input(key="lab_g_width").set_value(16)
    button(at, "Start paused (step by step)").click().run()
    job = session_job(at, manager)
    assert wait_until(lambda: job.state == JobState.PAUSED)
    at.run()
    button(at, "Step: D, then G").click().run()
    assert wait_until(lambda: len(job.view().step_frames) == 3)
    at.run()
    assert any("slow motion" in s.value for s in at.subheader)
    assert len(at.get("plotly_chart")) >= 4, "the lab plot and the three step frames"
    job.stop()


def test_class_control_lists_the_classes_of_a_conditional_run():
    tiny_run("tiny-cdcgan")
    at = open_page("pages/class_control.py")
    picker = at.segmented_control(key="class_pick")
    assert picker.options == [str(d) for d in range(10)]
    assert at.image, "the class grid"
    picker.set_value(7).run()
    assert not at.exception
    assert any("“7”" in c for img in at.image for c in img.captions)
    seed = at.slider(key="class_seed").value
    for _ in range(3):  # a re-roll draws a new style (3 tries: a repeat of the same seed is 1 in 1000)
        button(at, "Re-roll style").click().run()
        if at.slider(key="class_seed").value != seed:
            break
    assert at.slider(key="class_seed").value != seed
    assert not at.exception and not at.warning


def test_latent_explorer_renders_a_walk_and_a_gif():
    tiny_run("tiny-dcgan", preset="mnist-dcgan")
    at = open_page("pages/latent.py")
    first = at.image[0].value
    at.slider(key="latent_t").set_value(0.9).run()
    assert not at.exception
    assert at.image[0].value != first, "moving the slider must change the image"
    at.radio(key="latent_mode").set_value("lerp").run()
    button(at, "New end").click().run()
    assert not at.exception
    assert any(d.label.startswith("Download the walk") for d in at.get("download_button"))


def test_runs_page_lists_runs_and_hides_other_sessions():
    from gan_core.identity import owner_id

    tiny_run("cli-run", owner="")
    tiny_run("someone-else", owner=owner_id("another-session"))
    shared = tiny_run("shared-one", owner=owner_id("a-third-session"))
    (shared / "sharing.json").write_text('{"shared": true}')
    at = open_page("pages/runs.py")
    names = at.dataframe[0].value["Name"].tolist()
    assert "cli-run" in names and "someone-else" not in names and "shared-one" not in names
    at.toggle(key="runs_show_all").set_value(True).run()
    names = at.dataframe[0].value["Name"].tolist()
    assert "shared-one" in names and "someone-else" not in names, "only shared runs of others, never private ones"
    at.selectbox(key="runs_selected").set_value(str(shared)).run()
    assert not [b for b in at.button if b.label in ("Rename", "Delete this run")], "others' runs are read-only"
    assert any("Read-only here" in c.value for c in at.caption)


def test_runs_delete_asks_first():
    from gan_core.identity import owner_id

    at = app()
    folder = tiny_run("to-delete", preset="ring8", owner=owner_id(at.session_state["session_id"]))
    at.switch_page("pages/runs.py").run()
    button(at, "Delete this run").click().run()
    assert folder.exists()
    assert any("for good" in w.value for w in at.warning)
    button(at, "Yes, delete it").click().run()
    assert not folder.exists()


def test_a_session_cookie_the_server_did_not_issue_gives_nothing(tmp_path):
    from gan_core.identity import issue_session, owner_id, session_from_cookie

    sid, cookie = issue_session(tmp_path)
    assert session_from_cookie(cookie, tmp_path) == sid
    for forged in (sid, owner_id(sid, tmp_path), owner_id(sid, tmp_path)[2:], f"{sid}.{'0' * 32}", "", "x.y", cookie + "0"):
        assert session_from_cookie(forged, tmp_path) is None, forged
    assert session_from_cookie(cookie, tmp_path / "another-server") is None, "another server's cookie is foreign"


def test_upload_accepts_safetensors_and_refuses_pickles_and_images(tmp_path):
    folder = tiny_run("source", preset="ring8")
    blob = (folder / WEIGHTS_FILE).read_bytes()
    with pytest.raises(GanError, match=r"model\.pt: refused.*pickles"):
        import_upload([("model.pt", pickle.dumps({"weights": 1}))])
    with pytest.raises(GanError, match=r"grid\.png: refused.*image"):
        import_upload([("grid.png", b"\x89PNG\r\n")])
    with pytest.raises(GanError, match="alone holds no weights"):
        import_upload([("config.json", b"{}")])
    with pytest.raises(CheckpointError):  # a pickle renamed .safetensors is never unpickled
        import_upload([("evil.safetensors", pickle.dumps(object))])

    target, notes = import_upload([("model.safetensors", blob), ("config.json", json.dumps({"config": {}}).encode())],
                                  owner="me", name="uploaded")
    assert notes and "differs" in notes[0]
    run = next(r for r in list_runs() if r.path == target)
    assert run.owner == "me" and run.dataset == "ring8" and run.step == 2


def test_rename_and_delete_guard_the_runs_folder(tmp_path):
    folder = tiny_run("old-name", preset="ring8")
    with pytest.raises(GanError, match="letters, digits"):
        rename_run(folder, "../escape")
    with pytest.raises(GanError, match="training right now"):
        rename_run(folder, "new-name", busy={folder})
    renamed = rename_run(folder, "new-name")
    assert renamed.name == "new-name" and not folder.exists()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / WEIGHTS_FILE).write_bytes(b"")
    with pytest.raises(GanError, match="not a saved run"):
        delete_run(outside)
    delete_run(renamed)
    assert not renamed.exists()


def test_a_shared_link_preselects_the_preset(manager):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["preset"] = "ring8"
    at.run()
    at.switch_page("pages/train.py").run()
    assert at.selectbox(key="train_preset").value == "ring8"
    assert at.selectbox(key="train_dataset").value == "ring8"
    button(at, "Start").click().run()
    assert not at.error, [e.value for e in at.error]
    job = session_job(at, manager)
    assert job.config.dataset == "ring8" and job.config.arch == "toy"
    job.stop()


def test_latent_explorer_walks_classes_of_a_conditional_run():
    tiny_run("tiny-cdcgan")
    at = open_page("pages/latent.py")
    assert at.selectbox(key="latent_class_start").value == 3 and at.selectbox(key="latent_class_end").value == 8
    first = at.image[0].value
    at.selectbox(key="latent_class_start").set_value(8).run()
    assert not at.exception
    assert at.image[0].value != first, "the class at z0 takes part in the walk"


def test_pretrained_generators_are_listed_first_and_read_only(monkeypatch, tmp_path):
    from gan_core import runs

    monkeypatch.setattr(runs, "PRETRAINED_DIR", tmp_path / "pretrained")
    trainer = Trainer(get_preset("mnist-cdcgan").config(g_width=8, d_width=8, batch_size=16))
    save_checkpoint(trainer, tmp_path / "pretrained" / "mnist-cdcgan", {})
    tiny_run("mine", preset="mnist-dcgan")
    listed = list_runs()
    assert [(r.name, r.source) for r in listed] == [("mnist-cdcgan", "pretrained"), ("mine", "saved")]
    with pytest.raises(GanError, match="read-only"):
        delete_run(listed[0].path)
    at = open_page("pages/latent.py")
    assert at.selectbox(key="latent_run").value == str(tmp_path / "pretrained" / "mnist-cdcgan")
    at = open_page("pages/class_control.py")
    assert "pretrained" in at.selectbox(key="class_run").format_func(at.selectbox(key="class_run").value)


def test_the_form_shows_every_field_and_a_new_preset_resets_them(manager):
    from gan_core.app.form import FORM_FIELDS

    at = open_page("pages/train.py")
    widgets = [*at.number_input, *at.selectbox, *at.toggle, *at.text_input]
    shown = {w.key for w in widgets}
    assert {f"train_{name}" for name in FORM_FIELDS} <= shown, "every TrainConfig field needs a widget"

    at.selectbox(key="train_preset").set_value("ring8").run()
    toy = get_preset("ring8").config()
    assert (at.number_input(key="train_beta1_g").value, at.number_input(key="train_beta2_g").value) == (toy.beta1_g, toy.beta2_g)
    at.selectbox(key="train_preset").set_value("mnist-dcgan").run()
    dcgan = get_preset("mnist-dcgan").config()
    for name in ("beta1_g", "beta2_g", "beta1_d", "beta2_d", "snapshot_every", "embed_dim"):
        assert at.number_input(key=f"train_{name}").value == getattr(dcgan, name), name
    assert at.selectbox(key="train_precision").value == dcgan.precision

    for name, value in dict(g_width=8, d_width=8, batch_size=16, beta2_d=0.95, embed_dim=12, snapshot_every=7).items():
        at.number_input(key=f"train_{name}").set_value(value)
    button(at, "Start").click().run()
    job = session_job(at, manager)
    assert (job.config.beta2_d, job.config.embed_dim, job.config.snapshot_every) == (0.95, 12, 7), \
        "what trains is exactly what the form shows"
    job.stop()


def test_one_bad_run_folder_does_not_break_the_runs_page():
    tiny_run("fine", preset="ring8")
    bad = tiny_run("broken", preset="ring8")
    trainer = Trainer(get_preset("ring8").config(g_width=8, d_width=8))
    save_checkpoint(trainer, bad, {"final_metrics": {"fcd": "a string where a number belongs"}})
    at = open_page("pages/runs.py")
    assert not at.exception
    assert any("broken" in w.value and "unreadable" in w.value and "final_metrics" in w.value for w in at.warning)
    assert "fine" in at.dataframe[0].value["Name"].tolist()


def test_a_run_too_big_for_the_server_is_refused_before_anything_is_allocated(manager):
    at = open_page("pages/train.py")
    for name, value in dict(g_width=2048, d_width=2048, batch_size=4096, z_dim=1024).items():
        at.number_input(key=f"train_{name}").set_value(value)
    button(at, "Start").click().run()
    assert any("GB each run may use" in e.value and "g_width" in e.value for e in at.error), [e.value for e in at.error]
    assert session_job(at, manager) is None


def timeline_run(name: str, preset: str = "mnist-cdcgan", steps: int = 12) -> Path:
    """A tiny run trained through RunWriter (as the CLI and the app train), so it has a timeline."""
    from gan_core.runner import RunWriter

    trainer = Trainer(get_preset(preset).config(g_width=8, d_width=8, batch_size=16))
    writer = RunWriter(trainer, runs_dir() / name, checkpoint_seconds=0)
    for _ in range(steps):
        writer.record(trainer.step())
    writer.checkpoint({"owner": "", "name": name, "status": "finished"})
    writer.close()
    return runs_dir() / name


@pytest.mark.parametrize("page,key", [("pages/latent.py", "latent"), ("pages/class_control.py", "class")])
def test_the_explorers_pick_any_step_of_the_timeline(page, key):
    from gan_core.timeline import open_timeline

    folder = timeline_run("timeline-run")
    steps = open_timeline(folder).steps
    at = open_page(page)
    at.selectbox(key=f"{key}_run").set_value(str(folder)).run()
    key = f"{key}_step"
    slider = at.select_slider(key=key)
    assert slider.value == 12 and slider.options == [f"{s:,}" for s in steps], "defaults to the final generator"
    final = [img.value for img in at.image]
    slider.set_value(0).run()
    assert not at.exception and not at.warning
    assert [img.value for img in at.image] != final, "the untrained generator draws something else"
    assert any("after 0 steps" in c.value for c in at.caption)


def test_the_runs_page_replays_a_run_and_survives_a_corrupt_timeline():
    from gan_core.timeline import TIMELINE_FILE

    good = timeline_run("replay-good", preset="ring8")
    bad = timeline_run("replay-bad", preset="mnist-dcgan")
    (bad / TIMELINE_FILE).write_bytes(b"not a safetensors file at all")
    at = open_page("pages/runs.py")
    at.selectbox(key="runs_selected").set_value(str(good)).run()
    button(at, "Replay").click().run()
    assert not at.exception
    assert any("snapshots from step 0 to step 12" in c for img in at.image for c in img.captions)
    assert any(d.label == "Download the replay (GIF)" for d in at.get("download_button"))
    at.selectbox(key="runs_selected").set_value(str(bad)).run()
    button(at, "Replay").click().run()
    assert not at.exception
    assert any("No replay" in i.value and TIMELINE_FILE in i.value for i in at.info)
    at.switch_page("pages/latent.py").run()  # opens the run chosen on the Runs page: its final generator
    assert not at.exception and at.image
    assert any("timeline of this run cannot be read" in c.value for c in at.caption)


def test_an_ab_pair_from_its_page_trains_both_sides_and_the_runs_page_shows_the_pair(manager):
    at = open_page("pages/compare.py")
    for name, value in dict(g_width=16, d_width=16, batch_size=32).items():
        at.number_input(key=f"ab_{name}").set_value(value)
    at.run()
    assert at.selectbox(key="ab_b_loss").value != "bce", "B's changed field starts at a value other than A's"
    at.selectbox(key="ab_b_loss").set_value("minimax")
    button(at, "Start A/B").click().run()
    assert not at.exception, [e.value for e in at.exception]
    pair = session_job(at, manager)
    assert pair is not None and (pair.a.config.loss, pair.b.config.loss) == ("bce", "minimax")
    assert pair.a.config.g_width == pair.b.config.g_width == 16
    assert wait_until(lambda: pair.view().step >= 3 and pair.view().b.latest is not None, 60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("B differs from A in: **loss** 'bce' → 'minimax'" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 4, "both 2D plots and the two overlaid charts"
    table = at.dataframe[0].value
    assert list(table.columns) == ["Quantity", "A", "B", "B − A"] and "D(x) on real" in table["Quantity"].tolist()

    button(at, "Stop").click().run()
    assert wait_until(lambda: not pair.state.active, 30)
    at.run()
    assert any("linked as a pair" in s.value for s in at.success)
    at.switch_page("pages/train.py").run()  # a finished pair does not block a single run
    assert not at.exception and button(at, "Start").disabled is False
    at.switch_page("pages/runs.py").run()
    listed = at.dataframe[0].value
    pairs = dict(zip(listed["Name"], listed["Pair"]))
    assert pairs[pair.a.name] == f"A vs {pair.b.name}" and pairs[pair.b.name] == f"B vs {pair.a.name}"
    at.selectbox(key="runs_selected").set_value(str(pair.b.run_dir)).run()
    captions = [c for img in at.image for c in img.captions]
    assert any(c.startswith(f"A: 64 samples from {pair.a.name}") for c in captions), captions
    assert any(c.startswith(f"B: 64 samples from {pair.b.name}") for c in captions), captions


def test_the_lesson_buttons_start_each_lesson_against_its_fix(manager):
    at = open_page("pages/compare.py")
    labels = [b.label for b in at.button if " vs " in b.label]
    assert labels == ["ring8-saturating vs ring8-strong-d", "ring8-strong-d vs ring8", "ring8-collapse vs ring8-collapse-sn",
                      "mnist-no-smoothing vs mnist-mlp"]
    button(at, "mnist-no-smoothing vs mnist-mlp").click().run()
    pair = session_job(at, manager)
    assert (pair.a.preset, pair.b.preset) == ("mnist-no-smoothing", "mnist-mlp")
    assert dict((n, (a, b)) for n, a, b in pair.view().differences) == {"label_smoothing": (0.0, 0.1)}
    at.run()
    assert all(b.disabled for b in at.button if " vs " in b.label), "one pair at a time"
    pair.stop()
