"""The bandwidth-floor prediction of mHC's step-time overhead."""

import pytest
import torch

from mhc_course.io_model import fused_forward_backward_traffic, kernel_pass_traffic
from mhc_course.step_overhead import (
    elements_within,
    extra_elements_per_token,
    floor_overhead,
    residual_forward_backward_elements,
    scale_overhead_to_width,
)


def test_element_counts():
    for n, C in ((1, 7), (4, 512), (8, 2560)):
        assert residual_forward_backward_elements(C) == 6 * C
        assert extra_elements_per_token(n, C) == (6 * n + 5) * C - 6 * C
        t = fused_forward_backward_traffic(n, C)
        assert extra_elements_per_token(n, C) == t.act_read + t.act_write - 6 * C


def test_floor_overhead_by_hand():
    n, C, depth, tokens = 4, 512, 24, 16384
    bw, step = float(torch.rand(()) * 1000 + 500), float(torch.rand(()) * 0.1 + 0.01)
    p = floor_overhead(n, C, depth, tokens, 4, bw, step)
    extra_bytes = 2 * depth * tokens * (6 * n - 1) * C * 4
    assert p["extra_bytes"] == extra_bytes and p["connections"] == 48
    assert p["extra_ms"] == pytest.approx(extra_bytes / (bw * 1e9) * 1e3)
    assert p["overhead"] == pytest.approx(extra_bytes / (bw * 1e9) / step)
    assert p["predicted_step_s"] == pytest.approx(step * (1 + p["overhead"]))
    half = floor_overhead(n, C, depth, tokens, 2, bw, step)
    assert half["overhead"] == pytest.approx(p["overhead"] / 2)
    slow = floor_overhead(n, C, depth, tokens, 4, bw, step, efficiency=0.25)
    assert slow["overhead"] == pytest.approx(4 * p["overhead"])


def test_our_kernels_passes():
    n, C, depth, tokens = 4, 2048, 8, 8192
    bw, step = float(torch.rand(()) * 1000 + 2000), float(torch.rand(()) * 0.02 + 0.03)
    assert extra_elements_per_token(n, C, kernel_pass_traffic) == (10 * n + 6) * C - 6 * C
    minimal = floor_overhead(n, C, depth, tokens, 2, bw, step)
    ours = floor_overhead(n, C, depth, tokens, 2, bw, step, traffic=kernel_pass_traffic)
    assert ours["overhead"] == pytest.approx(minimal["overhead"] * 40 / 23)


def test_elements_within_inverts_floor_overhead():
    C, depth, tokens, eb = 2048, 8, 8192, 2
    bw, step, eff = float(torch.rand(()) * 1000 + 2000), float(torch.rand(()) * 0.02 + 0.03), 0.8
    for n in (1, 4, 8):
        p = floor_overhead(n, C, depth, tokens, eb, bw, step, efficiency=eff)
        back = elements_within(p["overhead"], C, depth, tokens, eb, bw, step, efficiency=eff)
        assert back == pytest.approx((6 * n + 5) * C)
    allowed = elements_within(0.15, C, depth, tokens, eb, bw, step)
    extra = allowed - 6 * C  # what 15% of the step buys at copy bandwidth, per connection
    assert extra * eb * tokens * 2 * depth / (bw * 1e9) == pytest.approx(0.15 * step)
    assert elements_within(0.3, C, depth, tokens, eb, bw, step) - 6 * C == pytest.approx(2 * extra)
    with pytest.raises(ValueError, match="overhead"):
        elements_within(0.0, C, depth, tokens, eb, bw, step)
    with pytest.raises(ValueError, match="efficiency"):
        elements_within(0.15, C, depth, tokens, eb, bw, step, efficiency=0.0)


def test_scale_to_width():
    assert scale_overhead_to_width(0.25, 512, 2560) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="C_new"):
        scale_overhead_to_width(0.25, 512, 0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n": 0}, "n must be"), ({"C": 2.5}, "C must be"), ({"depth": True}, "depth must be"),
    ({"element_bytes": 0}, "element_bytes"), ({"bandwidth_gbs": 0.0}, "bandwidth_gbs"),
    ({"residual_step_s": -1.0}, "residual_step_s"), ({"efficiency": 1.5}, "efficiency"),
])
def test_bad_arguments(kwargs, match):
    base = dict(n=4, C=64, depth=2, tokens=8, element_bytes=4, bandwidth_gbs=100.0, residual_step_s=0.1)
    with pytest.raises(ValueError, match=match):
        floor_overhead(**{**base, **kwargs})
