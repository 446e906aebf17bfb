"""Lesson 08's figures: training curves, gains over training and depth, the n ablation, step times.

All figures take runs loaded by ``mhc_course.training_logs`` (``{name: TrainingRun}``) and are
pure functions of them. Two widgets: ``metric_widget`` (a log field over training, for the runs
you tick) and ``layer_gain_widget`` (each connection's own H_res gain and the composite up to
it, at the logged step you choose).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..training_logs import ABLATION_N, TrainingRun, layer_values, overhead, series, summary
from .display import show

COLOURS = {"residual": "#2ca02c", "hc": "#d62728", "mhc": "#1f77b4", "mhc-n1": "#8c564b", "mhc-n2": "#17becf",
           "mhc-n8": "#9467bd"}
FALLBACK = ("#ff7f0e", "#7f7f7f", "#bcbd22", "#e377c2")
METRICS = {
    "loss": ("training loss", "cross-entropy (nats per byte)", False),
    "val_loss": ("validation loss", "cross-entropy (nats per byte)", False),
    "grad_norm": ("gradient norm", "global gradient norm (log scale)", True),
    "amax_fwd": ("composite forward gain", "max row sum of the product of all H_res (log scale)", True),
    "amax_bwd": ("composite backward gain", "max column sum of the product of all H_res (log scale)", True),
}
DIRECTIONS = {"forward (row sums)": "fwd", "backward (column sums)": "bwd"}
HEIGHT = 460
LEGEND_BELOW = {"orientation": "h", "x": 0, "y": -0.2}
MARGIN = {"l": 80, "r": 20, "t": 70, "b": 120}


class Dashboard(NamedTuple):
    """A displayed widget: its figure and its controls (by name), e.g. for tests that move them."""

    figure: go.FigureWidget
    controls: dict[str, widgets.Widget]


def colour(name: str, index: int = 0) -> str:
    """The colour of a run by its folder name (residual green, HC red, mHC n = 4 blue, …)."""
    return COLOURS.get(name, FALLBACK[index % len(FALLBACK)])


def _check_runs(runs: Mapping[str, TrainingRun]) -> None:
    if not runs:
        raise ValueError("runs must hold at least one run, got none")


def _where(runs: Iterable[TrainingRun]) -> str:
    """The device(s) the runs trained on, from their configs, for a figure's title."""
    return ", ".join(sorted({run.config.get("device_name") or run.config["device"] for run in runs}))


def training_curves_figure(runs: Mapping[str, TrainingRun]) -> go.Figure:
    """Left: training loss (solid) and validation loss (dashed); right: gradient norm (log scale)."""
    _check_runs(runs)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12,
                        subplot_titles=("loss: training (solid), validation (dashed)", "gradient norm"))
    for i, (name, run) in enumerate(runs.items()):
        c = colour(name, i)
        steps, loss = series(run, "loss")
        _, val = series(run, "val_loss")
        _, grad = series(run, "grad_norm")
        fig.add_trace(go.Scatter(x=steps, y=loss, name=f"{run.label} training", legendgroup=name,
                                 line={"color": c}), 1, 1)
        fig.add_trace(go.Scatter(x=steps, y=val, name=f"{run.label} validation", legendgroup=name,
                                 line={"color": c, "dash": "dash"}), 1, 1)
        fig.add_trace(go.Scatter(x=steps, y=grad, name=f"{run.label} grad norm", legendgroup=name,
                                 line={"color": c}, showlegend=False), 1, 2)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(title_text="cross-entropy (nats per byte)", row=1, col=1)
    fig.update_yaxes(title_text="gradient norm (log scale)", type="log", row=1, col=2)
    fig.update_layout(title=f"Training curves of the committed runs on {_where(runs.values())}", height=HEIGHT,
                      margin=MARGIN, legend=LEGEND_BELOW)
    return fig


def gain_curves_figure(runs: Mapping[str, TrainingRun]) -> go.Figure:
    """Composite forward (left) and backward (right) gain of the whole identity path over training, log scale."""
    _check_runs(runs)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.12, shared_yaxes=True,
                        subplot_titles=("forward: max row sum of H_res(L)···H_res(1)",
                                        "backward: max column sum of the same product"))
    for i, (name, run) in enumerate(runs.items()):
        for col, field in ((1, "amax_fwd"), (2, "amax_bwd")):
            steps, values = series(run, field)
            fig.add_trace(go.Scatter(x=steps, y=values, name=run.label, legendgroup=name, showlegend=col == 1,
                                     mode="lines+markers", marker={"size": 5}, line={"color": colour(name, i)}),
                          1, col)
    fig.update_xaxes(title_text="optimizer step")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="composite Amax gain (log scale)", row=1, col=1)
    depths = sorted({2 * int(run.config["model"]["depth"]) for run in runs.values()})
    fig.update_layout(title=f"Composite gain of the identity path ({'/'.join(map(str, depths))} connections) "
                      "during training",
                      height=HEIGHT, margin=MARGIN, legend=LEGEND_BELOW)
    return fig


def _metric_title(metric: str) -> str:
    return f"{METRICS[metric][0].capitalize()} over training"


def metric_figure(runs: Mapping[str, TrainingRun], metric: str = "val_loss",
                  selected: Sequence[str] | None = None) -> go.FigureWidget:
    """One trace per run (hidden unless in ``selected``, default all) of a scalar log field over steps."""
    _check_runs(runs)
    fig = go.FigureWidget(layout=go.Layout(height=HEIGHT, margin=MARGIN, legend=LEGEND_BELOW,
                                           xaxis_title="optimizer step"))
    for i, (name, run) in enumerate(runs.items()):
        fig.add_trace(go.Scatter(x=[], y=[], name=run.label, mode="lines+markers", marker={"size": 5},
                                 line={"color": colour(name, i)}))
    update_metric_figure(fig, runs, metric, list(runs) if selected is None else selected)
    return fig


def update_metric_figure(fig: go.FigureWidget, runs: Mapping[str, TrainingRun], metric: str,
                         selected: Sequence[str]) -> None:
    """Redraw ``metric`` for every run, showing only the ``selected`` ones."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {tuple(METRICS)}, got {metric!r}")
    unknown = sorted(set(selected) - set(runs))
    if unknown:
        raise ValueError(f"selected names runs that are not loaded: {unknown} (loaded: {sorted(runs)})")
    _, axis, log = METRICS[metric]
    with fig.batch_update():
        for trace, (name, run) in zip(fig.data, runs.items(), strict=True):
            steps, values = series(run, metric)
            trace.x, trace.y, trace.visible = steps, values, name in selected
        fig.layout.yaxis.title.text = axis
        fig.layout.yaxis.type = "log" if log else "linear"
        fig.layout.title.text = _metric_title(metric)


def metric_widget(runs: Mapping[str, TrainingRun], metric: str = "val_loss",
                  selected: Sequence[str] | None = None) -> Dashboard:
    """A metric menu and one tick box per run over ``metric_figure``; displays it and returns the dashboard."""
    selected = list(runs) if selected is None else list(selected)
    fig = metric_figure(runs, metric, selected)
    menu = widgets.Dropdown(options=[(v[0], k) for k, v in METRICS.items()], value=metric, description="metric")
    boxes = {name: widgets.Checkbox(value=name in selected, description=run.label, indent=False,
                                    layout=widgets.Layout(width="130px")) for name, run in runs.items()}

    def update(_=None) -> None:
        update_metric_figure(fig, runs, menu.value, [n for n, b in boxes.items() if b.value])

    menu.observe(update, names="value")
    for b in boxes.values():
        b.observe(update, names="value")
    show(widgets.VBox([menu, widgets.HBox(list(boxes.values())), fig]), fig)
    return Dashboard(fig, {"metric": menu, **boxes})


def _layer_hover(count: int) -> list[str]:
    return [f"block {i // 2}, {'attention' if i % 2 == 0 else 'MLP'}" for i in range(count)]


def _layer_title(step: int, direction: str) -> str:
    word = "forward (row sums)" if direction == "fwd" else "backward (column sums)"
    return f"Gains by depth at step {step}, {word}"


def layer_gain_figure(runs: Mapping[str, TrainingRun], step: int, direction: str = "fwd") -> go.FigureWidget:
    """Per connection: its own H_res gain (dotted, open markers) and the composite up to it (solid), log scale."""
    _check_runs(runs)
    fig = go.FigureWidget(layout=go.Layout(
        height=HEIGHT, margin=MARGIN, legend=LEGEND_BELOW, xaxis_title="connection (layer order: attention, MLP, …)",
        yaxis={"title": "Amax gain (log scale)", "type": "log", "exponentformat": "power"}))
    for i, (name, run) in enumerate(runs.items()):
        c = colour(name, i)
        fig.add_trace(go.Scatter(x=[], y=[], name=f"{run.label}: own H_res", mode="lines+markers",
                                 line={"color": c, "dash": "dot"}, marker={"symbol": "circle-open", "size": 7}))
        fig.add_trace(go.Scatter(x=[], y=[], name=f"{run.label}: composite up to it", mode="lines",
                                 line={"color": c, "width": 2.5}))
    update_layer_gain_figure(fig, runs, step, direction)
    return fig


def update_layer_gain_figure(fig: go.FigureWidget, runs: Mapping[str, TrainingRun], step: int,
                             direction: str) -> None:
    """Redraw at ``step`` (runs that did not log it are hidden) for ``direction`` "fwd" or "bwd"."""
    if direction not in ("fwd", "bwd"):
        raise ValueError(f"direction must be 'fwd' or 'bwd', got {direction!r}")
    with fig.batch_update():
        for k, (_, run) in enumerate(runs.items()):
            own_trace, comp_trace = fig.data[2 * k], fig.data[2 * k + 1]
            if step not in run.logged_steps():
                own_trace.visible = comp_trace.visible = False
                continue
            own = layer_values(run, f"layer_amax_{direction}", step)
            comp = layer_values(run, f"composite_amax_{direction}", step)
            x = np.arange(1, own.size + 1)
            hover = _layer_hover(own.size)
            own_trace.x, own_trace.y, own_trace.text = x, own, hover
            comp_trace.x, comp_trace.y, comp_trace.text = x, comp, hover
            own_trace.visible = comp_trace.visible = True
        fig.layout.title.text = _layer_title(step, direction)


def layer_gain_widget(runs: Mapping[str, TrainingRun], step: int | None = None, direction: str = "fwd") -> Dashboard:
    """A slider over the logged steps and a forward/backward switch over ``layer_gain_figure``."""
    _check_runs(runs)
    steps = sorted({s for run in runs.values() for s in run.logged_steps()})
    step = steps[-1] if step is None else step
    fig = layer_gain_figure(runs, step, direction)
    slider = widgets.SelectionSlider(options=steps, value=step, description="step", continuous_update=False,
                                     layout=widgets.Layout(width="520px"))
    toggle = widgets.ToggleButtons(options=list(DIRECTIONS.items()), value=direction)

    def update(_=None) -> None:
        update_layer_gain_figure(fig, runs, slider.value, toggle.value)

    slider.observe(update, names="value")
    toggle.observe(update, names="value")
    show(widgets.VBox([widgets.HBox([slider, toggle]), fig]), fig)
    return Dashboard(fig, {"step": slider, "direction": toggle})


def ablation_figure(ablation: Mapping[int, TrainingRun], references: Mapping[str, TrainingRun],
                    missing: Sequence[int] = (), expected: Sequence[int] = ABLATION_N) -> go.Figure:
    """mHC over n: final validation loss (left) and peak composite gain (right, log scale), with the
    ``references`` runs (e.g. residual and HC n = 4) as horizontal lines across the ``expected`` n."""
    if not ablation:
        raise ValueError("ablation must hold at least one run, got none")
    ns = sorted(ablation)
    span = [min([*ns, *expected]), max([*ns, *expected])]
    sums = {n: summary(ablation[n]) for n in ns}
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14,
                        subplot_titles=("final validation loss", "peak composite gain (over steps and depth)"))
    fig.add_trace(go.Scatter(x=ns, y=[sums[n]["final_val_loss"] for n in ns], name="mHC: final validation loss",
                             mode="lines+markers", marker={"size": 10}, line={"color": COLOURS["mhc"]}), 1, 1)
    for field, dash, symbol in (("peak_amax_fwd", "solid", "circle"), ("peak_amax_bwd", "dash", "diamond")):
        word = "forward" if field.endswith("fwd") else "backward"
        fig.add_trace(go.Scatter(x=ns, y=[sums[n][field] for n in ns], name=f"mHC: peak {word} gain",
                                 mode="lines+markers", marker={"size": 10, "symbol": symbol},
                                 line={"color": COLOURS["mhc"], "dash": dash}), 1, 2)
    for i, (name, run) in enumerate(references.items()):
        s = summary(run)
        c = colour(name, i)
        for col, value, what in ((1, s["final_val_loss"], "final validation loss"),
                                 (2, max(s["peak_amax_fwd"], s["peak_amax_bwd"]), "peak gain")):
            fig.add_trace(go.Scatter(x=span, y=[value, value], mode="lines", name=f"{run.label}: {what}",
                                     line={"color": c, "dash": "dot", "width": 2}), 1, col)
    ticks = sorted({*ns, *expected})
    fig.update_xaxes(title_text="streams n (log scale)", type="log", tickvals=ticks, ticktext=[str(n) for n in ticks],
                     range=[np.log10(span[0]) - 0.1, np.log10(span[1]) + 0.1])
    fig.update_yaxes(title_text="cross-entropy (nats per byte)", row=1, col=1)
    fig.update_yaxes(title_text="Amax gain (log scale)", type="log", exponentformat="power", row=1, col=2)
    title = f"mHC with n streams, runs on {_where([*ablation.values(), *references.values()])}"
    if missing:
        title += f" (missing runs: n = {', '.join(str(n) for n in missing)})"
    fig.update_layout(title=title, height=HEIGHT, margin=MARGIN, legend=LEGEND_BELOW)
    return fig


def step_time_figure(measured: Mapping[str, float], predicted: Mapping[str, float], baseline: str = "residual"
                     ) -> go.Figure:
    """Horizontal bars of seconds per step: ``measured`` (solid) and ``predicted`` (hatched), each labelled
    with its overhead over ``measured[baseline]``."""
    if baseline not in measured:
        raise ValueError(f"measured must include the baseline {baseline!r}, got {sorted(measured)}")
    base = measured[baseline]
    fig = go.Figure()
    styles = (("measured", measured, "#1f77b4", ""), ("predicted", predicted, "#ff7f0e", "/"))
    for kind, part, colour_, pattern in styles:
        if not part:
            continue
        text = [f"{v:.3f} s" + ("" if k == baseline else f"  ({overhead(v, base):+.0%})") for k, v in part.items()]
        fig.add_trace(go.Bar(y=list(part), x=list(part.values()), orientation="h", name=kind,
                             text=text, textposition="outside", cliponaxis=False,
                             marker={"color": colour_, "pattern": {"shape": pattern}}))
    top = max(*measured.values(), *predicted.values())
    fig.update_layout(title="Seconds per optimizer step, gpu profile on one H100 (overhead over residual)",
                      height=HEIGHT, margin={"l": 250, "r": 40, "t": 70, "b": 110}, legend=LEGEND_BELOW,
                      xaxis={"title": "seconds per optimizer step", "range": [0, top * 1.35]},
                      yaxis={"autorange": "reversed"})
    return fig
