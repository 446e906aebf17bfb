"""Lesson 06's figures: roofline, committed results, and the bytes-per-token widget."""

import math

import plotly.graph_objects as go
import pytest

from mhc_course.bench_results import load_bench
from mhc_course.io_model import floor_ms, fused_forward_traffic
from mhc_course.viz.kernels import (
    SCHEDULES,
    results_figure,
    roofline_figure,
    traffic_figure,
    traffic_state,
    traffic_widget,
    update_traffic_figure,
)

BENCH = load_bench()
N, C0 = BENCH.rows[0]["n"], BENCH.widths()[0]


def test_roofline_figure():
    roofs = [{"label": "gpu", "bandwidth_gbs": 3000.0, "peak_tflops": None},
             {"label": "cpu", "bandwidth_gbs": 10.0, "peak_tflops": 0.1}]
    points = [{"label": "a", "intensity": 0.2}, {"label": "b", "intensity": 9.0}]
    fig = roofline_figure(roofs, points, "my roofline")
    assert len(fig.data) == 4 and fig.layout.title.text == "my roofline"
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "log scale" in fig.layout.xaxis.title.text and "TFLOP/s" in fig.layout.yaxis.title.text
    assert max(fig.data[1].y) == pytest.approx(0.1)  # the compute roof caps the CPU
    assert fig.data[3].y[0] == pytest.approx(9.0 * 3000e9 / 1e12)  # points sit on the first roof
    with pytest.raises(ValueError, match="at least one machine"):
        roofline_figure([], points)


def test_results_figure():
    fig = results_figure(BENCH)
    names = {r["row"] for r in BENCH.rows if "fwd_ms" in r}
    assert {t.name for t in fig.data} == names
    ms_traces = [t for t in fig.data if t.xaxis == "x"]
    assert len(ms_traces) == len(names) and len(ms_traces[0].x) == 2 * len(BENCH.widths())
    assert fig.layout.yaxis.type == "log" and BENCH.meta["device"] in fig.layout.title.text
    ours = next(t for t in fig.data if t.name.startswith("ours") and t.xaxis == "x2")
    assert ours.y[0] == pytest.approx(BENCH.find(C0, "ours")["fwd_pct_copy"])


def test_traffic_state():
    s = traffic_state(BENCH, N, C0, "bfloat16")
    assert s["benchmarked"] and len(s["schedules"]) == len(SCHEDULES)
    assert s["measured_ms"][2] == BENCH.find(C0, "ours")["fwd_ms"]
    assert s["measured_ms"][3] == BENCH.find(C0, "ours")["fwd_bwd_ms"]
    assert math.isclose(s["predicted_ms"][2], floor_ms(fused_forward_traffic(N, C0).bytes(2), s["T"],
                                                        BENCH.bandwidth_gbs))
    assert s["kib"][1] > s["kib"][3] > s["kib"][2] > s["kib"][0]  # naive > fused fwd+bwd > fused fwd > residual
    other = traffic_state(BENCH, N, C0, "float32")
    assert not other["benchmarked"] and other["measured_ms"] == [None] * len(SCHEDULES)
    assert other["kib"][2] == pytest.approx(2 * s["kib"][2])
    assert not traffic_state(BENCH, N + 1, C0, "bfloat16")["benchmarked"]
    with pytest.raises(ValueError, match="dtype must be one of"):
        traffic_state(BENCH, N, C0, "int8")


def test_traffic_figure_updates_in_place():
    fig = traffic_figure(traffic_state(BENCH, N, C0, "bfloat16"), BENCH)
    assert isinstance(fig, go.FigureWidget) and len(fig.data) == 3
    assert fig.layout.yaxis2.type == "log" and "KiB" in fig.layout.yaxis.title.text
    new = traffic_state(BENCH, 8, 1024, "float32")
    update_traffic_figure(fig, new, BENCH)
    assert list(fig.data[0].y) == pytest.approx(new["kib"])
    assert "predictions only" in fig.layout.title.text and "n = 8" in fig.layout.title.text


def test_widget_builds():
    fig = traffic_widget(BENCH)
    assert f"C = {C0}" in fig.layout.title.text
