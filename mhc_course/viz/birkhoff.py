"""Lesson 03's figures: a BvN decomposition, and products of mixing matrices over depth.

``mixing_curves`` multiplies L random mappings of three kinds (unconstrained HC, identity-leaning
mHC, random doubly stochastic) and tracks each product's forward gain and its distance from the
uniform matrix J/n; ``mixing_widget`` puts that behind sliders.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from ..birkhoff import BvNDecomposition, distance_from_uniform, random_convex_permutations
from ..metrics import amax_gain, composite_prefixes
from ..random_mappings import hc_mappings, mhc_mappings
from .display import show

KINDS = {
    "hc": "HC: I + drift·G (unconstrained)",
    "mhc": "mHC: Sinkhorn(identity-leaning logits + drift·G)",
    "random": "random doubly stochastic (mix of random permutations)",
}
COLOURS = {"hc": "#d62728", "mhc": "#1f77b4", "random": "#2ca02c"}
DASHES = {"hc": "solid", "mhc": "solid", "random": "dash"}  # mHC and random overlap at gain 1: dash one


def bvn_figure(m: Tensor, decomposition: BvNDecomposition) -> go.Figure:
    """Heatmap of M beside the weights of its BvN terms, each labelled by its permutation."""
    mat = m.detach().to(torch.float64).numpy()
    n = mat.shape[0]
    labels = ["(" + " ".join(str(int(j)) for j in p) + ")" for p in decomposition.perms]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.4, 0.6], horizontal_spacing=0.12,
                        subplot_titles=("M (entry values)", "weight w_k of each permutation P_k"))
    fig.add_trace(go.Heatmap(z=mat, x=list(range(n)), y=list(range(n)), zmin=0, zmax=1, colorscale="Blues",
                             text=np.round(mat, 3), texttemplate="%{text}", showscale=False, name="M"), 1, 1)
    fig.add_trace(go.Bar(x=labels, y=decomposition.weights.detach().to(torch.float64).numpy(), name="w_k",
                         marker_color="#1f77b4"), 1, 2)
    fig.update_yaxes(autorange="reversed", title_text="row i", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="column j", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="permutation (perm[0] … perm[n-1]): row i → column perm[i]", row=1, col=2)
    fig.update_yaxes(title_text="weight", row=1, col=2)
    fig.update_layout(title=f"Birkhoff–von Neumann: M = Σ w_k P_k with {len(decomposition)} permutations",
                      height=440, margin={"l": 70, "r": 20, "t": 80, "b": 70}, showlegend=False)
    return fig


def mixing_curves(depth: int, n: int, drift: float, *, res_diag: float = 0.95, terms: int = 4,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """Products of ``depth`` random n×n mappings of each kind, after every layer.

    Kinds: ``hc`` = I + drift·G; ``mhc`` = Sinkhorn–Knopp(identity logits with ``res_diag`` on the
    diagonal + drift·G), 20 iterations; ``random`` = a convex combination of ``terms`` random
    permutation matrices (exactly doubly stochastic, nothing identity-like about it).

    Returns numpy arrays of length ``depth``: ``layer`` (1 … depth); ``gain_<kind>`` the forward
    gain (max |row sum|) of the product; ``dist_<kind>`` its distance ‖P − J/n‖₂ from the uniform
    matrix, for the two doubly stochastic kinds ``mhc`` and ``random``.
    """
    g = torch.Generator().manual_seed(seed)
    mats = {
        "hc": hc_mappings(depth, n, drift, generator=g)[:, 0],
        "mhc": mhc_mappings(depth, n, drift, generator=g, res_diag=res_diag)[:, 0],
        "random": random_convex_permutations(depth, n, terms, generator=g),
    }
    out = {"layer": np.arange(1, depth + 1)}
    for kind, ms in mats.items():
        prods = torch.stack(composite_prefixes(ms))
        out[f"gain_{kind}"] = amax_gain(prods)[0].numpy()
        if kind != "hc":
            out[f"dist_{kind}"] = distance_from_uniform(prods).numpy()
    return out


def _floor(y: np.ndarray, floor: float = 1e-17) -> np.ndarray:
    return np.maximum(y, floor)


def mixing_figure(curves: dict[str, np.ndarray]) -> go.FigureWidget:
    """Left: forward gain of each product (log scale). Right: distance from J/n (log scale)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("forward gain of the product (max |row sum|)",
                                        "distance of the product from J/n: ‖P − J/n‖₂"))
    for kind, label in KINDS.items():
        fig.add_trace(go.Scatter(x=curves["layer"], y=curves[f"gain_{kind}"], name=label, mode="lines",
                                 line={"color": COLOURS[kind], "dash": DASHES[kind], "width": 2.5},
                                 legendgroup=kind), 1, 1)
    for kind in ("mhc", "random"):
        fig.add_trace(go.Scatter(x=curves["layer"], y=_floor(curves[f"dist_{kind}"]), name=KINDS[kind],
                                 mode="lines", line={"color": COLOURS[kind], "dash": DASHES[kind], "width": 2.5},
                                 legendgroup=kind,
                                 showlegend=False), 1, 2)
    fig.update_yaxes(type="log", title_text="gain (log scale)", exponentformat="power", row=1, col=1)
    fig.update_yaxes(type="log", title_text="‖P − J/n‖₂ (log scale, floor 1e-17)", exponentformat="power",
                     row=1, col=2)
    fig.update_xaxes(title_text="depth L (layers multiplied)")
    fig.update_layout(title=_title(curves), height=480, margin={"l": 70, "r": 20, "t": 90, "b": 110},
                      legend={"orientation": "h", "x": 0, "y": -0.22})
    return go.FigureWidget(fig)


def _title(curves: dict[str, np.ndarray]) -> str:
    last = {k: v[-1] for k, v in curves.items()}
    return (f"After {int(last['layer'])} layers: HC gain {last['gain_hc']:.3g}, mHC gain {last['gain_mhc']:.3g}; "
            f"distance from J/n: mHC {last['dist_mhc']:.2g}, random {last['dist_random']:.2g}")


def update_mixing_figure(fig: go.FigureWidget, curves: dict[str, np.ndarray]) -> None:
    """Redraw a ``mixing_figure`` in place with new curves."""
    keys = [f"gain_{k}" for k in KINDS] + ["dist_mhc", "dist_random"]
    with fig.batch_update():
        for trace, key in zip(fig.data, keys, strict=True):
            trace.x = curves["layer"]
            trace.y = curves[key] if key.startswith("gain") else _floor(curves[key])
        fig.layout.title.text = _title(curves)


def mixing_widget(depth: int = 64, n: int = 4, drift: float = 0.3, res_diag: float = 0.95, terms: int = 4,
                  max_depth: int = 256) -> go.FigureWidget:
    """Sliders for depth, drift, mHC's diagonal, the random matrices' number of terms, and n; returns the figure."""
    fig = mixing_figure(mixing_curves(depth, n, drift, res_diag=res_diag, terms=terms))
    depth_s = widgets.IntSlider(value=depth, min=2, max=max_depth, description="depth L", continuous_update=False)
    drift_s = widgets.FloatSlider(value=drift, min=0.0, max=1.0, step=0.01, description="drift",
                                  continuous_update=False)
    diag_s = widgets.FloatSlider(value=res_diag, min=0.3, max=0.999, step=0.001, readout_format=".3f",
                                 description="mHC diagonal", continuous_update=False)
    terms_s = widgets.IntSlider(value=terms, min=1, max=24, description="random terms", continuous_update=False)
    n_s = widgets.Dropdown(options=[2, 3, 4, 6, 8], value=n, description="streams n")
    controls = (depth_s, drift_s, diag_s, terms_s, n_s)

    def update(_=None) -> None:
        c = mixing_curves(depth_s.value, n_s.value, drift_s.value, res_diag=diag_s.value, terms=terms_s.value)
        update_mixing_figure(fig, c)

    for w in controls:
        w.observe(update, names="value")
    rows = [widgets.HBox([depth_s, drift_s, n_s]), widgets.HBox([diag_s, terms_s])]
    show(widgets.VBox([*rows, fig]), fig)
    return fig
