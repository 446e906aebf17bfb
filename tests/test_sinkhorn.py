import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mhc_course import sinkhorn_error, sinkhorn_knopp, sinkhorn_knopp_log

from . import independent


def rand(*shape, scale=1.0, seed=None, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed if seed is not None else torch.randint(0, 2**31, ()).item())
    return torch.randn(*shape, generator=g, dtype=dtype) * scale


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_rows_exact_and_columns_converge(n):
    m = sinkhorn_knopp(rand(5, 3, n, n, scale=1.0), iters=20)
    row, col = sinkhorn_error(m)
    assert row.max() < 1e-14  # the row step is last: rows are exact up to rounding
    assert col.max() < 1e-2  # columns carry the error; it shrinks with more iterations
    assert (m >= 0).all()


def test_error_shrinks_with_iterations():
    logits = rand(64, 4, 4, scale=1.0, seed=1)
    errs = [sinkhorn_error(sinkhorn_knopp(logits, iters=t))[1].max().item() for t in (1, 5, 20, 100)]
    assert errs[0] > errs[1] > errs[2] > errs[3]
    assert errs[3] < 1e-12


def test_zero_iterations_is_exp():
    logits = rand(3, 4, 4)
    m = sinkhorn_knopp(logits, iters=0)
    torch.testing.assert_close(m, torch.exp(logits - logits.amax(dim=(-2, -1), keepdim=True)))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), scale=st.floats(0.01, 4.0), iters=st.integers(1, 60), seed=st.integers(0, 2**30))
def test_doubly_stochastic_properties(n, scale, iters, seed):
    m = sinkhorn_knopp(rand(4, n, n, scale=scale, seed=seed), iters=iters)
    row, col = sinkhorn_error(m)
    assert (m >= 0).all() and row.max() < 1e-12
    # ‖M‖₂ ≤ sqrt(‖M‖₁·‖M‖_∞): at most 1 once the column sums reach 1
    sigma = torch.linalg.matrix_norm(m, ord=2)
    assert (sigma <= torch.sqrt(1 + col) + 1e-12).all()
    # products of row-stochastic matrices stay row-stochastic; column sums multiply at worst
    p = m[3] @ m[2] @ m[1] @ m[0]
    prow, pcol = sinkhorn_error(p)
    assert prow < 1e-12 and (p >= 0).all()
    assert p.sum(dim=-2).max() <= torch.prod(1 + col) + 1e-12


def test_exact_doubly_stochastic_closure_and_norm():
    """Converged matrices: the Birkhoff polytope is closed under products and ‖M‖₂ = 1."""
    m = sinkhorn_knopp(rand(6, 4, 4, seed=3), iters=500)
    assert max(e.max().item() for e in sinkhorn_error(m)) < 1e-12
    p = m[5] @ m[4] @ m[3] @ m[2] @ m[1] @ m[0]
    assert max(e.item() for e in sinkhorn_error(p)) < 1e-12
    torch.testing.assert_close(torch.linalg.matrix_norm(m, ord=2), torch.ones(6, dtype=torch.float64))


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_matches_independent_loops(n):
    logits = rand(n, n, scale=1.5)
    torch.testing.assert_close(sinkhorn_knopp(logits, 20), independent.sinkhorn(logits, 20), rtol=1e-12, atol=1e-12)


def test_log_domain_agrees_with_exp_domain():
    logits = rand(10, 4, 4, scale=3.0)
    torch.testing.assert_close(sinkhorn_knopp_log(logits, 20), sinkhorn_knopp(logits, 20), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_log_domain_stable_for_huge_logits(dtype):
    logits = rand(16, 4, 4, dtype=dtype).sign() * 1e4
    m = sinkhorn_knopp_log(logits, 20)
    assert torch.isfinite(m).all()
    row, _ = sinkhorn_error(m)
    assert row.max() < 1e-5


def test_exp_domain_loses_rows_for_huge_logits():
    """Why the log domain exists: exp underflows a whole row to 0 and 0/0 = NaN follows."""
    logits = torch.full((4, 4), -1e4, dtype=torch.float64)
    logits[0, 0] = 1e4
    assert torch.isnan(sinkhorn_knopp(logits, 20)).any()
    assert torch.isfinite(sinkhorn_knopp_log(logits, 20)).all()


def test_half_inputs_computed_in_float32():
    logits = rand(2, 4, 4, dtype=torch.float32).to(torch.bfloat16)
    m = sinkhorn_knopp(logits)
    assert m.dtype == torch.float32
    torch.testing.assert_close(m, sinkhorn_knopp(logits.float()))


def test_gradcheck():
    logits = rand(2, 4, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: sinkhorn_knopp(z, 20), (logits,))
    assert torch.autograd.gradcheck(lambda z: sinkhorn_knopp_log(z, 20), (logits,))


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.ones(4, 3), r"logits must be \(\.\.\., n, n\), got shape \(4, 3\)"),
        (torch.ones(4), r"logits must have at least 2 dimensions, got shape \(4,\)"),
        (torch.ones(4, 4, dtype=torch.int64), r"logits must be a floating-point tensor, got dtype torch.int64"),
    ],
)
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        sinkhorn_knopp(bad)
    with pytest.raises(ValueError, match=match):
        sinkhorn_knopp_log(bad)


def test_bad_iters():
    with pytest.raises(ValueError, match="iters must be a non-negative int"):
        sinkhorn_knopp(torch.ones(2, 2), iters=-1)
