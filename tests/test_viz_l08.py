"""Lesson 08's figures and widgets, on the committed runs and on small fake ones."""

import plotly.graph_objects as go
import pytest

from mhc_course.training_logs import COMPARISON, layer_values, load_ablation, load_runs, series, summary
from mhc_course.viz.training import (
    METRICS,
    ablation_figure,
    colour,
    gain_curves_figure,
    layer_gain_figure,
    layer_gain_widget,
    metric_figure,
    metric_widget,
    step_time_figure,
    training_curves_figure,
    update_layer_gain_figure,
    update_metric_figure,
)

from .test_training_logs import fake_records, fake_run


@pytest.fixture(scope="module")
def runs():
    found, missing = load_runs(COMPARISON)
    assert not missing
    return found


def test_training_and_gain_curves(runs):
    fig = training_curves_figure(runs)
    assert len(fig.data) == 3 * len(runs) and fig.layout.height >= 420
    assert fig.layout.title.text.endswith("on cpu")  # the committed cpu runs
    assert fig.layout.yaxis2.type == "log" and "nats" in fig.layout.yaxis.title.text
    hc_val = next(t for t in fig.data if t.name == "hc n=4 validation")
    assert list(hc_val.y) == list(series(runs["hc"], "val_loss")[1])
    fig = gain_curves_figure(runs)
    assert len(fig.data) == 2 * len(runs) and fig.layout.yaxis.type == "log"
    assert "24 connections" in fig.layout.title.text
    assert fig.data[2].line.color == colour("hc") and max(fig.data[2].y) > 100


def test_metric_figure_updates(runs):
    fig = metric_figure(runs, "loss", selected=["residual"])
    assert isinstance(fig, go.FigureWidget) and [t.visible for t in fig.data] == [True, False, False]
    assert fig.layout.yaxis.type == "linear"
    update_metric_figure(fig, runs, "amax_bwd", ["hc", "mhc"])
    assert fig.layout.yaxis.type == "log" and [t.visible for t in fig.data] == [False, True, True]
    assert list(fig.data[1].y) == list(series(runs["hc"], "amax_bwd")[1])
    assert fig.layout.title.text.lower().startswith(METRICS["amax_bwd"][0])
    with pytest.raises(ValueError, match="metric must be one of"):
        update_metric_figure(fig, runs, "layer_amax_fwd", ["hc"])
    with pytest.raises(ValueError, match="not loaded"):
        update_metric_figure(fig, runs, "loss", ["mhc-n3"])


def test_metric_widget_controls(runs):
    dash = metric_widget(runs, "val_loss", selected=["hc"])
    dash.controls["metric"].value = "grad_norm"
    assert dash.figure.layout.yaxis.type == "log"
    dash.controls["residual"].value = True
    assert dash.figure.data[0].visible is True and dash.figure.data[2].visible is False


def test_layer_gain_figure_and_widget(runs):
    fig = layer_gain_figure(runs, 600, "fwd")
    assert len(fig.data) == 2 * len(runs) and fig.layout.yaxis.type == "log"
    assert list(fig.data[3].y) == list(layer_values(runs["hc"], "composite_amax_fwd", 600))
    update_layer_gain_figure(fig, runs, 100, "bwd")
    assert list(fig.data[2].y) == list(layer_values(runs["hc"], "layer_amax_bwd", 100))
    assert "step 100" in fig.layout.title.text and "backward" in fig.layout.title.text
    with pytest.raises(ValueError, match="direction"):
        update_layer_gain_figure(fig, runs, 100, "up")
    dash = layer_gain_widget(runs)
    assert dash.controls["step"].value == 600
    dash.controls["step"].value = 50
    dash.controls["direction"].value = "bwd"
    assert list(dash.figure.data[5].y) == list(layer_values(runs["mhc"], "composite_amax_bwd", 50))


def test_layer_gains_hide_runs_without_the_step(tmp_path):
    fake_run(tmp_path / "short", fake_records([10], 4, seed=4))
    fake_run(tmp_path / "long", fake_records([10, 20], 4, seed=5))
    found, _ = load_runs(["short", "long"], root=tmp_path)
    fig = layer_gain_figure(found, 20)
    assert fig.data[0].visible is False and fig.data[2].visible is True


def test_ablation_figure(runs):
    ablation, missing = load_ablation()
    assert 4 in ablation
    fig = ablation_figure(ablation, {"residual": runs["residual"], "hc": runs["hc"]}, missing)
    ns = sorted(ablation)
    assert list(fig.data[0].x) == ns
    assert list(fig.data[0].y) == [summary(ablation[n])["final_val_loss"] for n in ns]
    assert fig.layout.yaxis2.type == "log" and fig.layout.xaxis.type == "log"
    hc_line = next(t for t in fig.data if t.name == "hc n=4: peak gain")
    assert list(hc_line.x) == [1, 8] and hc_line.y[0] > 100
    assert ("missing" in fig.layout.title.text) == bool(missing)
    fig = ablation_figure({4: ablation[4]}, {}, [1, 2, 8])
    assert "n = 1, 2, 8" in fig.layout.title.text
    with pytest.raises(ValueError, match="at least one run"):
        ablation_figure({}, {})


def test_step_time_figure():
    fig = step_time_figure({"residual": 0.05, "mhc": 0.1}, {"residual + floor": 0.06})
    measured, predicted = fig.data
    assert list(measured.y) == ["residual", "mhc"] and "+100%" in measured.text[1]
    assert "+20%" in predicted.text[0] and predicted.marker.pattern.shape == "/"
    assert "seconds" in fig.layout.xaxis.title.text
    with pytest.raises(ValueError, match="baseline"):
        step_time_figure({"mhc": 0.1}, {})
