"""Lesson 07's figures: where the activation bytes go, memory and time against the group size L_r, the
memory widget, and a schematic timeline of post/res on a high-priority stream.

Memory is shown in KiB per token for fp32 activations (4 bytes per value).
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..memory import forward_saved_bytes, make_stack, mlp_sublayer, sublayer_saved_elements
from ..memory_model import COMPONENTS, continuous_optimum, recompute_peak_elements, saved_breakdown, saved_elements
from ..overlap import SCHEMATIC_ROWS, dualpipe_schematic
from ..recompute import default_group_size
from .display import show

KIB = 1024
FP32 = 4
COLOURS = {"kept": "#1f77b4", "peak": "#d62728", "stored": "#7f7f7f", "residual": "#2ca02c", "paper": "#9467bd",
           "model": "#ff7f0e"}
OPTIMA = (("paper_optimum", "paper's L_r* = √(nL/(n+2))", COLOURS["paper"], "dashdot"),
          ("model_optimum", "this model's optimum √L", COLOURS["model"], "dot"))


def model_curves(depth: int, n: int, C: int, sublayer: int) -> dict[str, object]:
    """The memory model of the recompute policy over L_r = 1 … L, in KiB per token (fp32).

    Returns: ``group_size`` (L,), ``kept`` and ``peak`` (L,), ``residual`` (the n = 1 stack, a
    scalar), and the continuous optima ``paper_optimum`` = sqrt(nL/(n+2)) and ``model_optimum`` = sqrt(L).
    """
    sizes = np.arange(1, depth + 1)
    kib = FP32 / KIB
    kept = [saved_elements("recompute", depth=depth, n=n, C=C, sublayer=sublayer, group_size=int(g)) for g in sizes]
    peak = [recompute_peak_elements(depth=depth, n=n, C=C, sublayer=sublayer, group_size=int(g)) for g in sizes]
    return {"group_size": sizes, "kept": np.array(kept) * kib, "peak": np.array(peak) * kib,
            "residual": saved_elements("residual", depth=depth, n=1, C=C, sublayer=sublayer) * kib,
            "paper_optimum": continuous_optimum(n, depth, n + 2), "model_optimum": continuous_optimum(n, depth, n)}


def per_token_kib(row: dict, key: str) -> float:
    """A byte count of a ``measure_stack`` row as KiB per token."""
    return row[key] / row["tokens"] / KIB


def sweep_points(sweep: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(L_r, value) of the recompute rows of a ``memory.sweep_group_sizes`` result: KiB per token for byte
    keys, milliseconds for "seconds"."""
    rows = [r for r in sweep["rows"] if r["policy"] == "recompute"]
    values = [1e3 * r[key] if key == "seconds" else per_token_kib(r, key) for r in rows]
    return np.array([r["group_size"] for r in rows]), np.array(values)


def sweep_table(sweep: dict) -> str:
    """The sweep as text: kept and peak KiB per token, measured and modelled, their gap, and the time."""
    lines = [f"measured on {sweep['device']}; memory in KiB per token (fp32), time in ms",
             f"{'policy':>9} {'L_r':>4} | {'kept':>7} {'model':>7} | {'peak':>7} {'model':>7} {'gap':>6} | {'time':>7}"]
    for r in sweep["rows"]:
        kept, peak = per_token_kib(r, "saved_bytes"), per_token_kib(r, "peak_bytes")
        model_kept, model_peak = per_token_kib(r, "predicted_saved_bytes"), per_token_kib(r, "predicted_peak_bytes")
        size = "" if r["group_size"] is None else r["group_size"]
        peak_model = "      -      -" if math.isnan(model_peak) else f"{model_peak:7.2f} {peak - model_peak:6.2f}"
        lines.append(f"{r['policy']:>9} {size:>4} | {kept:7.2f} {model_kept:7.2f} | {peak:7.2f} {peak_model} | "
                     f"{1e3 * r['seconds']:7.2f}")
    return "\n".join(lines)


def _row(sweep: dict, policy: str, group_size: int | None = None) -> dict:
    return next(r for r in sweep["rows"] if r["policy"] == policy and r["group_size"] == group_size)


def _title(depth: int, n: int, C: int) -> str:
    return f"Activation memory per token against the group size L_r: L = {depth}, n = {n}, C = {C} (fp32)"


def _vertical(x: float, bottom: float, top: float) -> tuple[list[float], list[float]]:
    return [x, x], [bottom, top]


def _span(curves: dict[str, object], *measured) -> tuple[float, float]:
    """The y range the optimum lines cover: the model curves and any measured values."""
    values = [curves["residual"], *curves["kept"], *curves["peak"]] + [float(v) for m in measured for v in m]
    low, high = min(values), max(values)
    pad = 0.08 * (high - low)
    return low - pad, high + pad


def memory_figure(curves: dict[str, object], title: str) -> go.FigureWidget:
    """Model lines against L_r, empty measured traces (filled by ``update_memory_figure``) and the two optima."""
    x = curves["group_size"]
    bottom, top = _span(curves)
    traces = [
        go.Scatter(x=x, y=curves["kept"], name="model: kept after forward", mode="lines",
                   line={"color": COLOURS["kept"]}),
        go.Scatter(x=x, y=curves["peak"], name="model: + recomputed group in the backward", mode="lines",
                   line={"color": COLOURS["peak"], "dash": "dash"}),
        go.Scatter(x=x, y=curves["residual"] * np.ones(len(x)), name="model: residual stack (n = 1)", mode="lines",
                   line={"color": COLOURS["residual"], "dash": "dot"}),
        go.Scatter(x=[], y=[], name="measured: kept after forward", mode="markers",
                   marker={"color": COLOURS["kept"], "size": 9, "symbol": "circle-open", "line": {"width": 2}}),
        go.Scatter(x=[], y=[], name="measured: peak over forward + backward", mode="markers",
                   marker={"color": COLOURS["peak"], "size": 9, "symbol": "diamond-open", "line": {"width": 2}}),
        go.Scatter(x=[], y=[], name="measured now: kept at this L_r", mode="markers",
                   marker={"color": COLOURS["kept"], "size": 15, "symbol": "star"}),
    ]
    for key, name, colour, dash in OPTIMA:
        vx, vy = _vertical(curves[key], bottom, top)
        traces.append(go.Scatter(x=vx, y=vy, name=f"{name} = {curves[key]:.2f}", mode="lines",
                                 line={"color": colour, "dash": dash, "width": 2}))
    fig = go.FigureWidget(data=traces)
    fig.update_layout(title=title, xaxis_title="group size L_r (layers per recomputed group)",
                      yaxis_title="activation memory (KiB per token)", height=520,
                      margin={"l": 80, "r": 30, "t": 70, "b": 170}, legend={"orientation": "h", "x": 0, "y": -0.2})
    return fig


def update_memory_figure(fig: go.FigureWidget, curves: dict[str, object], title: str, *,
                         measured: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                         live: tuple[int, float] | None = None) -> None:
    """Replace the model lines, the measured points (``measured`` = (L_r, kept, peak), or None to clear)
    and the live point (``live`` = (L_r, KiB per token), or None) in one redraw."""
    x = curves["group_size"]
    mx, kept, peak = measured if measured is not None else ([], [], [])
    bottom, top = _span(curves, kept, peak, [live[1]] if live is not None else [])
    with fig.batch_update():
        for i, y in enumerate((curves["kept"], curves["peak"], curves["residual"] * np.ones(len(x)))):
            fig.data[i].x, fig.data[i].y = x, y
        fig.data[3].x, fig.data[3].y = mx, kept
        fig.data[4].x, fig.data[4].y = mx, peak
        fig.data[5].x, fig.data[5].y = ([live[0]], [live[1]]) if live is not None else ([], [])
        for i, (key, name, _, _) in enumerate(OPTIMA, start=6):
            fig.data[i].x, fig.data[i].y = _vertical(curves[key], bottom, top)
            fig.data[i].name = f"{name} = {curves[key]:.2f}"
        fig.layout.title.text = title


def memory_widget(depth: int, n: int, C: int, *, hidden_ratio: int = 2, group_size: int | None = None,
                  sweep: dict | None = None, tokens: int = 2, max_depth: int = 32) -> widgets.VBox:
    """Sliders for L, n, C and L_r over ``memory_figure``; displays and returns the box (figure last).

    Each update redraws the model and measures, live, the bytes autograd keeps for the recompute
    stack at the chosen L_r (one forward pass on ``tokens`` tokens; the stack is rebuilt only when
    L, n or C change). Where (L, n, C) match ``sweep``, its measured points (kept and peak) are shown.
    """
    sub_cache: dict[int, int] = {}
    stack_cache: dict[str, object] = {}

    def sublayer(c: int) -> int:
        if c not in sub_cache:
            sub_cache[c] = sublayer_saved_elements(mlp_sublayer(c, hidden_ratio * c), c)
        return sub_cache[c]

    def live_kib(L: int, streams: int, c: int, g: int) -> float:
        if stack_cache.get("key") != (L, streams, c):  # rebuild only when the stack changes, not for L_r
            conns, layers = make_stack("recompute", depth=L, n=streams, C=c, hidden=hidden_ratio * c)
            x = torch.randn(tokens, streams, c, requires_grad=True)
            stack_cache.update(key=(L, streams, c), conns=conns, layers=layers, x=x)
        st = stack_cache
        return forward_saved_bytes("recompute", st["conns"], st["layers"], st["x"], g) / tokens / KIB

    size = default_group_size(n, depth) if group_size is None else group_size
    fig = memory_figure(model_curves(depth, n, C, sublayer(C)), _title(depth, n, C))
    depth_w = widgets.IntSlider(value=depth, min=2, max=max(max_depth, depth), description="layers L",
                                continuous_update=False)
    n_w = widgets.Dropdown(options=sorted({2, 3, 4, 6, 8, n}), value=n, description="streams n")
    c_w = widgets.Dropdown(options=sorted({32, 64, 128, 256, C}), value=C, description="width C")
    size_w = widgets.IntSlider(value=size, min=1, max=depth, description="group L_r", continuous_update=False)
    status = widgets.HTML()

    def update(_=None) -> None:
        size_w.max = depth_w.value
        L, streams, c, g = depth_w.value, n_w.value, c_w.value, min(size_w.value, depth_w.value)
        curves = model_curves(L, streams, c, sublayer(c))
        live = (g, live_kib(L, streams, c, g))
        measured = None
        if sweep is not None and (L, streams, c) == (sweep["depth"], sweep["n"], sweep["C"]):
            x, kept = sweep_points(sweep, "saved_bytes")
            measured = (x, kept, sweep_points(sweep, "peak_bytes")[1])
        update_memory_figure(fig, curves, _title(L, streams, c), measured=measured, live=live)
        status.value = (f"L_r = {g}: measured {live[1]:.2f} KiB per token kept after the forward pass, model "
                        f"{curves['kept'][g - 1]:.2f}; the paper's L_r* rounds to {default_group_size(streams, L)}.")

    for w in (depth_w, n_w, c_w, size_w):
        w.observe(update, names="value")
    update()
    box = widgets.VBox([widgets.HBox([depth_w, size_w]), widgets.HBox([n_w, c_w]), status, fig])
    show(box, fig)
    return box


def breakdown_figure(sweep: dict, group_size: int) -> go.Figure:
    """Stacked bars of the model's components for four stacks, with the measured totals on top.

    The stacks: residual (n = 1), n streams with plain autograd, n streams keeping every x_l
    (recompute with L_r = 1) and the recompute policy at ``group_size``; the sweep must hold them.
    """
    L, n, C, sub = sweep["depth"], sweep["n"], sweep["C"], sweep["sublayer"]
    bars = [("residual (n = 1)", "residual", 1, None), ("n streams, plain autograd", "stored", n, None),
            ("n streams, keep every x_l (L_r = 1)", "recompute", n, 1),
            (f"n streams, recompute (L_r = {group_size})", "recompute", n, group_size)]
    names = [b[0] for b in bars]
    parts = [saved_breakdown(policy, depth=L, n=streams, C=C, sublayer=sub, group_size=g)
             for _, policy, streams, g in bars]
    palette = ("#1f77b4", "#aec7e8", "#d62728", "#ff7f0e", "#c7c7c7")
    fig = go.Figure()
    for component, colour in zip(COMPONENTS, palette, strict=True):
        fig.add_trace(go.Bar(x=names, y=[p.get(component, 0) * FP32 / KIB for p in parts], name=f"model: {component}",
                             marker={"color": colour}))
    measured = [per_token_kib(_row(sweep, policy, g), "saved_bytes") for _, policy, _, g in bars]
    fig.add_trace(go.Scatter(x=names, y=measured, mode="markers+text", name="measured total",
                             text=[f"{m:.1f}" for m in measured], textposition="top center",
                             marker={"color": "black", "symbol": "line-ew-open", "size": 40, "line": {"width": 3}}))
    fig.update_layout(barmode="stack", title=f"What autograd keeps after the forward pass: L = {L}, n = {n}, C = {C} "
                                             f"(model bars, measured totals)",
                      yaxis_title="activation memory (KiB per token)", height=480,
                      margin={"l": 80, "r": 30, "t": 70, "b": 60}, legend={"x": 1.01, "y": 1})
    return fig


def sweep_figure(sweep: dict) -> go.Figure:
    """Two panels against L_r: memory (model lines, measured kept and peak) and forward + backward time."""
    L, n, C = sweep["depth"], sweep["n"], sweep["C"]
    curves = model_curves(L, n, C, sweep["sublayer"])
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4])
    x = curves["group_size"]
    flat = np.ones(len(x))
    gx, kept = sweep_points(sweep, "saved_bytes")
    _, peak = sweep_points(sweep, "peak_bytes")
    _, ms = sweep_points(sweep, "seconds")
    memory = [
        go.Scatter(x=x, y=curves["kept"], name="model: kept after forward", mode="lines",
                   line={"color": COLOURS["kept"]}),
        go.Scatter(x=x, y=curves["peak"], name="model: + recomputed group in the backward", mode="lines",
                   line={"color": COLOURS["peak"], "dash": "dash"}),
        go.Scatter(x=gx, y=kept, name="measured: kept after forward", mode="markers",
                   marker={"color": COLOURS["kept"], "size": 9, "symbol": "circle-open", "line": {"width": 2}}),
        go.Scatter(x=gx, y=peak, name="measured: peak over forward + backward", mode="markers",
                   marker={"color": COLOURS["peak"], "size": 9, "symbol": "diamond-open", "line": {"width": 2}}),
        go.Scatter(x=x, y=curves["residual"] * flat, name="model: residual stack (n = 1), kept", mode="lines",
                   line={"color": COLOURS["residual"], "dash": "dot"}),
    ]
    for trace in memory:
        fig.add_trace(trace, row=1, col=1)
    fig.add_trace(go.Scatter(x=gx, y=ms, name="measured: recompute, forward + backward", mode="lines+markers",
                             line={"color": "black"}), row=2, col=1)
    for policy, name, colour in (("stored", "measured: n streams, plain autograd", COLOURS["stored"]),
                                 ("residual", "measured: residual stack (n = 1)", COLOURS["residual"])):
        fig.add_trace(go.Scatter(x=x, y=1e3 * _row(sweep, policy)["seconds"] * flat, name=name, mode="lines",
                                 line={"color": colour, "dash": "dash"}), row=2, col=1)
    for key, name, colour, dash in OPTIMA:
        for r in (1, 2):
            fig.add_vline(x=curves[key], line_color=colour, line_dash=dash, row=r, col=1)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{name} = {curves[key]:.2f}",
                                 line={"color": colour, "dash": dash}))
    fig.update_yaxes(title_text="memory (KiB per token)", row=1, col=1)
    fig.update_yaxes(title_text="time (ms)", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="group size L_r (layers per recomputed group)", row=2, col=1)
    fig.update_layout(title=f"Memory and time against L_r: L = {L}, n = {n}, C = {C}, {sweep['tokens']} tokens; "
                            f"measured on {sweep['device']}", height=640,
                      margin={"l": 80, "r": 30, "t": 70, "b": 190}, legend={"orientation": "h", "x": 0, "y": -0.12})
    return fig


def timeline_figure() -> go.Figure:
    """The schematic of ``overlap.dualpipe_schematic``: without and with the high-priority stream."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
                        subplot_titles=["post/res on the compute stream", "post/res on a high-priority stream"])
    colours = {"mlp": "#1f77b4", "attention": "#aec7e8", "post_res": "#d62728", "comm": "#2ca02c"}
    for r, high in enumerate((False, True), start=1):
        segments = dualpipe_schematic(high)
        for s in segments:
            short = s.kind == "post_res"  # too narrow for its label: write it beside the bar
            fig.add_trace(go.Bar(y=[s.row], x=[s.end - s.start], base=[s.start], orientation="h", text=[s.label],
                                 textposition="outside" if short else "inside", insidetextanchor="middle",
                                 textangle=0, cliponaxis=False, name=s.label,
                                 marker={"color": colours[s.kind]}, showlegend=False,
                                 hovertemplate=f"{s.label}<extra></extra>"), row=r, col=1)
        fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(SCHEMATIC_ROWS)), row=r, col=1)
        arrival = max(s.end for s in segments if s.kind == "comm")
        fig.add_vline(x=arrival, line_dash="dash", line_color="#555", row=r, col=1)
    fig.update_xaxes(title_text="time (arbitrary units: a schematic, not a measurement)", row=2, col=1)
    fig.update_layout(title="DualPipe with mHC: where F_post,res runs decides when the next stage gets A's data "
                            "(schematic; dashed: arrival)", barmode="overlay", height=480,
                      margin={"l": 150, "r": 30, "t": 90, "b": 60})
    return fig
