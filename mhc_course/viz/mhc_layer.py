"""Lesson 05's widget: HC vs mHC gains over depth, per layer and composite, forward and backward.

Two panels share a log-scale y axis: HC on the left, mHC on the right, each with the four
curves of ``gain_profile`` (per-layer and composite, forward = max row sum, backward = max
column sum). The controls choose where the mixing matrices come from (drifted connection
modules or drifted mappings), how far they drifted, n and the depth.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from torch import Tensor

from ..depth_gains import KINDS, mapping_profile, stack_profile
from .display import show

SOURCES = {"modules": "connection modules", "mappings": "drifted mappings"}
PANELS = {"hc": "HC (dynamic Hyper-Connections)", "mhc": "mHC"}
# (profile key, legend name, colour, dash, width)
CURVES = (
    ("layer_fwd", "per layer, forward (row sums)", "#1f77b4", "dot", 1.5),
    ("layer_bwd", "per layer, backward (column sums)", "#ff7f0e", "dot", 1.5),
    ("composite_fwd", "composite, forward", "#1f77b4", "solid", 3.0),
    ("composite_bwd", "composite, backward", "#ff7f0e", "dash", 3.0),
)


def depth_profiles(source: str, drift: float, n: int, depth: int, *, C: int = 32, batch: int = 4, seq: int = 16,
                   tokens: int = 64, seed: int = 0) -> dict[str, dict[str, Tensor]]:
    """``{"hc": profile, "mhc": profile}`` from ``stack_profile`` (source "modules") or
    ``mapping_profile`` (source "mappings"); each profile holds four (depth,) curves."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {tuple(SOURCES)}, got {source!r}")
    if source == "modules":
        return {k: stack_profile(k, drift, depth=depth, n=n, C=C, batch=batch, seq=seq, seed=seed) for k in KINDS}
    return {k: mapping_profile(k, drift, depth=depth, n=n, tokens=tokens, seed=seed) for k in KINDS}


def _title(source: str, drift: float, n: int) -> str:
    return f"Amax gain over depth: {SOURCES[source]}, drift {drift:.3g}, n = {n} (mean over tokens)"


def gain_figure(profiles: dict[str, dict[str, Tensor]], title: str) -> go.FigureWidget:
    """Two panels (HC, mHC) × four curves, log-scale gain against layer."""
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                                        subplot_titles=[PANELS[k] for k in KINDS]))
    for col, kind in enumerate(KINDS, start=1):
        for key, name, colour, dash, width in CURVES:
            y = profiles[kind][key].numpy()
            fig.add_trace(go.Scatter(x=np.arange(1, len(y) + 1), y=y, name=name, legendgroup=key, showlegend=col == 1,
                                     mode="lines", line={"color": colour, "dash": dash, "width": width}),
                          row=1, col=col)
        fig.update_xaxes(title_text="layer", row=1, col=col)
    fig.update_yaxes(type="log", title_text="Amax gain (log scale)", row=1, col=1)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title=title, height=480, margin={"l": 70, "r": 20, "t": 80, "b": 110},
                      legend={"orientation": "h", "x": 0, "y": -0.18})
    return fig


def update_gain_figure(fig: go.FigureWidget, profiles: dict[str, dict[str, Tensor]], title: str) -> None:
    """Replace the eight curves and the title in place (one redraw)."""
    with fig.batch_update():
        for i, (kind, (key, *_)) in enumerate((k, c) for k in KINDS for c in CURVES):
            y = profiles[kind][key].numpy()
            fig.data[i].x, fig.data[i].y = np.arange(1, len(y) + 1), y
        fig.layout.title.text = title


def depth_gain_widget(drift: float = 0.3, n: int = 4, depth: int = 64, source: str = "modules", **sizes: int
                      ) -> go.FigureWidget:
    """Controls (source, drift, n, depth) over the two-panel figure; returns the figure.

    ``sizes`` go to ``depth_profiles`` (C, batch, seq, tokens, seed).
    """
    fig = gain_figure(depth_profiles(source, drift, n, depth, **sizes), _title(source, drift, n))
    source_w = widgets.ToggleButtons(options=[(v, k) for k, v in SOURCES.items()], value=source,
                                     description="matrices")
    drift_w = widgets.FloatLogSlider(value=drift, base=10, min=-2, max=0.6, step=0.05, readout_format=".3g",
                                     description="drift", continuous_update=False)
    n_w = widgets.Dropdown(options=sorted({2, 3, 4, 6, 8, n}), value=n, description="streams n")
    depth_w = widgets.IntSlider(value=depth, min=4, max=128, step=4, description="depth", continuous_update=False)

    def update(_=None) -> None:
        profiles = depth_profiles(source_w.value, drift_w.value, n_w.value, depth_w.value, **sizes)
        update_gain_figure(fig, profiles, _title(source_w.value, drift_w.value, n_w.value))

    for w in (source_w, drift_w, n_w, depth_w):
        w.observe(update, names="value")
    show(widgets.VBox([source_w, widgets.HBox([drift_w, n_w, depth_w]), fig]), fig)
    return fig
