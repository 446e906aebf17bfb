"""Lesson 07's figures and widget: the model lines, measured points, live measurement and the schematic."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from mhc_course.memory import sweep_group_sizes
from mhc_course.memory_model import COMPONENTS, saved_elements
from mhc_course.viz.memory import (
    breakdown_figure,
    memory_figure,
    memory_widget,
    model_curves,
    per_token_kib,
    sweep_figure,
    sweep_points,
    timeline_figure,
    update_memory_figure,
)

KIB_FP32 = 4 / 1024


@pytest.fixture(scope="module")
def sweep():
    return sweep_group_sizes(depth=4, n=4, C=8, hidden=16, tokens=4, group_sizes=[1, 2, 4], repeats=1)


def test_model_curves():
    c = model_curves(12, 4, 64, sublayer=100)
    np.testing.assert_array_equal(c["group_size"], np.arange(1, 13))
    assert c["kept"][0] == pytest.approx(saved_elements("recompute", depth=12, n=4, C=64, sublayer=100,
                                                        group_size=1) * KIB_FP32)
    assert np.all(np.diff(c["kept"]) <= 0)  # fewer kept group inputs as groups grow
    assert c["peak"][-1] > c["peak"].min()  # one group of 12 holds 11 recomputed streams at once
    assert c["kept"][0] > c["residual"]
    assert c["paper_optimum"] == pytest.approx(math.sqrt(8)) and c["model_optimum"] == pytest.approx(math.sqrt(12))


def test_memory_figure_and_update():
    fig = memory_figure(model_curves(6, 4, 16, 50), "t")
    assert isinstance(fig, go.FigureWidget) and len(fig.data) == 8
    assert "KiB per token" in fig.layout.yaxis.title.text and "L_r" in fig.layout.xaxis.title.text
    assert fig.layout.height >= 420 and fig.layout.title.text == "t"
    assert len(fig.data[3].x) == 0 and len(fig.data[5].x) == 0
    curves = model_curves(10, 2, 32, 40)
    update_memory_figure(fig, curves, "u", measured=(np.array([1, 2]), np.array([3.0, 2.0]), np.array([5.0, 4.0])),
                         live=(3, 2.5))
    assert fig.layout.title.text == "u" and len(fig.data[0].x) == 10
    assert list(fig.data[4].y) == [5.0, 4.0] and list(fig.data[5].x) == [3]
    assert list(fig.data[6].x) == [curves["paper_optimum"]] * 2 and "√(nL/(n+2))" in fig.data[6].name
    assert fig.data[6].y[0] < curves["residual"] and fig.data[6].y[1] > curves["peak"].max()
    update_memory_figure(fig, curves, "v")
    assert len(fig.data[3].x) == 0 and len(fig.data[5].x) == 0


def test_sweep_figure(sweep):
    x, kept = sweep_points(sweep, "saved_bytes")
    assert list(x) == [1, 2, 4]
    rows = [r for r in sweep["rows"] if r["policy"] == "recompute"]
    np.testing.assert_allclose(kept, [per_token_kib(r, "saved_bytes") for r in rows])
    np.testing.assert_allclose(sweep_points(sweep, "seconds")[1], [1e3 * r["seconds"] for r in rows])
    fig = sweep_figure(sweep)
    by_name = {t.name: t for t in fig.data}
    np.testing.assert_allclose(by_name["measured: kept after forward"].y,
                               [r["predicted_saved_bytes"] / 4 / 1024 for r in rows])
    assert "measured on CPU" in fig.layout.title.text
    assert "time (ms)" in fig.layout.yaxis2.title.text and "KiB per token" in fig.layout.yaxis.title.text
    stored = by_name["measured: n streams, plain autograd"]
    assert stored.yaxis == "y2" and stored.y[0] == pytest.approx(1e3 * sweep["rows"][1]["seconds"])
    assert any("L_r* = √(nL/(n+2)) = 1.63" in (t.name or "") for t in fig.data)
    assert len(fig.layout.shapes) == 4  # two optima, in both panels


def test_breakdown_figure(sweep):
    fig = breakdown_figure(sweep, 2)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == [f"model: {c}" for c in COMPONENTS]
    totals = np.sum([np.array(t.y) for t in bars], axis=0)
    measured = fig.data[-1]
    np.testing.assert_allclose(measured.y, totals)  # the model accounts for every measured byte
    assert list(measured.x)[-1] == "n streams, recompute (L_r = 2)"
    assert totals[1] > totals[2] > totals[3] > totals[0]


def control(box, description):
    return next(w for row in box.children[:2] for w in row.children if w.description == description)


def test_widget_measures_live_and_shows_the_sweep(sweep):
    box = memory_widget(4, 4, 8, hidden_ratio=2, group_size=2, sweep=sweep)
    fig = box.children[-1]
    assert list(fig.data[3].x) == [1, 2, 4]  # (L, n, C) match the sweep: its points are shown
    live_x, live_y = fig.data[5].x[0], fig.data[5].y[0]
    assert live_x == 2 and live_y == pytest.approx(fig.data[0].y[1])  # measured now = model, exactly
    assert "L_r = 2: measured" in box.children[2].value
    control(box, "group L_r").value = 3
    assert fig.data[5].x[0] == 3 and fig.data[5].y[0] == pytest.approx(fig.data[0].y[2])
    control(box, "width C").value = 32  # no longer the sweep's configuration: its points go
    assert len(fig.data[3].x) == 0 and "C = 32" in fig.layout.title.text
    assert fig.data[5].y[0] == pytest.approx(fig.data[0].y[2])
    control(box, "layers L").value = 2  # L_r is capped by L
    assert control(box, "group L_r").max == 2 and fig.data[5].x[0] == 2 and len(fig.data[0].x) == 2
    box = memory_widget(5, 2, 16, hidden_ratio=2, sweep=sweep)
    fig = box.children[-1]
    assert len(fig.data[3].x) == 0 and fig.data[5].x[0] == 2  # default L_r = round(sqrt(2·5/4)) = 2
    assert fig.data[5].y[0] == pytest.approx(fig.data[0].y[1])


def test_timeline_is_a_schematic():
    fig = timeline_figure()
    assert "schematic" in fig.layout.title.text and "arbitrary units" in fig.layout.xaxis2.title.text
    labels = {t.text[0] for t in fig.data}
    assert "A: F_post,res" in labels and any("attention" in label for label in labels)
    assert len(fig.layout.shapes) == 2  # the arrival line in each panel
