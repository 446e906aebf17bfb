import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from mhc_course.birkhoff import bvn_decomposition, random_doubly_stochastic
from mhc_course.metrics import gain_profile
from mhc_course.sinkhorn import gradient_error_curve, sinkhorn_error_curve, sinkhorn_knopp, sinkhorn_knopp_in_dtype
from mhc_course.viz.birkhoff import bvn_figure, mixing_curves, mixing_figure, mixing_widget, update_mixing_figure
from mhc_course.viz.sinkhorn import (
    FLOOR,
    error_curves_figure,
    gain_order_figure,
    gradient_error_figure,
    sinkhorn_figure,
    sinkhorn_state,
    sinkhorn_widget,
    update_sinkhorn_figure,
)


def test_mixing_curves_behaviour():
    c = mixing_curves(64, 4, 0.3, seed=1)
    assert set(c) == {"layer", "gain_hc", "gain_mhc", "gain_random", "dist_mhc", "dist_random"}
    assert all(len(v) == 64 for v in c.values())
    assert c["gain_hc"][-1] > 10  # unconstrained products grow
    assert np.abs(c["gain_mhc"] - 1).max() < 1e-9 and np.abs(c["gain_random"] - 1).max() < 1e-9
    assert c["dist_random"][-1] < 1e-10 < c["dist_mhc"][-1] < c["dist_mhc"][0] <= 1 + 1e-12
    perms = mixing_curves(32, 4, 0.3, terms=1)
    np.testing.assert_allclose(perms["dist_random"], 1.0, atol=1e-12)  # permutations never mix
    closer = mixing_curves(32, 4, 0.3, res_diag=0.99, seed=1)
    assert closer["dist_mhc"][-1] > mixing_curves(32, 4, 0.3, res_diag=0.8, seed=1)["dist_mhc"][-1]


def test_mixing_figure_and_update():
    fig = mixing_figure(mixing_curves(16, 3, 0.2))
    assert isinstance(fig, go.FigureWidget) and len(fig.data) == 5
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    new = mixing_curves(40, 3, 0.5, seed=7)
    update_mixing_figure(fig, new)
    np.testing.assert_allclose(fig.data[0].y, new["gain_hc"])
    np.testing.assert_allclose(fig.data[4].y, np.maximum(new["dist_random"], 1e-17))
    assert len(fig.data[2].x) == 40 and "After 40 layers" in fig.layout.title.text


def test_mixing_widget():
    fig = mixing_widget(depth=8, n=2)
    assert len(fig.data[0].x) == 8


def test_bvn_figure():
    m = random_doubly_stochastic(1, 4)[0]
    dec = bvn_decomposition(m)
    fig = bvn_figure(m, dec)
    assert len(fig.data) == 2
    np.testing.assert_allclose(fig.data[1].y, dec.weights.numpy())
    assert f"{len(dec)} permutations" in fig.layout.title.text


def test_sinkhorn_state_and_figure():
    base = torch.randn(4, 4, dtype=torch.float64)
    s = sinkhorn_state(base, 7, 2.0, "bfloat16", 30)
    want = sinkhorn_knopp_in_dtype(2.0 * base, 7, torch.bfloat16).double().numpy()
    np.testing.assert_array_equal(s["matrix"], want)
    assert s["row"].shape == s["col"].shape == (31,) and (s["row"] >= FLOOR).all()
    fig = sinkhorn_figure(s)
    assert len(fig.data) == 5 and fig.layout.yaxis2.type == "log"
    low_row = base.clone()
    low_row[1] -= 10.0  # ×4: row 1 lies 40 below the rest, beyond fp16's exp underflow
    nan_state = sinkhorn_state(low_row, 5, 4.0, "float16", 30)
    assert np.isnan(nan_state["matrix"]).any()
    update_sinkhorn_figure(fig, nan_state)
    mask = np.asarray(fig.data[1].z, dtype=float)
    assert np.array_equal(~np.isnan(mask), np.isnan(nan_state["matrix"]))  # grey overlay exactly on NaN cells
    assert list(fig.data[4].x) == [5, 5] and "float16" in fig.layout.title.text
    for trace in fig.data:  # widget messages are JSON: NaN must travel as None (null)
        values = np.asarray(trace.z if trace.type == "heatmap" else trace.y, dtype=object).ravel()
        assert all(v is None or np.isfinite(v) for v in values)
    assert "NaN" in np.asarray(fig.data[0].text).ravel().tolist()
    with pytest.raises(ValueError, match="dtype must be one of"):
        sinkhorn_state(base, 3, 1.0, "int8", 10)
    with pytest.raises(ValueError, match="one \\(n, n\\) matrix"):
        sinkhorn_state(base.expand(2, 4, 4), 3, 1.0, "float32", 10)


def test_sinkhorn_widget():
    fig = sinkhorn_widget(torch.randn(3, 3), iters=4, max_iters=10)
    assert len(fig.data[2].y) == 11


def test_static_figures():
    z = torch.randn(3, 4, 4, dtype=torch.float64)
    curves = {"a": tuple(e.amax(-1) for e in sinkhorn_error_curve(z, 10)), "b": sinkhorn_error_curve(z[0], 10)}
    assert len(error_curves_figure(curves, "t").data) == 2
    assert len(error_curves_figure(curves, "t", show_rows=True).data) == 4
    profiles = {"x": gain_profile(sinkhorn_knopp(z.unsqueeze(1), 2)), "y": gain_profile(sinkhorn_knopp(z, 5))}
    fig = gain_order_figure(profiles)
    assert len(fig.data) == 4 and sum(t.showlegend is not False for t in fig.data) == 2
    g = gradient_error_figure(gradient_error_curve(z, torch.randn_like(z), 5))
    assert len(g.data) == 3 and g.layout.yaxis.type == "log"
