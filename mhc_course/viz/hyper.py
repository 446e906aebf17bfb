"""Lesson 02's widget: Amax gains of unconstrained HC mixing matrices, per layer and composite, over depth.

The mixing matrices come from ``random_mappings.hc_mappings`` (the identity plus ``drift`` times
Gaussian noise, as training might move HC's A_r away from I) and their gains from
``metrics.gain_profile``. Two log-scale panels: forward gain (max |row sum|) and backward gain
(max |column sum|), each with the per-layer gain and the composite gain of the product so far.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..metrics import gain_profile
from ..random_mappings import hc_mappings
from .display import show

LAYER_STYLE = {"color": "#ff7f0e", "dash": "dash"}
COMPOSITE_STYLE = {"color": "#d62728"}
IDENTITY_STYLE = {"color": "#7f7f7f", "dash": "dot"}


def hc_gain_curves(n: int, depth: int, drift: float, *, tokens: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Token-averaged gains of ``hc_mappings(depth, n, drift, tokens=tokens)`` drawn from ``seed``.

    Returns numpy arrays of shape (depth,): ``layer`` (1 … depth), ``layer_fwd``, ``layer_bwd``,
    ``composite_fwd``, ``composite_bwd``.
    """
    mats = hc_mappings(depth, n, drift, tokens=tokens, generator=torch.Generator().manual_seed(seed))
    out = {k: v.numpy() for k, v in gain_profile(mats).items()}
    out["layer"] = np.arange(1, depth + 1)
    return out


def format_gain(value: float) -> str:
    """A gain for a title: three significant digits below 1000, whole numbers up to a million, then 1.23e+09."""
    if value < 1e3:
        return f"{value:.3g}"
    return f"{value:,.0f}" if value < 1e6 else f"{value:.3g}"


def _title(n: int, drift: float, curves: dict[str, np.ndarray]) -> str:
    fwd, bwd = format_gain(curves["composite_fwd"].max()), format_gain(curves["composite_bwd"].max())
    return f"HC mixing, n = {n}, drift {drift:.2f}: composite gain peaks at {fwd} forward, {bwd} backward"


def hc_gain_figure(n: int = 4, depth: int = 64, drift: float = 0.3, *, tokens: int = 16,
                   seed: int = 0) -> go.FigureWidget:
    """Forward and backward panels, each with per-layer gain, composite gain and the identity's gain 1."""
    fig = go.FigureWidget(make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1,
        subplot_titles=("forward gain: max |row sum|", "backward gain: max |column sum|"),
    ))
    for col in (1, 2):
        first = col == 1
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="composite: product of layers 1…l",
                                 legendgroup="composite", showlegend=first, line=COMPOSITE_STYLE), row=1, col=col)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="per layer: h_res of layer l",
                                 legendgroup="layer", showlegend=first, line=LAYER_STYLE), row=1, col=col)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="identity path of a residual (gain 1)",
                                 legendgroup="identity", showlegend=first, line=IDENTITY_STYLE), row=1, col=col)
    fig.update_xaxes(title_text="layer l")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="Amax gain, token mean (log scale)", row=1, col=1)
    fig.update_layout(height=480, margin={"l": 70, "r": 20, "t": 80, "b": 110},
                      legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"})
    update_hc_gain_figure(fig, n, depth, drift, tokens=tokens, seed=seed)
    return fig


def update_hc_gain_figure(fig: go.FigureWidget, n: int, depth: int, drift: float, *, tokens: int = 16,
                          seed: int = 0) -> None:
    """Recompute the gains and redraw ``fig`` (built by ``hc_gain_figure``) in place."""
    c = hc_gain_curves(n, depth, drift, tokens=tokens, seed=seed)
    with fig.batch_update():
        for col, direction in enumerate(("fwd", "bwd")):
            comp, layer, ident = fig.data[3 * col: 3 * col + 3]
            comp.x, comp.y = c["layer"], c[f"composite_{direction}"]
            layer.x, layer.y = c["layer"], c[f"layer_{direction}"]
            ident.x, ident.y = c["layer"], np.ones(depth)
        fig.layout.title.text = _title(n, drift, c)


def hc_gain_widget(n: int = 4, depth: int = 64, drift: float = 0.3, *, tokens: int = 16, seed: int = 0,
                   max_n: int = 8, max_depth: int = 256, max_drift: float = 1.0) -> widgets.VBox:
    """Sliders for n, depth and drift over ``hc_gain_figure``; displays and returns the box.

    The box's children are the row of sliders and the figure.
    """
    fig = hc_gain_figure(n, depth, drift, tokens=tokens, seed=seed)
    n_slider = widgets.IntSlider(value=n, min=1, max=max_n, description="streams n", continuous_update=False)
    depth_slider = widgets.IntSlider(value=depth, min=1, max=max_depth, description="depth L",
                                     continuous_update=False)
    drift_slider = widgets.FloatSlider(value=drift, min=0.0, max=max_drift, step=0.01, readout_format=".2f",
                                       description="drift", continuous_update=False)

    def update(_=None) -> None:
        update_hc_gain_figure(fig, n_slider.value, depth_slider.value, drift_slider.value, tokens=tokens, seed=seed)

    for slider in (n_slider, depth_slider, drift_slider):
        slider.observe(update, names="value")
    box = widgets.VBox([widgets.HBox([n_slider, depth_slider, drift_slider], layout={"flex_flow": "row wrap"}), fig])
    show(box, fig)
    return box
