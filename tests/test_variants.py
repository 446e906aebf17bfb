"""The released-code variants: equal to the paper's layer with eps = 0, and what the eps and the transpose do."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mhc_course import MHC, amax_gain, mhc_coefficients, mhc_post_res, mhc_pre, sinkhorn_error, sinkhorn_knopp
from mhc_course.mhc import coefficient_count
from mhc_course.variants import (
    acting_matrices,
    released_coefficients,
    released_post_res,
    released_sinkhorn,
    to_released,
)

F64 = torch.float64


def paper_params(n, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    k = coefficient_count(n)
    return (torch.randn(n * c, k, generator=g, dtype=F64) / c, torch.randn(k, generator=g, dtype=F64),
            0.5 + torch.rand(3, generator=g, dtype=F64))


def test_released_sinkhorn_by_hand():
    """Two column steps on a 2×2 matrix, written out, with eps in every denominator."""
    logits, eps = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=F64), 1e-3
    m = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True) + eps
    for step in ("c", "r", "c"):
        m = m / (m.sum(dim=-2 if step == "c" else -1, keepdim=True) + eps)
    torch.testing.assert_close(released_sinkhorn(logits, iters=2, eps=eps), m, rtol=1e-14, atol=0)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 6), iters=st.integers(1, 30), scale=st.floats(0.1, 4.0), seed=st.integers(0, 10_000))
def test_transposed_release_is_the_paper_iteration_without_eps(n, iters, scale, seed):
    logits = scale * torch.randn(3, n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    got = released_sinkhorn(logits.mT, iters, eps=0.0).mT
    torch.testing.assert_close(got, sinkhorn_knopp(logits, iters), rtol=1e-11, atol=1e-13)


def test_same_orientation_differs_and_columns_come_last():
    logits = 2 * torch.randn(50, 4, 4, dtype=F64)
    comb = released_sinkhorn(logits, 20, eps=0.0)
    assert (comb - sinkhorn_knopp(logits, 20)).abs().max() > 1e-4  # the order matters before convergence
    row_err, col_err = sinkhorn_error(comb)
    assert col_err.max() < 1e-12 < row_err.max()


def test_eps_terms():
    logits = torch.randn(20, 4, 4, dtype=F64)
    comb = released_sinkhorn(logits, 20, eps=1e-6)
    col_sums = comb.sum(-2)
    assert ((col_sums < 1) & (col_sums > 1 - 2e-6)).all()  # x/(s + eps) sums to s/(s + eps) < 1
    floor_only = released_sinkhorn(logits, 20, eps=0.0, floor=1e-6)
    torch.testing.assert_close(floor_only.sum(-2), torch.ones(20, 4, dtype=F64), rtol=0, atol=1e-12)
    assert (floor_only - released_sinkhorn(logits, 20, eps=0.0)).abs().max() > 0


@pytest.mark.parametrize("n, c, lead", [(4, 8, (2, 3)), (2, 5, (7,)), (3, 4, ())])
def test_released_layer_equals_paper_layer_without_eps(n, c, lead):
    phi, bias, alpha = paper_params(n, c)
    x, f = torch.randn(*lead, n, c, dtype=F64), torch.randn(*lead, c, dtype=F64)
    h_pre, h_post, h_res = mhc_coefficients(x, phi, bias, alpha)
    fn, scale, base = to_released(phi, bias, alpha)
    pre, post, comb = released_coefficients(x, fn, scale, base, pre_eps=0.0, sinkhorn_eps=0.0)
    torch.testing.assert_close(pre, h_pre, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(post, h_post, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(comb.mT, h_res, rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(released_post_res(x, f, post, comb), mhc_post_res(x, f, h_post, h_res),
                               rtol=1e-11, atol=1e-12)


def test_released_layer_with_eps_is_close_but_not_equal():
    n, c = 4, 8
    phi, bias, alpha = paper_params(n, c, seed=3)
    x = torch.randn(5, n, c, dtype=F64)
    h_pre, _, h_res = mhc_coefficients(x, phi, bias, alpha)
    pre, _, comb = released_coefficients(x, *to_released(phi, bias, alpha), pre_eps=1e-6, sinkhorn_eps=1e-6)
    torch.testing.assert_close(pre - h_pre, torch.full_like(pre, 1e-6), rtol=1e-6, atol=1e-12)  # σ(·) + eps
    diff = (comb.mT - h_res).abs().max()
    assert 0 < diff < 1e-4


def test_norm_weight_is_folded_into_fn():
    n, c = 4, 6
    phi, bias, alpha = paper_params(n, c, seed=1)
    fn, scale, base = to_released(phi, bias, alpha)
    w = 1 + 0.3 * torch.randn(n * c, dtype=F64)
    x = torch.randn(3, n, c, dtype=F64)
    with_weight = released_coefficients(x, fn, scale, base, norm_weight=w)
    folded = released_coefficients(x, fn * w, scale, base)
    for a, b in zip(with_weight, folded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert (with_weight[0] - released_coefficients(x, fn, scale, base)[0]).abs().max() > 1e-6


def test_release_matches_an_mhc_module_layer():
    conn = MHC(4, 8, layer_index=2).double()
    with torch.no_grad():
        conn.bias.add_(torch.randn(24, dtype=F64))
        conn.alpha.fill_(0.7)
    x = torch.randn(6, 4, 8, dtype=F64)
    layer = torch.tanh
    fn, scale, base = (t.detach() for t in to_released(conn.phi, conn.bias, conn.alpha))
    pre, post, comb = released_coefficients(x, fn, scale, base, pre_eps=0.0, sinkhorn_eps=0.0)
    got = released_post_res(x, layer(mhc_pre(x, pre)), post, comb)
    torch.testing.assert_close(got, conn(x, layer).detach(), rtol=1e-11, atol=1e-12)


def test_acting_matrices_swap_which_gain_is_exact():
    logits = 3 * torch.randn(40, 4, 4, dtype=F64)
    mats = acting_matrices(logits)
    assert set(mats) == {"paper", "released", "released, not transposed"}
    fwd, bwd = amax_gain(mats["paper"])
    assert (fwd - 1).abs().max() < 1e-12 and (bwd - 1).abs().max() > 1e-4
    fwd, bwd = amax_gain(mats["released"])
    assert (fwd - 1).abs().max() < 2e-6 and (bwd - 1).abs().max() > 1e-4
    fwd, bwd = amax_gain(mats["released, not transposed"])
    assert (bwd - 1).abs().max() < 2e-6 and (fwd - 1).abs().max() > 1e-4


def test_bad_input_names_the_argument():
    n, c = 4, 8
    phi, bias, alpha = paper_params(n, c)
    fn, scale, base = to_released(phi, bias, alpha)
    x = torch.randn(2, n, c, dtype=F64)
    with pytest.raises(ValueError, match=r"fn must have shape \(24, 32\)"):
        released_coefficients(x, fn.T, scale, base)
    with pytest.raises(ValueError, match=r"scale must have shape \(3,\)"):
        released_coefficients(x, fn, scale[:2], base)
    with pytest.raises(ValueError, match=r"base must have shape \(24,\)"):
        released_coefficients(x, fn, scale, base[:-1])
    with pytest.raises(ValueError, match=r"norm_weight must have shape \(32,\)"):
        released_coefficients(x, fn, scale, base, norm_weight=torch.ones(8, dtype=F64))
    with pytest.raises(ValueError, match="iters must be an int >= 1"):
        released_sinkhorn(torch.randn(4, 4), iters=0)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        released_sinkhorn(torch.randn(4, 4), eps=-1.0)
    with pytest.raises(ValueError, match=r"logits must be \(\.\.\., n, n\)"):
        released_sinkhorn(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"phi must be \(n·C, n²\+2n\)"):
        to_released(torch.randn(32, 23), torch.randn(23), torch.randn(3))
    with pytest.raises(ValueError, match="comb must be a floating-point tensor"):
        released_post_res(x, torch.randn(2, c), torch.randn(2, n), torch.ones(2, n, n, dtype=torch.int64))
