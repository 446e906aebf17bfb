"""Lesson 01 and 02 figure builders and widgets: the right traces and titles, and updates that change the data."""

import ipywidgets as widgets
import numpy as np
import pytest

from mhc_course.propagation import PLACEMENT_LABELS, PLACEMENTS
from mhc_course.viz.hyper import format_gain, hc_gain_curves, hc_gain_figure, hc_gain_widget, update_hc_gain_figure
from mhc_course.viz.residual import (
    propagation_curves,
    propagation_figure,
    propagation_widget,
    update_propagation_figure,
)

SMALL = {"C": 16, "batch": 4}


def control(box, description):
    return next(w for w in box.children[0].children if w.description == description)


def test_propagation_figure_traces_and_titles():
    fig = propagation_figure(10, 1.5, **SMALL)
    assert len(fig.data) == 2 * len(PLACEMENTS)
    assert [t.name for t in fig.data[::2]] == [PLACEMENT_LABELS[p] for p in PLACEMENTS]
    assert all(t.showlegend for t in fig.data[::2]) and not any(t.showlegend for t in fig.data[1::2])
    assert "10 layers" in fig.layout.title.text and "init gain 1.5" in fig.layout.title.text
    assert fig.layout.yaxis.type == fig.layout.yaxis2.type == "log"
    assert "log scale" in fig.layout.yaxis.title.text and "layer" in fig.layout.xaxis.title.text
    texts = [a.text for a in fig.layout.annotations]
    assert any("forward" in t for t in texts) and any("backward" in t for t in texts)
    curves = propagation_curves(10, 1.5, **SMALL)
    for i, p in enumerate(PLACEMENTS):
        np.testing.assert_array_equal(fig.data[2 * i].x, np.arange(11))
        np.testing.assert_allclose(fig.data[2 * i].y, curves[p]["act_rms"])
        np.testing.assert_allclose(fig.data[2 * i + 1].y, curves[p]["grad_rms"])
    assert fig.data[-1].y[-1] == pytest.approx(1.0)  # the gradient at the output has RMS 1 by construction


def test_propagation_update_changes_data_and_hides_placements():
    fig = propagation_figure(8, 1.0, **SMALL)
    before = np.array(fig.data[0].y)
    update_propagation_figure(fig, 8, 2.0, "none", **SMALL)
    assert not np.allclose(fig.data[0].y, before)
    assert [t.visible for t in fig.data] == [True, True, False, False, False, False]
    update_propagation_figure(fig, 12, 2.0, "all", kind="linear", **SMALL)
    assert all(t.visible for t in fig.data) and len(fig.data[4].x) == 13
    assert "linear" in fig.layout.title.text
    with pytest.raises(ValueError, match="placement must be 'all' or one of"):
        update_propagation_figure(fig, 8, 1.0, "middle", **SMALL)


def test_propagation_widget_controls_update_the_figure():
    box = propagation_widget(6, 1.0, **SMALL)
    assert isinstance(box, widgets.VBox)
    fig = box.children[1]
    control(box, "depth L").value = 20
    assert len(fig.data[0].x) == 21
    before = np.array(fig.data[1].y)
    control(box, "init gain").value = 0.5
    assert not np.allclose(fig.data[1].y, before)
    control(box, "placement").value = "pre-norm"
    assert [t.visible for t in fig.data] == [False, False, False, False, True, True]


def test_hc_gain_figure_traces_and_titles():
    fig = hc_gain_figure(4, 12, 0.3, tokens=3)
    assert len(fig.data) == 6
    assert [t.name for t in fig.data[:3]] == [t.name for t in fig.data[3:]]
    assert "composite" in fig.data[0].name and "per layer" in fig.data[1].name and "identity" in fig.data[2].name
    assert fig.layout.yaxis.type == fig.layout.yaxis2.type == "log"
    texts = [a.text for a in fig.layout.annotations]
    assert any("row sum" in t for t in texts) and any("column sum" in t for t in texts)
    c = hc_gain_curves(4, 12, 0.3, tokens=3)
    np.testing.assert_allclose(fig.data[0].y, c["composite_fwd"])
    np.testing.assert_allclose(fig.data[4].y, c["layer_bwd"])
    np.testing.assert_array_equal(fig.data[2].y, np.ones(12))
    assert format_gain(c["composite_fwd"].max()) in fig.layout.title.text and "n = 4" in fig.layout.title.text


def test_hc_gain_update_and_widget():
    fig = hc_gain_figure(4, 12, 0.0, tokens=3)
    np.testing.assert_allclose(fig.data[0].y, np.ones(12))  # no drift: the identity at every depth
    update_hc_gain_figure(fig, 4, 12, 0.4, tokens=3)
    assert fig.data[0].y[-1] > 2
    box = hc_gain_widget(2, 10, 0.2, tokens=3)
    wfig = box.children[1]
    before = np.array(wfig.data[0].y)
    control(box, "drift").value = 0.5
    assert not np.allclose(wfig.data[0].y, before)
    control(box, "depth L").value = 30
    assert len(wfig.data[3].x) == 30
    control(box, "streams n").value = 6
    assert "n = 6" in wfig.layout.title.text


def test_hc_curves_grow_with_depth_and_format():
    c = hc_gain_curves(4, 64, 0.3, tokens=8, seed=1)
    assert c["composite_fwd"][-1] > 100 * c["composite_fwd"][0]
    assert format_gain(0.5) == "0.5" and format_gain(2537.2) == "2,537" and format_gain(3.1e9) == "3.1e+09"
