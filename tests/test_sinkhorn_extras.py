import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mhc_course import sinkhorn_error, sinkhorn_knopp
from mhc_course.birkhoff import distance_from_uniform
from mhc_course.sinkhorn import (
    convergence_rate,
    gradient_error_curve,
    sinkhorn_converged,
    sinkhorn_error_curve,
    sinkhorn_implicit_grad,
    sinkhorn_iterates,
    sinkhorn_knopp_implicit,
    sinkhorn_knopp_in_dtype,
)


def rand(*shape, scale=1.0, seed=None, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ())))
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


def test_iterates_in_float64_equal_sinkhorn_knopp_bit_for_bit():
    logits = rand(3, 4, 4, scale=2.0)
    for t, m in enumerate(sinkhorn_iterates(logits, 12, torch.float64)):
        assert torch.equal(m, sinkhorn_knopp(logits, t))
    assert torch.equal(sinkhorn_knopp_in_dtype(logits, 20, torch.float64), sinkhorn_knopp(logits, 20))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 3e-2), (torch.float16, 5e-3)])
def test_low_precision_close_to_reference(dtype, tol):
    logits = rand(8, 4, 4)
    m = sinkhorn_knopp_in_dtype(logits, 20, dtype)
    assert m.dtype == dtype
    assert (m.double() - sinkhorn_knopp(logits, 20)).abs().max() < tol
    assert (m.double() - sinkhorn_knopp(logits, 20)).abs().max() > 0  # it really ran in low precision


def test_fp16_overflow_without_max_subtraction():
    logits = rand(4, 4) + 12.0  # exp(12) > 65504
    assert not torch.isfinite(sinkhorn_knopp_in_dtype(logits, 5, torch.float16, subtract_max=False)).all()
    assert torch.isfinite(sinkhorn_knopp_in_dtype(logits, 5, torch.float16)).all()
    assert torch.isfinite(sinkhorn_knopp_in_dtype(logits, 5, torch.bfloat16, subtract_max=False)).all()


def test_fp16_underflow_nan_and_eps_zero_row():
    logits = rand(4, 4, scale=0.5)
    logits[1] -= 25.0  # row 1 underflows in fp16, not in bf16
    assert torch.isnan(sinkhorn_knopp_in_dtype(logits, 10, torch.float16)).all()
    with_eps = sinkhorn_knopp_in_dtype(logits, 10, torch.float16, eps=1e-6).double()
    assert torch.isfinite(with_eps).all()
    assert with_eps[1].abs().max() == 0  # the stream is dropped
    assert (with_eps.sum(-1)[[0, 2, 3]] - 1).abs().max() < 5e-3
    assert torch.isfinite(sinkhorn_knopp_in_dtype(logits, 10, torch.bfloat16)).all()


def test_eps_in_float64_biases_sums():
    logits = rand(4, 4)
    m = sinkhorn_knopp_in_dtype(logits, 50, torch.float64, eps=1e-3)
    assert (m.sum(-1) < 1).all()  # every row divided by (sum + eps)
    assert (m.sum(-1) > 1 - 2e-3).all()


def test_iterates_bad_arguments():
    with pytest.raises(ValueError, match="dtype must be a floating torch.dtype"):
        sinkhorn_knopp_in_dtype(rand(3, 3), 2, torch.int32)
    with pytest.raises(ValueError, match="eps must be >= 0"):
        sinkhorn_knopp_in_dtype(rand(3, 3), 2, torch.float32, eps=-1.0)
    with pytest.raises(ValueError, match=r"logits must be \(\.\.\., n, n\)"):
        sinkhorn_knopp_in_dtype(rand(3, 2), 2)
    with pytest.raises(ValueError, match="iters must be a non-negative int"):
        sinkhorn_knopp_in_dtype(rand(3, 3), -1)


def test_error_curve_matches_sinkhorn_error():
    logits = rand(5, 4, 4, scale=1.5)
    row, col = sinkhorn_error_curve(logits, 15)
    assert row.shape == col.shape == (16, 5) and row.dtype == torch.float64
    for t in (0, 1, 7, 15):
        r, c = sinkhorn_error(sinkhorn_knopp(logits, t))
        torch.testing.assert_close(row[t], r)
        torch.testing.assert_close(col[t], c)
    assert col[15].max() < col[1].max()
    assert row[1:].max() < 1e-14


def test_convergence_rate_is_sigma2_squared():
    """Asymptotically the error shrinks by σ₂(limit)² per step; a slower mode can dominate the window a while."""
    ratios = []
    for _ in range(40):
        scale = 0.5 + 2 * torch.rand(()).item()
        logits = rand(4, 4, scale=scale)
        _, col = sinkhorn_error_curve(logits, 400)
        sigma2 = distance_from_uniform(sinkhorn_converged(logits)).item()
        ratios.append(convergence_rate(col) / sigma2**2)
    ratios = torch.tensor(ratios)
    assert ratios.max() < 1.05  # no mode decays slower than σ₂²
    assert (ratios - 1).abs().median() < 0.01


def test_convergence_rate_edge_cases():
    assert convergence_rate(torch.tensor([1.0, 0.5, 0.25, 0.125]), lo=0.1, hi=1.0) == pytest.approx(0.5)
    assert torch.isnan(torch.tensor(convergence_rate(torch.tensor([1.0, 1e-20]))))
    with pytest.raises(ValueError, match="errors must be 1-D"):
        convergence_rate(torch.ones(3, 2))


def test_converged_reaches_tol_and_raises():
    logits = rand(6, 5, 5, scale=2.0)
    m = sinkhorn_converged(logits, tol=1e-13)
    assert max(e.max().item() for e in sinkhorn_error(m)) <= 1e-13
    assert max(e.max().item() for e in sinkhorn_error(sinkhorn_converged(logits.float()))) < 1e-5
    with pytest.raises(ValueError, match="did not converge"):
        sinkhorn_converged(rand(4, 4, scale=30.0, seed=0), tol=1e-14, max_iters=60)


def unrolled_grad(logits, upstream, iters):
    z = logits.clone().requires_grad_(True)
    (sinkhorn_knopp(z, iters) * upstream).sum().backward()
    return z.grad


@settings(max_examples=10, deadline=None)
@given(n=st.integers(1, 6), scale=st.floats(0.1, 2.0), seed=st.integers(0, 2**30))
def test_implicit_gradient_matches_converged_unrolled(n, scale, seed):
    logits = rand(3, n, n, scale=scale, seed=seed)
    upstream = rand(3, n, n, seed=seed + 1)
    iters = 250  # unroll until the forward pass has converged, so the reference is the limit's gradient
    while sinkhorn_error(sinkhorn_knopp(logits, iters))[1].max() > 1e-15 and iters < 64_000:
        iters *= 2
    assert sinkhorn_error(sinkhorn_knopp(logits, iters))[1].max() <= 1e-15
    reference = unrolled_grad(logits, upstream, iters)
    implicit = sinkhorn_implicit_grad(sinkhorn_converged(logits), upstream)
    torch.testing.assert_close(implicit, reference, rtol=1e-9, atol=1e-11)
    z = logits.clone().requires_grad_(True)
    (sinkhorn_knopp_implicit(z) * upstream).sum().backward()
    torch.testing.assert_close(z.grad, reference, rtol=1e-9, atol=1e-11)


def test_implicit_gradient_gradcheck_and_invariances():
    logits = rand(2, 4, 4, scale=1.5).requires_grad_(True)
    assert torch.autograd.gradcheck(sinkhorn_knopp_implicit, (logits,))
    grad = sinkhorn_implicit_grad(sinkhorn_converged(logits.detach()), rand(2, 4, 4))
    assert grad.sum(-1).abs().max() < 1e-13 and grad.sum(-2).abs().max() < 1e-13
    one = sinkhorn_implicit_grad(torch.ones(5, 1, 1, dtype=torch.float64), rand(5, 1, 1))
    assert one.abs().max() < 1e-15  # a 1×1 projection is constant


def test_implicit_wrong_at_unconverged_point():
    """The formula is the gradient of the limit: at a few iterations it is visibly off."""
    logits, upstream = rand(4, 4, scale=2.0, seed=5), rand(4, 4, seed=6)
    exact = sinkhorn_implicit_grad(sinkhorn_converged(logits), upstream)
    early = sinkhorn_implicit_grad(sinkhorn_knopp(logits, 2), upstream)
    assert (early - exact).norm() / exact.norm() > 1e-3


def test_implicit_float32_and_bad_shapes():
    logits = rand(3, 4, 4, dtype=torch.float32)
    z = logits.clone().requires_grad_(True)
    out = sinkhorn_knopp_implicit(z)
    assert out.dtype == torch.float32
    (out * 2).sum().backward()
    assert z.grad.dtype == torch.float32 and z.grad.abs().max() < 1e-4  # sum of P is constant: gradient 0
    with pytest.raises(ValueError, match=r"same shape, got \(4, 4\) and \(3, 3\)"):
        sinkhorn_implicit_grad(torch.eye(4), torch.eye(3))


def test_gradient_error_curve():
    logits, upstream = rand(3, 4, 4, scale=1.5), rand(3, 4, 4)
    curve = gradient_error_curve(logits, upstream, 30)
    assert set(curve) == {"iters", "unrolled", "implicit", "column_error"}
    assert all(v.shape == (30,) for v in curve.values())
    assert curve["unrolled"][-1] < 1e-2 * curve["unrolled"][0]
    assert curve["implicit"][-1] < 1e-2 * curve["implicit"][0]
    ref = sinkhorn_implicit_grad(sinkhorn_converged(logits), upstream)
    direct = (unrolled_grad(logits, upstream, 7) - ref).norm() / ref.norm()
    torch.testing.assert_close(curve["unrolled"][6], direct)
    with pytest.raises(ValueError, match="same shape"):
        gradient_error_curve(logits, upstream[0], 3)
