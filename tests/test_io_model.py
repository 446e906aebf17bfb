"""Bytes and FLOPs per token: the paper's counts, the fused minima, the roofline helpers."""

import mhc_course.kernels  # noqa: F401  (first: torch.utils.flop_counter imports Triton, which must see TRITON_INTERPRET)

# isort: split
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import mhc_course as ref
from mhc_course.bench_results import load_bench
from mhc_course.io_model import (
    Traffic,
    arithmetic_intensity,
    attainable_flops,
    connection_flops,
    connection_inputs,
    floor_ms,
    flops_per_token,
    fused_forward_backward_traffic,
    fused_forward_traffic,
    fused_post_res_traffic,
    kernel_pass_steps,
    kernel_pass_traffic,
    measure_copy_bandwidth,
    measure_matmul_tflops,
    naive_hc_steps,
    naive_hc_traffic,
    residual_flops,
    residual_traffic,
    ridge_point,
    time_connection,
)

sizes = st.tuples(st.integers(1, 16), st.integers(1, 20000))


@settings(max_examples=50, deadline=None)
@given(sizes)
def test_paper_counts(nc):
    n, C = nc
    naive = naive_hc_traffic(n, C)
    assert naive.reads == (5 * n + 1) * C + n * n + 2 * n
    assert naive.writes == (3 * n + 1) * C + n * n + 2 * n
    assert len(naive_hc_steps(n, C)) == 5
    res = residual_traffic(C)
    assert (res.reads, res.writes) == (2 * C, C)
    fused = fused_post_res_traffic(n, C)
    assert (fused.act_read, fused.act_write) == ((n + 1) * C, n * C)


@settings(max_examples=50, deadline=None)
@given(sizes, st.sampled_from([2, 4]))
def test_fused_minima_in_bytes(nc, eb):
    n, C = nc
    assert fused_forward_traffic(n, C).bytes(eb) == (3 * n + 2) * C * eb
    assert fused_forward_backward_traffic(n, C).bytes(eb) == (6 * n + 5) * C * eb


@settings(max_examples=50, deadline=None)
@given(sizes)
def test_our_kernels_passes(nc):
    n, C = nc
    steps = kernel_pass_steps(n, C)
    forward, backward = steps[:2], steps[2:]
    assert sum(s.act_read + s.act_write for s in forward) == (4 * n + 2) * C
    assert sum(s.act_read + s.act_write for s in backward) == (6 * n + 4) * C
    assert all(s.coef_read == s.coef_write == 0 for s in steps)
    assert kernel_pass_traffic(n, C).bytes(2) - fused_forward_backward_traffic(n, C).bytes(2) == (4 * n + 1) * C * 2
    chained = kernel_pass_steps(n, C, chained=True)
    assert [s.name for s in chained[:2]] == [s.name for s in forward] and "dF pass" not in {s.name for s in chained}
    assert sum(s.act_read + s.act_write for s in chained[2:]) == (5 * n + 4) * C
    assert kernel_pass_traffic(n, C).bytes(2) - kernel_pass_traffic(n, C, chained=True).bytes(2) == n * C * 2


def test_bytes_count_coefficients_as_float32():
    t = Traffic("t", act_read=10, act_write=6, coef_read=3, coef_write=2)
    assert t.activation_bytes(2) == 32
    assert t.bytes(2) == 32 + 5 * 4
    s = t + Traffic("u", act_read=1)
    assert s.act_read == 11 and s.coef_write == 2 and s.name == "t + u"


def test_bad_sizes():
    for bad in ((0, 8), (4, 0), (2.5, 8), (True, 8)):
        with pytest.raises(ValueError, match="must be an int >= 1"):
            naive_hc_traffic(*bad)
    with pytest.raises(ValueError, match="iters"):
        connection_flops(4, 8, iters=0)
    with pytest.raises(ValueError, match="nbytes"):
        arithmetic_intensity(1.0, 0)
    with pytest.raises(ValueError, match="bandwidth"):
        floor_ms(10, 10, 0.0)


@pytest.mark.parametrize("n, C", [(4, 24), (2, 7), (8, 16)])
def test_matmul_flops_match_torch_flop_counter(n, C):
    """The projection, pre and the H_res·x part of post+res are matmuls in the reference; count them."""
    T, k = 5, n * n + 2 * n
    x, phi, bias, alpha = torch.randn(T, n, C), torch.randn(n * C, k), torch.randn(k), torch.rand(3)
    with FlopCounterMode(display=False) as counter:
        h_pre, h_post, h_res = ref.mhc_coefficients(x, phi, bias, alpha)
        h = ref.mhc_pre(x, h_pre)
        ref.mhc_post_res(x, h, h_post, h_res)
    fwd = connection_flops(n, C)["forward"]
    want = T * (fwd["projection v·φ"] + fwd["pre: H_pre·x"] + (fwd["post+res"] - 2 * n * C))
    assert counter.get_total_flops() == want


def test_flops_structure():
    n, C = 4, 2048
    f = connection_flops(n, C)
    assert f["forward"]["projection v·φ"] == 2 * n * C * (n * n + 2 * n)
    assert f["backward"]["projection backward (dx, dφ)"] == 2 * f["forward"]["projection v·φ"]
    assert flops_per_token(n, C, backward=True) > 2 * flops_per_token(n, C)
    s1 = connection_flops(n, C, iters=1)["backward"]["gates, σ, Sinkhorn backward"]
    s20 = f["backward"]["gates, σ, Sinkhorn backward"]
    assert s20 > 20 * s1  # the recomputation is quadratic in the iterations
    assert residual_flops(C) == C


def test_roofline_helpers():
    assert arithmetic_intensity(100.0, 50) == 2.0
    assert attainable_flops(2.0, 100.0) == 2.0 * 100e9
    assert attainable_flops(2.0, 100.0, peak_tflops=0.1) == 0.1e12
    assert math.isclose(ridge_point(1000.0, 500.0), 500.0)
    assert math.isclose(floor_ms(1e6, 1000, 1000.0), 1.0)


def test_floor_matches_the_committed_benchmark():
    bench = load_bench()
    n = bench.rows[0]["n"]
    for C in bench.widths():
        row, T = bench.floor(C), bench.floor(C)["T"]
        fwd = floor_ms(fused_forward_traffic(n, C).bytes(2), T, bench.bandwidth_gbs)
        both = floor_ms(fused_forward_backward_traffic(n, C).bytes(2), T, bench.bandwidth_gbs)
        assert math.isclose(fwd, row["fwd_ms"], rel_tol=1e-9) and math.isclose(both, row["fwd_bwd_ms"], rel_tol=1e-9)


def test_measurements_on_cpu_are_positive():
    assert measure_copy_bandwidth("cpu", mib=4, reps=2) > 0
    assert measure_matmul_tflops("cpu", size=64, reps=2) > 0


def test_connection_inputs():
    x, phi, bias, alpha = connection_inputs(5, 4, 6, torch.float32, "cpu", seed=3)
    assert x.shape == (5, 4, 6) and phi.shape == (24, 24) and bias.shape == (24,) and alpha.shape == (3,)
    assert all(t.requires_grad and t.is_leaf for t in (x, phi, bias, alpha))
    assert torch.equal(alpha, torch.full((3,), 0.5))
    assert phi.std().item() < 0.5  # scaled by 1/√(nC)
    again = connection_inputs(5, 4, 6, torch.float32, "cpu", seed=3)
    other = connection_inputs(5, 4, 6, torch.float32, "cpu", seed=4)
    assert torch.equal(again[0], x) and not torch.equal(other[0], x)
    assert connection_inputs(2, 2, 3, torch.bfloat16, "cpu")[0].dtype == torch.bfloat16
    with pytest.raises(ValueError, match="n must be"):
        connection_inputs(2, 0, 3)


def test_time_connection_needs_cuda():
    with pytest.raises(ValueError, match="needs a CUDA device"):
        time_connection(16, 4, 8, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_measurements_and_live_timing():
    assert measure_copy_bandwidth("cuda", mib=64) > 100
    assert measure_matmul_tflops("cuda", size=1024, dtype=torch.bfloat16) > 1
    t = time_connection(1024, 4, 256)
    assert set(t) == {"ours", "eager reference"}
    assert all(v > 0 for row in t.values() for v in row.values())
