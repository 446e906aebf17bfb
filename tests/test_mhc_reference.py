"""The reference contract against the independent element-by-element implementation."""

import pytest
import torch

from mhc_course import mhc_coefficients, mhc_post_res, mhc_pre
from mhc_course.mhc import coefficient_count

from . import independent

F64 = torch.float64


def fresh(*shape, scale=1.0):
    return torch.randn(*shape, dtype=F64) * scale


def params(n, c):
    k = coefficient_count(n)
    return fresh(n * c, k, scale=0.3), fresh(k), fresh(3, scale=0.5)


CASES = [(1, 3, ()), (2, 5, (3,)), (4, 7, (2, 3)), (8, 3, (2,)), (4, 1, (1, 2, 2))]


@pytest.mark.parametrize("n, c, lead", CASES)
def test_coefficients_match_independent(n, c, lead):
    x = fresh(*lead, n, c)
    phi, bias, alpha = params(n, c)
    ours = mhc_coefficients(x, phi, bias, alpha, iters=20)
    theirs = independent.coefficients(x, phi, bias, alpha, iters=20)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n, c, lead", CASES)
def test_pre_and_post_res_match_independent(n, c, lead):
    x, f = fresh(*lead, n, c), fresh(*lead, c)
    h_pre, h_post, h_res = fresh(*lead, n), fresh(*lead, n), fresh(*lead, n, n)
    torch.testing.assert_close(mhc_pre(x, h_pre), independent.pre(x, h_pre), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(
        mhc_post_res(x, f, h_post, h_res), independent.post_res(x, f, h_post, h_res), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("n, c, lead", [(1, 3, (2,)), (2, 5, (2,)), (4, 7, (2,)), (8, 3, ())])
def test_gradients_match_independent(n, c, lead):
    """One scalar loss through coefficients → pre → post_res; every input's gradient agrees."""
    x, f_w = fresh(*lead, n, c), fresh(c, c, scale=0.5)
    phi, bias, alpha = params(n, c)
    inputs = [t.requires_grad_() for t in (x, phi, bias, alpha, f_w)]
    w = fresh(*lead, n, c)

    def loss(coeffs, pre, post_res):
        x, phi, bias, alpha, f_w = inputs
        h_pre, h_post, h_res = coeffs(x, phi, bias, alpha, iters=20)
        f = torch.tanh(pre(x, h_pre) @ f_w)
        return (post_res(x, f, h_post, h_res) * w).sum()

    ours = torch.autograd.grad(loss(mhc_coefficients, mhc_pre, mhc_post_res), inputs)
    theirs = torch.autograd.grad(
        loss(independent.coefficients, independent.pre, independent.post_res), inputs
    )
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("n", [1, 2, 4])
def test_gradcheck(n):
    c = 3
    x = fresh(2, n, c).requires_grad_()
    phi, bias, alpha = (t.requires_grad_() for t in params(n, c))
    assert torch.autograd.gradcheck(lambda *a: mhc_coefficients(*a, iters=20), (x, phi, bias, alpha))
    f, h_post, h_res = fresh(2, c), fresh(2, n), fresh(2, n, n)
    args = tuple(t.requires_grad_() for t in (x.detach(), f, h_post, h_res))
    assert torch.autograd.gradcheck(mhc_post_res, args)
    assert torch.autograd.gradcheck(mhc_pre, (args[0], fresh(2, n).requires_grad_()))


def test_ranges_and_dtypes():
    x = torch.randn(3, 4, 16, dtype=torch.bfloat16)
    phi, bias, alpha = (t.float() for t in params(4, 16))
    h_pre, h_post, h_res = mhc_coefficients(x, phi, bias, alpha)
    assert h_pre.dtype == h_post.dtype == h_res.dtype == torch.float32
    assert ((h_pre > 0) & (h_pre < 1)).all() and ((h_post > 0) & (h_post < 2)).all()
    torch.testing.assert_close(h_res.sum(-1), torch.ones(3, 4))
    assert mhc_pre(x, h_pre).dtype == torch.bfloat16
    assert mhc_post_res(x, torch.randn(3, 16, dtype=torch.bfloat16), h_post, h_res).dtype == torch.bfloat16


def test_broadcast_static_coefficients():
    """Static mappings (no leading dims) apply to every token."""
    x, f = fresh(5, 4, 3), fresh(5, 3)
    h_pre, h_post, h_res = fresh(4), fresh(4), fresh(4, 4)
    torch.testing.assert_close(mhc_pre(x, h_pre), independent.pre(x, h_pre.expand(5, 4)))
    torch.testing.assert_close(
        mhc_post_res(x, f, h_post, h_res),
        independent.post_res(x, f, h_post.expand(5, 4), h_res.expand(5, 4, 4)),
    )
