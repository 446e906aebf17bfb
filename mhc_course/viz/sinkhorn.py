"""Lesson 04's figures: Sinkhorn–Knopp's matrix and errors as it iterates, numerics, gains, gradients.

``sinkhorn_widget`` redraws the matrix after t iterations and the row and column error curves
when the iteration count, the logit scale or the dtype changes. The other builders are static
plots of data computed in the lesson (error curves, composite gains, gradient errors).
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import Tensor

from ..sinkhorn import sinkhorn_error_curve, sinkhorn_knopp_in_dtype
from ..validation import check_square
from .display import show

DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FLOOR = 1e-17  # errors of exactly 0 are drawn here on log axes
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _np(t: Tensor | np.ndarray) -> np.ndarray:
    a = t.detach().to(torch.float64).cpu().numpy() if isinstance(t, Tensor) else np.asarray(t, dtype=np.float64)
    return np.where(np.isnan(a), np.nan, np.maximum(a, FLOOR))


def sinkhorn_state(base_logits: Tensor, iters: int, scale: float, dtype: str, max_iters: int) -> dict:
    """What the widget draws for logits ``scale·base_logits`` (n, n) iterated in ``dtype`` (a key of DTYPES).

    Returns ``matrix`` (n, n) numpy float64 (M^iters, NaN kept), ``t`` (0 … max_iters), ``row``
    and ``col`` (errors after each iteration, zeros raised to FLOOR), and ``iters``, ``scale``, ``dtype``.
    """
    base_logits = check_square("base_logits", base_logits)
    if base_logits.dim() != 2:
        raise ValueError(f"base_logits must be one (n, n) matrix, got shape {tuple(base_logits.shape)}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    logits = scale * base_logits.to(torch.float64)
    m = sinkhorn_knopp_in_dtype(logits, iters, DTYPES[dtype]).to(torch.float64).numpy()
    row, col = sinkhorn_error_curve(logits, max_iters, DTYPES[dtype])
    return {"matrix": m, "t": np.arange(max_iters + 1), "row": _np(row), "col": _np(col), "iters": iters,
            "scale": scale, "dtype": dtype}


def _gaps(a: np.ndarray) -> np.ndarray:
    """NaN → None: plotly draws a gap either way, but a widget's JSON messages cannot carry NaN."""
    return np.where(np.isnan(a), None, a)


def _nan_mask(m: np.ndarray) -> np.ndarray:
    """1 where m is NaN, None (not drawn) elsewhere: the grey overlay that marks lost entries."""
    return np.where(np.isnan(m), 1.0, None)


def _cell_text(m: np.ndarray) -> np.ndarray:
    return np.vectorize(lambda v: "NaN" if np.isnan(v) else f"{v:.3f}".rstrip("0").rstrip("."))(m)


def _title(s: dict) -> str:
    r, c = s["row"][s["iters"]], s["col"][s["iters"]]
    return (f"Sinkhorn–Knopp in {s['dtype']}, logits × {s['scale']:.3g}, after t = {s['iters']}: "
            f"row error {r:.2g}, column error {c:.2g}")


def sinkhorn_figure(state: dict) -> go.FigureWidget:
    """Left: M^t as a heatmap with its values. Right: row and column error against t (log scale)."""
    m = state["matrix"]
    n = m.shape[0]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.42, 0.58], horizontal_spacing=0.12,
                        subplot_titles=("M after t iterations", "distance from doubly stochastic"))
    fig.add_trace(go.Heatmap(z=_gaps(m), x=list(range(n)), y=list(range(n)), zmin=0, zmax=1, colorscale="Blues",
                             text=_cell_text(m), texttemplate="%{text}", showscale=False, name="M"), 1, 1)
    fig.add_trace(go.Heatmap(z=_nan_mask(m), x=list(range(n)), y=list(range(n)), zmin=0, zmax=1,
                             colorscale=[[0, "#bbbbbb"], [1, "#bbbbbb"]], text=np.full(m.shape, "NaN"),
                             texttemplate="%{text}", showscale=False, name="NaN entries"), 1, 1)
    line = {"mode": "lines+markers", "marker": {"size": 4}}  # markers keep an isolated finite point visible
    fig.add_trace(go.Scatter(x=state["t"], y=_gaps(state["row"]), name="row error max|Σ_j M_ij − 1|",
                             line={"color": PALETTE[0]}, **line), 1, 2)
    fig.add_trace(go.Scatter(x=state["t"], y=_gaps(state["col"]), name="column error max|Σ_i M_ij − 1|",
                             line={"color": PALETTE[1]}, **line), 1, 2)
    t = state["iters"]
    fig.add_trace(go.Scatter(x=[t, t], y=_gaps(np.array([state["row"][t], state["col"][t]])),
                             name="the t shown on the left",
                             mode="markers", marker={"color": "black", "size": 9, "symbol": "x"}), 1, 2)
    fig.update_yaxes(autorange="reversed", title_text="row i", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="column j", dtick=1, row=1, col=1)
    fig.update_yaxes(type="log", title_text="error (log scale; 0 drawn at 1e-17)", exponentformat="power",
                     row=1, col=2)
    fig.update_xaxes(title_text="iteration t (column step, then row step)", row=1, col=2)
    fig.update_layout(title=_title(state), height=480, margin={"l": 70, "r": 20, "t": 90, "b": 110},
                      legend={"orientation": "h", "x": 0.4, "y": -0.2})
    return go.FigureWidget(fig)


def update_sinkhorn_figure(fig: go.FigureWidget, state: dict) -> None:
    """Redraw a ``sinkhorn_figure`` in place from a new ``sinkhorn_state``."""
    m, t = state["matrix"], state["iters"]
    with fig.batch_update():
        fig.data[0].z, fig.data[0].text = _gaps(m), _cell_text(m)
        fig.data[1].z = _nan_mask(m)
        fig.data[2].x, fig.data[2].y = state["t"], _gaps(state["row"])
        fig.data[3].x, fig.data[3].y = state["t"], _gaps(state["col"])
        fig.data[4].x, fig.data[4].y = [t, t], _gaps(np.array([state["row"][t], state["col"][t]]))
        fig.layout.title.text = _title(state)


def sinkhorn_widget(base_logits: Tensor, iters: int = 20, scale: float = 1.0, dtype: str = "float32",
                    max_iters: int = 60) -> go.FigureWidget:
    """Sliders for t and the logit scale, a dtype menu; the matrix and error curves update in place."""
    fig = sinkhorn_figure(sinkhorn_state(base_logits, iters, scale, dtype, max_iters))
    t_s = widgets.IntSlider(value=iters, min=0, max=max_iters, description="iterations t", continuous_update=False)
    scale_s = widgets.FloatLogSlider(value=scale, base=10, min=-1, max=1.5, step=0.05, description="logit scale",
                                     readout_format=".3g", continuous_update=False)
    dtype_s = widgets.Dropdown(options=list(DTYPES), value=dtype, description="dtype")

    def update(_=None) -> None:
        update_sinkhorn_figure(fig, sinkhorn_state(base_logits, t_s.value, scale_s.value, dtype_s.value, max_iters))

    for w in (t_s, scale_s, dtype_s):
        w.observe(update, names="value")
    show(widgets.VBox([widgets.HBox([t_s, scale_s, dtype_s]), fig]), fig)
    return fig


def error_curves_figure(curves: Mapping[str, tuple[Tensor, Tensor]], title: str, *,
                        show_rows: bool = False) -> go.Figure:
    """Column error (solid) and optionally row error (dotted) against iteration t, one colour per label.

    Args:
        curves: label → (row, col), each (iters + 1,) as from ``sinkhorn_error_curve`` (reduce any batch first).
    """
    fig = go.Figure()
    for (label, (row, col)), colour in zip(curves.items(), PALETTE * 3, strict=False):
        t = np.arange(len(col))
        fig.add_trace(go.Scatter(x=t, y=_np(col), name=f"{label}: column error", mode="lines",
                                 line={"color": colour}))
        if show_rows:
            fig.add_trace(go.Scatter(x=t, y=_np(row), name=f"{label}: row error", mode="lines",
                                     line={"color": colour, "dash": "dot"}))
    fig.update_layout(title=title, xaxis_title="iteration t", yaxis_type="log", yaxis_exponentformat="power",
                      yaxis_title="error (log scale; 0 drawn at 1e-17)", height=460,
                      margin={"l": 70, "r": 20, "t": 60, "b": 60}, legend={"x": 1.02, "y": 1})
    return fig


def gain_order_figure(profiles: Mapping[str, Mapping[str, Tensor]]) -> go.Figure:
    """Composite backward (left) and forward (right) gains against depth, one colour per label.

    Args:
        profiles: label → ``metrics.gain_profile`` output (``composite_fwd``, ``composite_bwd`` of shape (L,)).
    """
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=("backward gain (max column sum)", "forward gain (max row sum)"))
    for (label, p), colour in zip(profiles.items(), PALETTE * 3, strict=False):
        layers = np.arange(1, len(p["composite_bwd"]) + 1)
        for col, key in ((1, "composite_bwd"), (2, "composite_fwd")):
            fig.add_trace(go.Scatter(x=layers, y=p[key].numpy(), name=label, mode="lines", legendgroup=label,
                                     showlegend=col == 1, line={"color": colour}), 1, col)
    fig.update_xaxes(title_text="depth L (layers multiplied)")
    fig.update_yaxes(title_text="gain of the product H_res(L)···H_res(1)", row=1, col=1)
    fig.update_layout(title="Which gain is exact depends on the last normalisation", height=460,
                      margin={"l": 70, "r": 20, "t": 80, "b": 60}, legend={"x": 1.02, "y": 1})
    return fig


def gradient_error_figure(curve: Mapping[str, Tensor]) -> go.Figure:
    """Relative gradient error against t: unrolled autograd, the implicit formula at M^t, the forward error."""
    t = curve["iters"].numpy()
    fig = go.Figure([
        go.Scatter(x=t, y=_np(curve["unrolled"]), name="unrolled autograd through t steps", mode="lines",
                   line={"color": PALETTE[0]}),
        go.Scatter(x=t, y=_np(curve["implicit"]), name="implicit formula applied at M^t", mode="lines",
                   line={"color": PALETTE[1]}),
        go.Scatter(x=t, y=_np(curve["column_error"]), name="forward: column error of M^t", mode="lines",
                   line={"color": "gray", "dash": "dot"}),
    ])
    fig.update_layout(title="Gradient error vs the exact gradient of the converged projection",
                      xaxis_title="iterations t", yaxis_type="log", yaxis_exponentformat="power",
                      yaxis_title="relative error (log scale)", height=460,
                      margin={"l": 70, "r": 20, "t": 60, "b": 60}, legend={"x": 0.45, "y": 0.98})
    return fig
