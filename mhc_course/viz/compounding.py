"""Lesson 00's first widget: a per-layer gain g compounds to g^L over L layers."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from .display import show


def compounding_curves(depth: int, gain: float) -> dict[str, np.ndarray]:
    """Signal size after each of ``depth`` layers for a per-layer gain and for gain 1."""
    layers = np.arange(0, depth + 1)
    return {"layer": layers, "gain": gain ** layers.astype(np.float64), "identity": np.ones(depth + 1)}


def _title(gain: float) -> str:
    return f"Signal size after L layers: {gain:.3f}<sup>L</sup>"


def compounding_figure(depth: int, gain: float) -> go.FigureWidget:
    c = compounding_curves(depth, gain)
    fig = go.FigureWidget(
        data=[
            go.Scatter(x=c["layer"], y=c["gain"], name=f"gain {gain:.3f} per layer", mode="lines"),
            go.Scatter(x=c["layer"], y=c["identity"], name="gain 1 (identity path)", mode="lines",
                       line={"dash": "dash"}),
        ],
        layout=go.Layout(
            title=_title(gain),
            xaxis_title="layer L",
            yaxis={"title": "signal size relative to the input (log scale)", "type": "log",
                   "exponentformat": "power", "dtick": 1, "minor": {"showgrid": True}},
            height=440,
            margin={"l": 80, "r": 20, "t": 60, "b": 110},
            legend={"orientation": "h", "x": 0, "y": -0.22},
        ),
    )
    return fig


def compounding_widget(depth: int = 64, gain: float = 1.05, max_depth: int = 256) -> go.FigureWidget:
    """Sliders for depth and per-layer gain over a log-scale plot; returns the figure."""
    fig = compounding_figure(depth, gain)
    depth_slider = widgets.IntSlider(value=depth, min=1, max=max_depth, description="depth L",
                                     continuous_update=False)
    gain_slider = widgets.FloatSlider(value=gain, min=0.8, max=1.2, step=0.005, readout_format=".3f",
                                      description="gain g", continuous_update=False)

    def update(_=None):
        c = compounding_curves(depth_slider.value, gain_slider.value)
        with fig.batch_update():
            fig.data[0].x, fig.data[0].y = c["layer"], c["gain"]
            fig.data[0].name = f"gain {gain_slider.value:.3f} per layer"
            fig.data[1].x, fig.data[1].y = c["layer"], c["identity"]
            fig.layout.title.text = _title(gain_slider.value)

    depth_slider.observe(update, names="value")
    gain_slider.observe(update, names="value")
    show(widgets.VBox([widgets.HBox([depth_slider, gain_slider]), fig]), fig)
    return fig
