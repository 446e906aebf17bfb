"""Lesson 05's figure and widget: two panels, eight curves on a log axis, updated in place."""

import numpy as np
import plotly.graph_objects as go
import pytest

from mhc_course.viz.mhc_layer import CURVES, depth_gain_widget, depth_profiles, gain_figure, update_gain_figure

SMALL = {"C": 8, "batch": 2, "seq": 3, "tokens": 8}


def test_depth_profiles_both_sources():
    for source in ("modules", "mappings"):
        p = depth_profiles(source, 0.3, 4, 16, **SMALL)
        assert set(p) == {"hc", "mhc"}
        assert all(curve.shape == (16,) for prof in p.values() for curve in prof.values())
        assert p["hc"]["composite_fwd"][-1] > p["mhc"]["composite_fwd"][-1]
    with pytest.raises(ValueError, match="source must be one of"):
        depth_profiles("trained", 0.3, 4, 16)


def test_figure_layout():
    fig = gain_figure(depth_profiles("mappings", 0.3, 4, 12, **SMALL), "title here")
    assert isinstance(fig, go.FigureWidget)
    assert len(fig.data) == 2 * len(CURVES)
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert fig.layout.title.text == "title here" and "log scale" in fig.layout.yaxis.title.text
    assert fig.layout.xaxis.title.text == "layer" and fig.layout.xaxis2.title.text == "layer"
    assert sum(bool(t.showlegend) for t in fig.data) == len(CURVES)  # one legend entry per curve type
    np.testing.assert_array_equal(fig.data[0].x, np.arange(1, 13))


def test_update_replaces_the_curves_in_place():
    fig = gain_figure(depth_profiles("mappings", 0.1, 4, 12, **SMALL), "a")
    new = depth_profiles("modules", 1.0, 3, 20, **SMALL)
    update_gain_figure(fig, new, "b")
    assert fig.layout.title.text == "b"
    assert len(fig.data[0].x) == 20
    np.testing.assert_allclose(fig.data[2].y, new["hc"]["composite_fwd"].numpy())
    np.testing.assert_allclose(fig.data[7].y, new["mhc"]["composite_bwd"].numpy())


def test_widget_builds_and_displays(capsys):
    fig = depth_gain_widget(drift=0.2, n=5, depth=8, source="mappings", **SMALL)
    assert "mappings" in fig.layout.title.text and "n = 5" in fig.layout.title.text
    assert len(fig.data[0].y) == 8
