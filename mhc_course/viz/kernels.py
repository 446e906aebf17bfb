"""Lesson 06's figures: the roofline, the committed GPU benchmark, and a bytes-per-token widget.

``roofline_figure`` draws each machine's roofs (bandwidth, and compute where measured) and
where the connection's schedules sit on them. ``results_figure`` plots the committed benchmark
(time and share of copy bandwidth per implementation and width). ``traffic_widget`` lets the
learner choose n, C and the dtype and shows bytes per token and the time they need at the
measured bandwidth, next to the measured times where that configuration was benchmarked.
"""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..bench_results import EAGER, OURS, RESIDUAL, BenchResults
from ..io_model import (
    attainable_flops,
    floor_ms,
    fused_forward_backward_traffic,
    fused_forward_traffic,
    naive_hc_traffic,
    residual_traffic,
)
from .display import show

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
ELEMENT_BYTES = {"bfloat16": 2, "float32": 4}
# (category, traffic function, name prefix of the benchmark row, timing key) for the widget's bars
SCHEDULES = (
    ("plain residual<br>fwd", lambda n, C: residual_traffic(C), RESIDUAL, "fwd_ms"),
    ("unfused (naive HC)<br>fwd", naive_hc_traffic, EAGER, "fwd_ms"),
    ("fused<br>fwd", fused_forward_traffic, OURS, "fwd_ms"),
    ("fused<br>fwd+bwd", fused_forward_backward_traffic, OURS, "fwd_bwd_ms"),
)


def roofline_figure(roofs: list[dict], points: list[dict], title: str = "Roofline") -> go.Figure:
    """Attainable FLOP/s against arithmetic intensity, log-log.

    roofs: ``{"label", "bandwidth_gbs", "peak_tflops" (or None: bandwidth roof only)}`` each;
    points: ``{"label", "intensity"}`` each, drawn on the first roof.
    """
    if not roofs:
        raise ValueError("roofs must hold at least one machine")
    lo = min([0.05] + [p["intensity"] / 3 for p in points])
    hi = max([1000.0] + [p["intensity"] * 3 for p in points])
    ai = np.logspace(np.log10(lo), np.log10(hi), 200)
    fig = go.Figure()
    for i, roof in enumerate(roofs):
        y = [attainable_flops(a, roof["bandwidth_gbs"], roof.get("peak_tflops")) / 1e12 for a in ai]
        fig.add_trace(go.Scatter(x=ai, y=y, mode="lines", name=roof["label"],
                                 line={"color": PALETTE[i % len(PALETTE)], "width": 2.5 if i == 0 else 1.5,
                                       "dash": "solid" if i == 0 else "dash"}))
    first = roofs[0]
    for j, p in enumerate(points):
        y = attainable_flops(p["intensity"], first["bandwidth_gbs"], first.get("peak_tflops")) / 1e12
        fig.add_trace(go.Scatter(x=[p["intensity"]], y=[y], mode="markers", name=f"{p['label']} ({p['intensity']:.2g})",
                                 marker={"size": 12, "symbol": "diamond", "color": PALETTE[(j + 3) % len(PALETTE)],
                                         "line": {"width": 1, "color": "black"}}))
    fig.update_layout(title=title, height=480, margin={"l": 80, "r": 20, "t": 60, "b": 60},
                      xaxis={"type": "log", "title": "arithmetic intensity (FLOP per byte, log scale)"},
                      yaxis={"type": "log", "title": "attainable TFLOP/s (log scale)"},
                      legend={"x": 1.02, "y": 1, "xanchor": "left"})
    return fig


def results_figure(bench: BenchResults) -> go.Figure:
    """Two panels from the committed benchmark: time (log scale) and % of copy bandwidth, per
    implementation, for forward and forward+backward at each benchmarked width."""
    cats = [(C, key) for C in bench.widths() for key in ("fwd", "fwd_bwd")]
    labels = [f"C = {C}<br>{'forward' if key == 'fwd' else 'fwd+bwd'}" for C, key in cats]
    names = list(dict.fromkeys(r["row"] for r in bench.rows if "fwd_ms" in r))
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("time (ms, log scale, lower is better)",
                                        "% of copy bandwidth (minimal bytes / time)"))
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        rows = {r["C"]: r for r in bench.rows if r["row"] == name and "fwd_ms" in r}
        ms = [rows[C][f"{key}_ms"] if C in rows else None for C, key in cats]
        pct = [rows[C].get(f"{key}_pct_copy") if C in rows else None for C, key in cats]
        fig.add_trace(go.Bar(x=labels, y=ms, name=name, marker_color=colour, legendgroup=name), 1, 1)
        if any(p is not None for p in pct):
            fig.add_trace(go.Bar(x=labels, y=pct, name=name, marker_color=colour, legendgroup=name,
                                 showlegend=False), 1, 2)
    fig.add_hline(y=100, line_dash="dash", line_color="black", row=1, col=2,
                  annotation_text="copy bandwidth", annotation_position="top left")
    fig.update_yaxes(type="log", title_text="ms", row=1, col=1)
    fig.update_yaxes(title_text="% of copy bandwidth", row=1, col=2)
    tokens = "/".join(str(t) for t in sorted({r["T"] for r in bench.rows}))
    where = f"{bench.meta['device']}, {bench.meta['date']}"
    fig.update_layout(title=f"Committed benchmark, T = {tokens} tokens, n = {bench.rows[0]['n']}: {where}",
                      barmode="group", height=500,
                      margin={"l": 70, "r": 20, "t": 80, "b": 120},
                      legend={"orientation": "h", "x": 0, "y": -0.22})
    return fig


def traffic_state(bench: BenchResults, n: int, C: int, dtype: str) -> dict:
    """What the widget draws: per schedule, bytes per token, the time at the benchmark's copy bandwidth
    for its T tokens, and the measured time where (n, C, dtype) was benchmarked (else None)."""
    if dtype not in ELEMENT_BYTES:
        raise ValueError(f"dtype must be one of {list(ELEMENT_BYTES)}, got {dtype!r}")
    eb = ELEMENT_BYTES[dtype]
    benchmarked = n == bench.rows[0]["n"] and C in bench.widths() and dtype == bench.meta.get("dtype", "bfloat16")
    T = next(r["T"] for r in bench.rows if r["C"] == C) if benchmarked else bench.rows[0]["T"]
    names, kib, predicted, measured, rows = [], [], [], [], []
    for label, traffic, prefix, key in SCHEDULES:
        nbytes = traffic(n, C).bytes(eb)
        names.append(label)
        kib.append(nbytes / 1024)
        predicted.append(floor_ms(nbytes, T, bench.bandwidth_gbs))
        row = bench.find(C, prefix) if benchmarked else None
        measured.append(row[key] if row else None)
        rows.append(row["row"] if row else "")
    return {"schedules": names, "kib": kib, "predicted_ms": predicted, "measured_ms": measured, "measured_rows": rows,
            "T": T, "benchmarked": benchmarked, "n": n, "C": C, "dtype": dtype}


def _traffic_title(s: dict, bench: BenchResults) -> str:
    where = f"measured on {bench.meta['device']}" if s["benchmarked"] else "not benchmarked: predictions only"
    return f"n = {s['n']}, C = {s['C']}, {s['dtype']}, T = {s['T']} tokens ({where})"


def traffic_figure(state: dict, bench: BenchResults) -> go.FigureWidget:
    """Left: KiB per token per schedule. Right: predicted time at the copy bandwidth and measured time."""
    fig = go.FigureWidget(make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                                        subplot_titles=("bytes moved per token (KiB)",
                                                        f"time at {bench.bandwidth_gbs:.0f} GB/s vs measured (ms)")))
    fig.add_trace(go.Bar(x=state["schedules"], y=state["kib"], name="bytes per token", marker_color=PALETTE[0],
                         text=[f"{v:.1f}" for v in state["kib"]], textposition="outside"), 1, 1)
    fig.add_trace(go.Bar(x=state["schedules"], y=state["predicted_ms"], name="predicted: bytes / copy bandwidth",
                         marker_color=PALETTE[2]), 1, 2)
    fig.add_trace(go.Bar(x=state["schedules"], y=state["measured_ms"], name=f"measured ({bench.meta['device']})",
                         marker_color=PALETTE[1], text=state["measured_rows"], textposition="inside",
                         insidetextanchor="start", textangle=-90), 1, 2)
    fig.update_yaxes(title_text="KiB per token", row=1, col=1)
    fig.update_yaxes(title_text="ms (log scale)", type="log", row=1, col=2)
    fig.update_layout(title=_traffic_title(state, bench), barmode="group", height=480,
                      margin={"l": 70, "r": 20, "t": 80, "b": 110}, legend={"orientation": "h", "x": 0, "y": -0.2})
    return fig


def update_traffic_figure(fig: go.FigureWidget, state: dict, bench: BenchResults) -> None:
    with fig.batch_update():
        fig.data[0].x, fig.data[0].y = state["schedules"], state["kib"]
        fig.data[0].text = [f"{v:.1f}" for v in state["kib"]]
        fig.data[1].x, fig.data[1].y = state["schedules"], state["predicted_ms"]
        fig.data[2].x, fig.data[2].y = state["schedules"], state["measured_ms"]
        fig.data[2].text = state["measured_rows"]
        fig.layout.title.text = _traffic_title(state, bench)


def traffic_widget(bench: BenchResults, n: int = 4, C: int | None = None, dtype: str = "bfloat16") -> go.FigureWidget:
    """Sliders for n and C, a dtype menu; bars of bytes per token and predicted vs measured time."""
    widths = sorted(set(bench.widths()) | {256, 512, 1024, 2048, 4096, 8192, 16384})
    C = C if C is not None else bench.widths()[0]
    fig = traffic_figure(traffic_state(bench, n, C, dtype), bench)
    n_slider = widgets.IntSlider(value=n, min=1, max=16, description="streams n", continuous_update=False)
    c_slider = widgets.SelectionSlider(options=widths, value=C, description="width C", continuous_update=False)
    dtype_menu = widgets.Dropdown(options=list(ELEMENT_BYTES), value=dtype, description="dtype")

    def update(_=None):
        update_traffic_figure(fig, traffic_state(bench, n_slider.value, c_slider.value, dtype_menu.value), bench)

    for w in (n_slider, c_slider, dtype_menu):
        w.observe(update, names="value")
    show(widgets.VBox([widgets.HBox([n_slider, c_slider, dtype_menu]), fig]), fig)
    return fig
