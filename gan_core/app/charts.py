"""Plotly figures of the app (no Streamlit here): losses, the police's confidence, the 2D lab, metrics.

Colours tell the story everywhere: the police (D) blue, the counterfeiter (G) and its fakes
violet, real data green. Each figure is built as one dict and validated once, with numpy arrays:
a live page rebuilds its charts every second in the process that also trains, so they must be cheap.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Optional, Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from ..live.lab2d import EXTENT, LabView
from ..live.quality import LiveMetrics
from ..live.verdict import ScoreScale

POLICE = "#2563eb"
FAKE = "#7c3aed"
REAL = "#16a34a"
GREY = "#6b7280"
WARN = "#dc2626"
ARROW = "rgba(31,41,55,0.8)"
SURFACE_COLOURS = ((0.0, (221, 214, 254)), (0.5, (255, 255, 255)), (1.0, (187, 247, 208)))  # fake .. real
SURFACE_PIXELS = 320  # the decision surface's picture, upsampled (bilinear) from the lab's grid
BOUNDARY_RGB = (107, 114, 128)


def png_data_url(png: bytes) -> str:
    """PNG bytes as a data: URL (travels inside the page's own message; never a 404)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _column(history: dict, name: str) -> np.ndarray:
    """A history column as a float array (plotly checks arrays far faster than lists)."""
    return np.asarray(history.get(name, []), dtype=np.float64)


def _figure(data: list[dict], title: str, height: int, x_title: str = "training step", y_title: str = "",
            **layout: Any) -> go.Figure:
    """A figure with the app's common layout; `layout` entries are merged over it."""
    base: dict[str, Any] = dict(
        title=dict(text=title, x=0, xanchor="left", font=dict(size=14)),
        height=height, margin=dict(l=10, r=10, t=40, b=10), font=dict(size=12),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1, font=dict(size=11)),
        hovermode="x unified", uirevision="keep",  # keep the user's zoom across live updates
        xaxis=dict(title=dict(text=x_title), rangemode="tozero"),
        yaxis=dict(title=dict(text=y_title)),
    )
    for key, value in layout.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return go.Figure(dict(data=data, layout=base))


def _line(x: Any, y: Any, name: str, colour: str, width: float = 1.6, **extra: Any) -> dict:
    return dict(type="scatter", mode="lines", x=x, y=y, name=name, line=dict(color=colour, width=width), **extra)


def _level(x0: float, x1: float, y: float, name: str, colour: str, dash: str = "dash") -> dict:
    """A horizontal reference line as a legend entry (cheaper and tidier than a shape plus annotation)."""
    return dict(type="scatter", mode="lines", x=[x0, x1], y=[y, y], name=name, hoverinfo="skip",
                line=dict(color=colour, dash=dash, width=1.5))


# A y-axis follows the bulk of a curve, not its spikes. The bulk is the 2%-98% quantile band of the values;
# a value further than SPIKE_REACH band widths outside it is a spike. With spikes, the axis spans the other
# values only, and each spike is drawn as a marker on the edge it went past (its value on hover).
SPIKE_QUANTILES = (0.02, 0.98)
SPIKE_REACH = 3.0
SPIKE_MIN_POINTS = 20


def robust_range(values: np.ndarray) -> Optional[tuple[float, float]]:
    """The y-range of the values that are not spikes, or None when no value is a spike (the axis then fits
    everything)."""
    finite = values[np.isfinite(values)]
    if finite.size < SPIKE_MIN_POINTS:
        return None
    lo, hi = np.quantile(finite, SPIKE_QUANTILES)
    spread = max(float(hi - lo), 1e-3 * max(abs(float(lo)), abs(float(hi)), 1.0))
    calm = finite[(finite >= lo - SPIKE_REACH * spread) & (finite <= hi + SPIKE_REACH * spread)]
    if calm.size == finite.size:
        return None
    return float(calm.min()), float(calm.max())


def _clip_spikes(data: list[dict], layout: dict[str, Any]) -> list[dict]:
    """Clip the y-axis of these line traces to `robust_range` of all their values; add one marker trace of
    the points beyond it, drawn on the edge they went past (hover shows the real value)."""
    ys = [np.asarray(d["y"], dtype=np.float64) for d in data]
    span = robust_range(np.concatenate(ys)) if ys else None
    if span is None:
        return data
    low, high = span
    layout["yaxis"] = dict(range=[low - 0.04 * (high - low), high + 0.04 * (high - low)])
    xs_out, ys_out, values, symbols = [], [], [], []
    for d, y in zip(data, ys):
        out = np.isfinite(y) & ((y > high) | (y < low))
        x = np.asarray(d["x"], dtype=np.float64)
        xs_out.append(x[out])
        ys_out.append(np.where(y[out] > high, high, low))
        values.append(y[out])
        symbols += ["triangle-up" if v > high else "triangle-down" for v in y[out]]
    peak = np.concatenate(values)
    worst = float(peak[np.argmax(np.abs(peak))])
    return data + [dict(type="scatter", mode="markers", x=np.concatenate(xs_out), y=np.concatenate(ys_out),
                        customdata=peak, name=f"spike off the scale ({worst:.3g})",
                        hovertemplate="step %{x}: %{customdata:.4g}<extra>spike</extra>",
                        marker=dict(color=WARN, size=10, symbol=symbols, line=dict(color="white", width=1)))]


def loss_figure(history: dict[str, list[float]], height: int = 260) -> go.Figure:
    """D and G losses over training steps; a spike is marked on the edge instead of flattening the curves."""
    steps = _column(history, "step")
    layout: dict[str, Any] = {}
    data = _clip_spikes([_line(steps, _column(history, "loss_d"), "D (police)", POLICE),
                         _line(steps, _column(history, "loss_g"), "G (counterfeiter)", FAKE)], layout)
    return _figure(data, "Losses", height, y_title="loss", **layout)


def scores_figure(history: dict[str, list[float]], scale: ScoreScale, height: int = 260) -> go.Figure:
    """Mean D(x) on reals vs mean D(G(z)) on fakes, with the equilibrium line where the loss has one."""
    steps = _column(history, "step")
    data = [_line(steps, _column(history, "d_real"), "D(x) on real", REAL),
            _line(steps, _column(history, "d_fake"), "D(G(z)) on fakes", FAKE)]
    if scale.equilibrium is not None and len(steps):
        data.append(_level(float(steps[0]), float(steps[-1]), scale.equilibrium, f"{scale.equilibrium:g}: D can't tell", GREY))
    if scale.probability:
        return _figure(data, "Police verdicts", height, y_title="P(real) by D", yaxis=dict(range=[-0.02, 1.02]))
    layout: dict[str, Any] = {}
    data = _clip_spikes(data[:2], layout) + data[2:]
    return _figure(data, "Police verdicts", height, y_title="raw score (not a probability)", **layout)


def lab_figure(view: LabView, show_surface: bool = True, show_arrows: bool = True, show_real: bool = True,
               height: int = 520, title: Optional[str] = None, compact: bool = False) -> go.Figure:
    """The 2D lab: D's decision surface (heatmap + boundary), real and generated points, G's pushes."""
    data: list[dict] = []
    images: list[dict] = []
    if show_surface:
        # D's surface is drawn here as one picture, not as a plotly heatmap and contour: those are redrawn
        # in the browser at every live update (upsampling, canvas, marching squares), which cost a browser
        # on the training machine about 0.3 CPU-s/s that the training then lacked.
        z = view.surface
        if view.probability:
            zmin, zmax = 0.0, 1.0
        else:
            spread = float(np.nanpercentile(np.abs(z - view.threshold), 98)) or 1.0
            zmin, zmax = view.threshold - spread, view.threshold + spread
        images.append(dict(source=surface_picture(z, zmin, zmax, view.threshold), xref="x", yref="y",
                           x=float(view.grid[0]), y=float(view.grid[-1]), sizex=float(view.grid[-1] - view.grid[0]),
                           sizey=float(view.grid[-1] - view.grid[0]), sizing="stretch", layer="below"))
        if not compact:  # the colour key, from an invisible two-cell heatmap
            data.append(dict(type="heatmap", x=[-EXTENT, -EXTENT], y=[-EXTENT, -EXTENT], z=[[zmin, zmax]], zmin=zmin,
                             zmax=zmax, opacity=0, hoverinfo="skip", showscale=True,
                             colorscale=[[stop, f"rgb{rgb}"] for stop, rgb in SURFACE_COLOURS],
                             colorbar=dict(title=dict(text="D says<br>real", side="top"), len=0.6, thickness=12, x=1.0)))
        if float(np.nanmin(z)) < view.threshold < float(np.nanmax(z)):  # the boundary's legend entry
            data.append(dict(type="scatter", mode="lines", x=[None], y=[None], name="decision boundary",
                             line=dict(color=GREY, width=1.5, dash="dot")))
    if show_real:
        data.append(dict(type="scatter", mode="markers", x=view.real[:, 0], y=view.real[:, 1], name="real data",
                         marker=dict(color=REAL, size=4, opacity=0.55), hoverinfo="skip"))
    data.append(dict(type="scatter", mode="markers", x=view.fake[:, 0], y=view.fake[:, 1], name="generated (fakes)",
                     marker=dict(color=FAKE, size=5, opacity=0.85), hoverinfo="skip"))
    if show_arrows and len(view.arrow_start):
        xs, ys = _segments(view.arrow_start, view.arrow_end)
        data.append(_line(xs, ys, "G's gradient push", ARROW, width=1, hoverinfo="skip"))
        d = view.arrow_end - view.arrow_start
        shown = np.linalg.norm(d, axis=1) > 0.012
        angles = np.degrees(np.arctan2(d[shown, 0], d[shown, 1]))  # marker angle: clockwise from "up"
        data.append(dict(type="scatter", mode="markers", x=view.arrow_end[shown, 0], y=view.arrow_end[shown, 1],
                         showlegend=False, hoverinfo="skip",
                         marker=dict(symbol="triangle-up", size=6, angle=angles, color=ARROW)))
    axis = dict(range=[-EXTENT, EXTENT], showgrid=False, zeroline=False, showticklabels=not compact)
    layout = dict(
        height=height, margin=dict(l=6, r=6, t=36 if title or not compact else 28, b=6), font=dict(size=12),
        title=dict(text=title or f"step {view.step:,}", x=0, font=dict(size=13)),
        legend=dict(orientation="h", yanchor="top", y=-0.08, xanchor="left", x=0),
        showlegend=not compact, plot_bgcolor="white", uirevision="lab", images=images,
        xaxis=dict(axis, constrain="domain"), yaxis=dict(axis, scaleanchor="x", scaleratio=1),
    )
    return go.Figure(dict(data=data, layout=layout))


def surface_picture(z: np.ndarray, zmin: float, zmax: float, threshold: float,
                    pixels: int = SURFACE_PIXELS) -> str:
    """D's surface (z[i, j] at x = column j, y = row i, y upwards) as a PNG data URL: upsampled bilinearly,
    coloured violet (fake) - white - green (real) between zmin and zmax, with the decision boundary (where
    it crosses `threshold`) as a dotted grey line."""
    values = np.nan_to_num(np.asarray(z, dtype=np.float32), nan=threshold)
    big = np.asarray(Image.fromarray(values[::-1], mode="F").resize((pixels, pixels), Image.Resampling.BILINEAR))
    t = np.clip((big - zmin) / max(zmax - zmin, 1e-12), 0.0, 1.0)
    stops = np.array([stop for stop, _ in SURFACE_COLOURS])
    rgb = np.stack([np.interp(t, stops, [c[k] for _, c in SURFACE_COLOURS]) for k in range(3)], axis=-1)
    above = big >= threshold
    edge = np.zeros_like(above)
    edge[:, 1:] |= above[:, 1:] != above[:, :-1]
    edge[1:, :] |= above[1:, :] != above[:-1, :]
    rows, cols = np.indices(edge.shape)
    edge &= (rows + cols) % 8 < 5  # dotted
    rgb[edge] = BOUNDARY_RGB
    out = io.BytesIO()
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(out, format="PNG", compress_level=1)
    return png_data_url(out.getvalue())


def _segments(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Line segments start->end as one trace, separated by NaN gaps."""
    gap = np.full((len(start), 1), np.nan)
    xs = np.hstack([start[:, :1], end[:, :1], gap]).ravel()
    ys = np.hstack([start[:, 1:], end[:, 1:], gap]).ravel()
    return xs, ys


def fcd_figure(m: LiveMetrics, height: int = 240) -> go.Figure:
    """FCD over training (lower is better) with the floor reached by real images."""
    steps = np.asarray(m.steps[-len(m.fcd):], dtype=np.float64)
    data = [dict(type="scatter", mode="lines+markers", x=steps, y=np.asarray(m.fcd), name=f"FCD ({m.fcd_n:,} samples)",
                 line=dict(color=FAKE, width=2), marker=dict(size=5))]
    if m.fcd_floor is not None and len(steps):
        data.append(_level(0.0, float(steps[-1]), m.fcd_floor, "real images", REAL))
    return _figure(data, "Distance to real data (lower is better)", height, y_title="FCD", yaxis=dict(rangemode="tozero"))


def histogram_figure(m: LiveMetrics, class_names: Sequence[str], height: int = 240) -> go.Figure:
    """Share of generated samples per class (by the evaluator), with the even share marked."""
    k = len(m.histogram)
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    data = [dict(type="bar", x=names, y=np.asarray(m.histogram), showlegend=False,
                 marker=dict(color=[WARN if p < 0.02 else FAKE for p in m.histogram]),
                 hovertemplate="%{x}: %{y:.1%}<extra></extra>")]
    if k:
        data.append(dict(type="scatter", mode="lines", x=[names[0], names[-1]], y=[1 / k, 1 / k], name="even share",
                         hoverinfo="skip", line=dict(color=GREY, dash="dash", width=1.5)))
    return _figure(data, "Which classes does G draw?", height, x_title="class (as the evaluator reads it)",
                   y_title="share", hovermode="closest", xaxis=dict(type="category"),
                   yaxis=dict(tickformat=".0%", rangemode="tozero"))


def coverage_figure(m: LiveMetrics, height: int = 240) -> go.Figure:
    """Modes covered over training (2D toys), with the collapse threshold."""
    steps = np.asarray(m.steps[-len(m.covered):], dtype=np.float64)
    data = [dict(type="scatter", mode="lines+markers", x=steps, y=np.asarray(m.covered), name="modes covered",
                 line=dict(color=FAKE, width=2, shape="hv"), marker=dict(size=5))]
    if len(steps):
        data.append(_level(0.0, float(steps[-1]), m.collapse_threshold, "below: mode collapse", WARN, dash="dot"))
    return _figure(data, f"Modes covered (of {m.n_modes})", height, y_title="modes",
                   yaxis=dict(range=[-0.3, m.n_modes + 0.5]))


def per_mode_figure(m: LiveMetrics, height: int = 240) -> go.Figure:
    """How many good samples land on each mode (2D toys)."""
    counts = m.per_mode
    data = [dict(type="bar", x=[str(i + 1) for i in range(len(counts))], y=np.asarray(counts), showlegend=False,
                 marker=dict(color=[WARN if c == 0 else FAKE for c in counts]),
                 hovertemplate="mode %{x}: %{y} samples<extra></extra>")]
    return _figure(data, "Good samples per mode", height, x_title="mode", y_title="samples", hovermode="closest",
                   xaxis=dict(type="category"))


# --- A/B pairs: both sides in one chart per quantity (A solid, B dashed, same colour per quantity) ---
PAIR_DASH = {"A": "solid", "B": "dash"}
PAIR_LEGEND = dict(orientation="h", yanchor="top", y=-0.14, xanchor="left", x=0)  # below: 4-5 entries


def _pair_lines(histories: dict[str, dict], quantities: Sequence[tuple[str, str, str]]) -> list[dict]:
    data = []
    for side, history in histories.items():
        steps = _column(history, "step")
        for column, label, colour in quantities:
            line = _line(steps, _column(history, column), f"{label} · {side}", colour, width=1.8 if side == "A" else 1.6)
            line["line"]["dash"] = PAIR_DASH[side]
            data.append(line)
    return data


def pair_loss_figure(history_a: dict, history_b: dict, height: int = 260) -> go.Figure:
    """D and G losses of both sides of an A/B pair, overlaid (A solid, B dashed), by training step (the
    axis is not titled: the legend sits below it)."""
    layout: dict[str, Any] = {}
    data = _clip_spikes(_pair_lines({"A": history_a, "B": history_b}, [("loss_d", "D", POLICE), ("loss_g", "G", FAKE)]),
                        layout)
    return _figure(data, "Losses: A solid, B dashed", height, x_title="", y_title="loss", legend=PAIR_LEGEND, **layout)


def pair_scores_figure(history_a: dict, history_b: dict, scale: ScoreScale, height: int = 260) -> go.Figure:
    """D(x) and D(G(z)) of both sides of an A/B pair, overlaid (A solid, B dashed). `scale` is A's reading
    of D's output (the page says when B's loss reads it differently)."""
    data = _pair_lines({"A": history_a, "B": history_b}, [("d_real", "D(x)", REAL), ("d_fake", "D(G(z))", FAKE)])
    steps = np.concatenate([_column(history_a, "step"), _column(history_b, "step")])
    if scale.equilibrium is not None and len(steps):
        data.append(_level(float(steps.min()), float(steps.max()), scale.equilibrium, f"{scale.equilibrium:g}: D can't tell", GREY))
    title = "Police verdicts: A solid, B dashed"
    if scale.probability:
        return _figure(data, title, height, x_title="", y_title="P(real) by D", yaxis=dict(range=[-0.02, 1.02]),
                       legend=PAIR_LEGEND)
    return _figure(data, title, height, x_title="", y_title="raw score (not a probability)", legend=PAIR_LEGEND)


# --- the Lessons page: the moment a lesson is about, marked on its chart ------------------------
MOMENT = "#b45309"


def mark_moment(fig: go.Figure, step: Optional[int], text: str) -> go.Figure:
    """A dotted vertical line at `step` with a short label at the top (the moment a lesson is about, e.g.
    where the curves close in or modes are lost); `fig` unchanged when `step` is None."""
    if step is None:
        return fig
    last = max((float(np.nanmax(t.x)) for t in fig.data if t.x is not None and len(t.x)), default=float(step))
    fig.add_vline(x=step, line=dict(color=MOMENT, width=2, dash="dot"))
    # inside the plot, at its foot, on the side of the line with room: clear of the title and the legend
    fig.add_annotation(x=step, y=0.02, yref="paper", yanchor="bottom", text=f" {text} ", showarrow=False,
                       font=dict(color=MOMENT, size=12), bgcolor="rgba(255,255,255,0.85)",
                       xanchor="right" if step > 0.5 * last else "left")
    return fig


def pair_grad_figure(history_a: dict, history_b: dict, height: int = 260) -> go.Figure:
    """G's gradient norm on both sides of an A/B pair (A solid, B dashed), on a log axis: a vanishing
    gradient is orders of magnitude below the other side's."""
    data = _pair_lines({"A": history_a, "B": history_b}, [("grad_norm_g", "G's gradient norm", FAKE)])
    return _figure(data, "G's gradient norm: A solid, B dashed (log scale)", height, x_title="",
                   y_title="|grad G|", yaxis=dict(type="log"), legend=PAIR_LEGEND)


def pair_coverage_figure(metrics_a: Optional[LiveMetrics], metrics_b: Optional[LiveMetrics], height: int = 260) -> go.Figure:
    """Modes covered on both sides of an A/B pair over training (2D toys), with the collapse threshold."""
    data, last, threshold, n_modes = [], 0.0, 0, 8
    for side, m in (("A", metrics_a), ("B", metrics_b)):
        if m is None or not m.covered:
            continue
        steps = np.asarray(m.steps[-len(m.covered):], dtype=np.float64)
        data.append(dict(type="scatter", mode="lines+markers", x=steps, y=np.asarray(m.covered), name=f"modes · {side}",
                         line=dict(color=FAKE if side == "A" else REAL, width=2, shape="hv", dash=PAIR_DASH[side]),
                         marker=dict(size=5)))
        last, threshold, n_modes = max(last, float(steps[-1])), m.collapse_threshold, m.n_modes
    if data:
        data.append(_level(0.0, last, threshold, "below: mode collapse", WARN, dash="dot"))
    return _figure(data, "Modes covered: A solid, B dashed", height, x_title="", y_title="modes",
                   yaxis=dict(range=[-0.3, n_modes + 0.5]), legend=PAIR_LEGEND)
