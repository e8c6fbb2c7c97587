"""Runs: saved runs with their settings and final numbers; open, download, rename, delete, upload."""

import json

import streamlit as st

from gan_core import images
from gan_core.app import charts, explore, nav, session
from gan_core.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from gan_core.errors import GanError
from gan_core.runs import RunInfo, can_edit, delete_run, pair_partner, read_history, rename_run, set_shared
from gan_core.uploads import import_upload

nav.require_router("runs")
st.title("Runs", anchor=False)
st.caption("A run is saved when it finishes or is stopped, and every 20 seconds while it trains (so a crash or a "
           "divergence keeps the last good checkpoint). Checkpoints are safetensors files with their settings inside.")

session.show_flash()
teacher = session.is_teacher()
show_all = st.toggle("Show every session's runs (teacher)" if teacher else "Show runs other sessions shared",
                     key="runs_show_all",
                     help="You gave the teacher key: you see, rename and delete every session's runs." if teacher else
                     "Runs trained in other browser sessions on this server are private unless their owner shares "
                     "them; shared runs can be explored and downloaded here, never renamed or deleted.")
# Your own runs first: this page is for managing them (the explorers default to the pretrained ones).
listed = explore.runs_for_session(include_others=show_all, include_unreadable=True)
runs = sorted((r for r in listed if not r.error), key=lambda r: r.source == "pretrained")
for bad in (r for r in listed if r.error):
    st.warning(f"**{bad.name}**: {bad.error}", icon=":material/broken_image:")
job = session.current_job()
if job is not None and job.state.active:
    st.caption(f"Your run **{job.name}** is training; it is listed here once stopped.")


@st.cache_data(max_entries=32, show_spinner=False)
def sample_png(path: str, mtime: float) -> bytes:
    """64 samples of a run (or a scatter of 2D points), reproducible."""
    loaded = explore.load_run(path, mtime)
    with loaded.lock:
        return images.png(explore.samples_picture(loaded.generator, n=64, seed=0))


@st.cache_data(max_entries=32, show_spinner=False)
def metrics_history(path: str, mtime: float) -> dict:
    """The run's metrics.csv as plot columns (decimated)."""
    return read_history(path)


def numbers(run: RunInfo) -> dict:
    """Final numbers of a run, for the table."""
    last = run.last_record
    return {
        "Name": run.name, "By": explore.owner_text(run), "Dataset": run.dataset,
        "Model": f"{run.config.get('arch', '?')}{' (cond.)' if run.conditional else ''}", "Loss": run.config.get("loss", "?"),
        "Steps": run.step, "Minutes": round(run.train_seconds / 60, 1),
        "D loss": last.get("loss_d"), "G loss": last.get("loss_g"), "D(x)": last.get("d_real"), "D(G(z))": last.get("d_fake"),
        "Quality": run.final_metrics.summary(), "Status": run.status, "Saved": run.saved_at,
        "Pair": run.pair.text() if run.pair else "",
    }


if not runs:
    st.info("No saved runs yet. Train one on the **Train** page; it is listed here when it stops.", icon=":material/info:")
else:
    st.dataframe([numbers(r) for r in runs], hide_index=True, width="stretch",
                 column_config={"Name": st.column_config.TextColumn(pinned=True),  # stays in view when the table scrolls
                                "D loss": st.column_config.NumberColumn(format="%.3f"),
                                "G loss": st.column_config.NumberColumn(format="%.3f"),
                                "D(x)": st.column_config.NumberColumn(format="%.2f"),
                                "D(G(z))": st.column_config.NumberColumn(format="%.2f")})
    run = explore.run_picker(runs, key="runs_selected", label="Run")
    path = str(run.path)
    partner = pair_partner(run, runs)
    if partner is not None:  # an A/B pair: both sides' samples (the same z's), A on the left, losses overlaid
        st.markdown(f"**A/B pair**: this run is side **{run.pair.side}**; the other side is **{partner.name}**.")
        sides = sorted([run, partner], key=lambda r: r.pair.side)
        for col, side in zip(st.columns(2, gap="large"), sides):
            col.image(sample_png(str(side.path), side.mtime), caption=f"{side.pair.side}: 64 samples from {side.name} "
                      "(seed 0)", width="stretch")
        histories = [metrics_history(str(side.path), side.mtime) for side in sides]
        if all(histories):
            st.plotly_chart(charts.pair_loss_figure(*histories, 260), key="runs_pair_loss", config={"displayModeBar": False})
        details = st.container()
    else:
        if run.pair is not None:
            st.caption(f"Side {run.pair.side} of an A/B pair; the other side ({run.pair.other}) is not listed here.")
        picture, details = st.columns([1, 1.4], gap="large")
        with picture:
            st.image(sample_png(path, run.mtime), caption=f"64 samples from {run.name} (seed 0)", width="stretch")
        history = metrics_history(path, run.mtime)
        if history:
            details.plotly_chart(charts.loss_figure(history, 240), key="runs_loss", config={"displayModeBar": False})
    with details:
        with st.expander("Settings (config)"):
            st.json(run.config)
        with st.expander("Everything saved with it (metadata)"):
            st.json({k: v for k, v in run.meta.items() if k != "config"})

    row = st.container(horizontal=True)  # buttons keep their whole labels and wrap onto a second line when narrow
    if row.button("Latent explorer", icon=":material/gesture:", help="Open this run in the Latent explorer.",
                  disabled=run.is_points, width="content"):
        session.set_session_value("selected_run", path)
        st.switch_page(nav.page_path("latent"))
    if row.button("Class control", icon=":material/category:", help="Open this run in Class control.",
                  disabled=not run.conditional, width="content"):
        session.set_session_value("selected_run", path)
        st.switch_page(nav.page_path("class"))
    row.download_button("Checkpoint", lambda: (run.path / WEIGHTS_FILE).read_bytes(), file_name=f"{run.name}.safetensors",
                        mime="application/octet-stream", icon=":material/download:", width="content",
                        help="model.safetensors: the weights, with the settings inside its header.")
    row.download_button("Settings", lambda: json.dumps(run.meta, indent=2), file_name=f"{run.name}-{CONFIG_FILE}",
                        mime="application/json", icon=":material/download:", width="content")
    row.download_button("Sample grid", sample_png(path, run.mtime), file_name=f"{run.name}-samples.png",
                        mime="image/png", icon=":material/download:", width="content")
    row.download_button("ONNX", lambda: explore.onnx_bundle(path, run.mtime), file_name=f"{run.name}-onnx.zip",
                        mime="application/zip", icon=":material/download:", width="content",
                        help="The generator as an ONNX model (any batch size) with a README on its inputs and output, "
                             "zipped: run it with onnxruntime, outside PyTorch. Built when you click (a few seconds).")

    st.subheader("Replay the training", anchor=False)
    st.caption("The run kept snapshots of its generator while it trained (many early, fewer later): the same fixed "
               "noise drawn by each of them, from noise to the final generator.")
    explore.replay_panel(path, run.name, key="runs")

    mine = can_edit(run, session.owner())
    if run.source == "saved" and not can_edit(run, session.owner(), teacher):
        st.caption("Read-only here: " + ("shared by another session." if run.owner else "made on the command line."))
    if mine:
        shared = st.toggle("Share with the class (read-only)", value=run.shared, key=f"share_{run.name}",
                           help="Other sessions on this server can then see, explore and download this run.")
        if shared != run.shared:
            try:
                set_shared(run, session.owner(), shared)
                st.rerun()
            except GanError as exc:
                st.error(str(exc))
    elif can_edit(run, session.owner(), teacher):
        st.caption("Not your run: as the teacher you may rename or delete it.")
    if can_edit(run, session.owner(), teacher):
        busy = session.manager().active_run_dirs()
        with st.expander("Rename or delete"):
            c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
            new_name = c1.text_input("New name", value=run.name, key=f"rename_{run.name}")
            if c2.button("Rename", icon=":material/edit:", width="stretch"):
                try:
                    session.set_session_value("selected_run", str(rename_run(run.path, new_name, busy=busy)))
                    st.rerun()
                except GanError as exc:
                    st.error(str(exc))
            confirming = session.session_value("confirm_delete", "") == path
            if not confirming:
                if st.button("Delete this run", icon=":material/delete:"):
                    session.set_session_value("confirm_delete", path)
                    st.rerun()
            else:
                st.warning(f"Delete **{run.name}** for good: its checkpoint, metrics and samples?", icon=":material/warning:")
                y, n, _ = st.columns([1, 1, 3])
                if y.button("Yes, delete it", type="primary", icon=":material/delete_forever:"):
                    session.set_session_value("confirm_delete", "")
                    try:
                        delete_run(run.path, busy=busy)
                        session.flash(f"Deleted {run.name}.")
                        st.rerun()
                    except GanError as exc:
                        st.error(str(exc))
                if n.button("Cancel"):
                    session.set_session_value("confirm_delete", "")
                    st.rerun()

st.subheader("Upload a checkpoint", anchor=False)
st.caption(f"A run's **{WEIGHTS_FILE}** (optionally with its {CONFIG_FILE}). Only safetensors is accepted: pickled "
           "PyTorch files (.pt, .pth, .ckpt) can run code when opened and are refused.")
upload_key = f"runs_upload_{session.session_value('upload_round', 0)}"  # a new key empties the uploader after an import
files = st.file_uploader("Checkpoint files", accept_multiple_files=True, key=upload_key, label_visibility="collapsed")
if files and st.button("Add to my runs", icon=":material/upload:"):
    try:
        folder, notes = import_upload([(f.name, f.getvalue()) for f in files], owner=session.owner())
    except GanError as exc:
        st.error(str(exc), icon=":material/block:")
    else:
        session.set_session_value("selected_run", str(folder))
        session.set_session_value("upload_round", session.session_value("upload_round", 0) + 1)
        session.flash(" ".join([f"Added as **{folder.name}**."] + notes), "warning" if notes else "success")
        st.rerun()
