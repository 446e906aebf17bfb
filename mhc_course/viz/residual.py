"""Lesson 01's widget: activation RMS and gradient RMS through a deep stack, by norm placement.

Two panels share the layer axis: the forward signal's RMS at every h_l and the RMS of
∂loss/∂h_l flowing back, both on a log scale, one trace per placement (no skip, post-norm,
pre-norm). Controls: depth, init gain, placement and branch kind.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..propagation import BRANCHES, PLACEMENT_LABELS, PLACEMENTS, propagation_profile
from .display import show

COLOURS = {"none": "#d62728", "post-norm": "#1f77b4", "pre-norm": "#2ca02c"}
SHOW_ALL = "all"
PLACEMENT_CHOICES = (("all three", SHOW_ALL), ("no skip", "none"), ("post-norm", "post-norm"),
                     ("pre-norm", "pre-norm"))


def _selected(placement: str) -> tuple[str, ...]:
    if placement == SHOW_ALL:
        return PLACEMENTS
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be {SHOW_ALL!r} or one of {PLACEMENTS}, got {placement!r}")
    return (placement,)


def propagation_curves(depth: int, gain: float, placement: str = SHOW_ALL, *, kind: str = "mlp", C: int = 64,
                       batch: int = 16, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """For each selected placement: ``layer`` (0 … depth), ``act_rms`` and ``grad_rms`` as numpy arrays."""
    out = {}
    for p in _selected(placement):
        prof = propagation_profile(p, depth, gain, C=C, batch=batch, kind=kind, seed=seed)
        out[p] = {"layer": np.arange(depth + 1), "act_rms": prof["act_rms"].numpy(),
                  "grad_rms": prof["grad_rms"].numpy()}
    return out


def _title(depth: int, gain: float, kind: str) -> str:
    branch = "MLP" if kind == "mlp" else "linear"
    return f"{depth} layers, {branch} branches, init gain {gain:.3g}: signal forward, gradient backward"


def propagation_figure(depth: int = 64, gain: float = 1.0, placement: str = SHOW_ALL, *, kind: str = "mlp",
                       C: int = 64, batch: int = 16, seed: int = 0) -> go.FigureWidget:
    """Two log-scale panels (activation RMS, gradient RMS against layer), one trace per placement and panel."""
    fig = go.FigureWidget(make_subplots(
        rows=1, cols=2, horizontal_spacing=0.1,
        subplot_titles=("forward: RMS of h<sub>l</sub>", "backward: RMS of ∂loss/∂h<sub>l</sub>"),
    ))
    for p in PLACEMENTS:
        for col in (1, 2):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=PLACEMENT_LABELS[p], legendgroup=p,
                                     showlegend=col == 1, line={"color": COLOURS[p]}), row=1, col=col)
    fig.update_xaxes(title_text="layer l (0 = input)")
    fig.update_yaxes(type="log", exponentformat="power", dtick=1, minor={"showgrid": True})
    fig.update_yaxes(title_text="activation RMS (log scale)", row=1, col=1)
    fig.update_yaxes(title_text="gradient RMS, output = 1 (log scale)", row=1, col=2)
    fig.update_layout(height=480, margin={"l": 70, "r": 20, "t": 80, "b": 110},
                      legend={"orientation": "h", "x": 0, "y": -0.2, "yanchor": "top"})
    update_propagation_figure(fig, depth, gain, placement, kind=kind, C=C, batch=batch, seed=seed)
    return fig


def update_propagation_figure(fig: go.FigureWidget, depth: int, gain: float, placement: str = SHOW_ALL, *,
                              kind: str = "mlp", C: int = 64, batch: int = 16, seed: int = 0) -> None:
    """Recompute the selected placements and redraw ``fig`` in place; hide the others."""
    curves = propagation_curves(depth, gain, placement, kind=kind, C=C, batch=batch, seed=seed)
    with fig.batch_update():
        for i, p in enumerate(PLACEMENTS):
            act, grad = fig.data[2 * i], fig.data[2 * i + 1]
            act.visible = grad.visible = p in curves
            if p in curves:
                c = curves[p]
                act.x, act.y = c["layer"], c["act_rms"]
                grad.x, grad.y = c["layer"], c["grad_rms"]
        fig.layout.title.text = _title(depth, gain, kind)


def propagation_widget(depth: int = 64, gain: float = 1.0, placement: str = SHOW_ALL, *, kind: str = "mlp",
                       C: int = 64, batch: int = 16, seed: int = 0, max_depth: int = 256) -> widgets.VBox:
    """Controls (depth, init gain, placement, branch) over ``propagation_figure``; displays and returns the box.

    The box's children are the row of controls and the figure.
    """
    if kind not in BRANCHES:
        raise ValueError(f"kind must be one of {BRANCHES}, got {kind!r}")
    fig = propagation_figure(depth, gain, placement, kind=kind, C=C, batch=batch, seed=seed)
    depth_slider = widgets.IntSlider(value=depth, min=1, max=max_depth, description="depth L",
                                     continuous_update=False)
    gain_slider = widgets.FloatLogSlider(value=gain, base=2, min=-2, max=2, step=0.05, readout_format=".3g",
                                         description="init gain", continuous_update=False)
    placement_menu = widgets.Dropdown(options=PLACEMENT_CHOICES, value=placement, description="placement")
    kind_menu = widgets.Dropdown(options=(("MLP", "mlp"), ("linear", "linear")), value=kind, description="branch")

    def update(_=None) -> None:
        update_propagation_figure(fig, depth_slider.value, gain_slider.value, placement_menu.value,
                                  kind=kind_menu.value, C=C, batch=batch, seed=seed)

    for control in (depth_slider, gain_slider, placement_menu, kind_menu):
        control.observe(update, names="value")
    box = widgets.VBox([widgets.HBox([depth_slider, gain_slider, placement_menu, kind_menu],
                                     layout={"flex_flow": "row wrap"}), fig])
    show(box, fig)
    return box
