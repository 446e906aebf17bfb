"""Lesson 05's exercises: the mHC coefficients, the post/res update, the gains of a transposed mixing."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..metrics import amax_gain
from ..mhc import coefficient_count, mhc_post_res
from ..sinkhorn import sinkhorn_knopp
from ..variants import released_sinkhorn
from .checking import Feedback, attempt, compare_tensors

F64 = torch.float64


def solution_coefficient_logits(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """H̃_pre (..., n), H̃_post (..., n), H̃_res (..., n, n) from x (..., n, C), the norm after the matmul (§4.3)."""
    n = x.shape[-2]
    v = x.flatten(-2)
    r = torch.sqrt(v.square().mean(dim=-1, keepdim=True) + 1e-6)
    z = (v @ phi) / r
    pre = alpha[0] * z[..., :n] + bias[:n]
    post = alpha[1] * z[..., n : 2 * n] + bias[n : 2 * n]
    res = alpha[2] * z[..., 2 * n :] + bias[2 * n :]
    return pre, post, res.unflatten(-1, (n, n))


def _logits_norm_first(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The same logits in the order of Eqs. 7–8 (RMSNorm, then φ): the check's reference."""
    n = x.shape[-2]
    v = x.flatten(-2)
    z = (v * torch.rsqrt(v.square().mean(dim=-1, keepdim=True) + 1e-6)) @ phi
    gates = torch.cat([alpha[0].expand(n), alpha[1].expand(n), alpha[2].expand(n * n)])
    h = gates * z + bias
    return h[..., :n], h[..., n : 2 * n], h[..., 2 * n :].unflatten(-1, (n, n))


def solution_post_res(x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
    """x_next (..., n, C) with x_next[i] = Σ_j h_res[i, j]·x[j] + h_post[i]·f."""
    return h_res @ x + h_post.unsqueeze(-1) * f.unsqueeze(-2)


def solution_acting_gains(comb: Tensor) -> tuple[Tensor, Tensor]:
    """(forward, backward) Amax gains of the mixing that acts on the streams when the release
    applies comb (..., n, n) transposed: the gains of combᵀ, each of shape (...)."""
    return amax_gain(comb.transpose(-1, -2))


def _tuple_of(got: object, k: int) -> bool:
    return isinstance(got, (tuple, list)) and len(got) == k


def check_coefficient_logits(fn: Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]
                             ) -> Feedback:
    name = "Exercise 5.1 (coefficient logits)"
    hint = ("Flatten the n streams into one vector v of n·C per token; r = sqrt(mean(v²) + 1e-6) over that "
            "vector (keepdim); (v @ φ) / r, then split the n²+2n columns [pre | post | res], scale each group "
            "by its own α and add b; reshape res row-major to (n, n).")
    n, c = 4, 6
    k = coefficient_count(n)
    x = torch.randn(2, 3, n, c, dtype=F64) * torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64).view(n, 1)
    phi, bias = torch.randn(n * c, k, dtype=F64) / c, torch.randn(k, dtype=F64)
    alpha = torch.tensor([0.7, 1.3, 2.1], dtype=F64) * (1 + 0.1 * torch.rand(3, dtype=F64))
    got, fb = attempt(name, fn, x.clone(), phi.clone(), bias.clone(), alpha.clone(), hint=hint)
    if fb:
        return fb
    if not _tuple_of(got, 3):
        return Feedback(name, False, "Return a tuple of three tensors (H̃_pre, H̃_post, H̃_res).", hint)
    for got_t, want_t, what in zip(got, _logits_norm_first(x, phi, bias, alpha),
                                   ("H̃_pre", "H̃_post", "H̃_res"), strict=True):
        res = compare_tensors(name, got_t, want_t, hint=hint, rtol=1e-9, atol=1e-9, what=what)
        if not res.passed:
            return res
    return Feedback(name, True, "H̃_pre, H̃_post and H̃_res match Eqs. 7–8 for a batch of (2, 3) tokens with n = 4.")


def check_post_res(fn: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]) -> Feedback:
    name = "Exercise 5.2 (post/res update)"
    hint = ("Row i of the output mixes the input streams with row i of h_res (h_res @ x over the stream axis) "
            "and adds h_post[i] times the layer output f, broadcast over the n streams.")
    n, c = 4, 5
    x, f = torch.randn(3, 2, n, c, dtype=F64), torch.randn(3, 2, c, dtype=F64)
    h_post = 2 * torch.sigmoid(torch.randn(3, 2, n, dtype=F64))
    h_res = sinkhorn_knopp(2 * torch.randn(3, 2, n, n, dtype=F64), 3)  # rows exact, columns not: not symmetric
    got, fb = attempt(name, fn, x.clone(), f.clone(), h_post.clone(), h_res.clone(), hint=hint)
    if fb:
        return fb
    return compare_tensors(name, got, mhc_post_res(x, f, h_post, h_res), hint=hint, rtol=1e-9, atol=1e-9,
                           what="x_next")


def check_acting_gains(fn: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Feedback:
    name = "Exercise 5.3 (gains of the transposed mixing)"
    hint = ("The streams are multiplied by combᵀ. A row of combᵀ is a column of comb, so the forward gain "
            "(max |row sum| of the acting matrix) reads comb's columns, and the backward gain its rows.")
    comb = torch.cat([
        released_sinkhorn(3 * torch.randn(5, 4, 4, dtype=F64), iters=2),  # columns exact, rows not
        torch.randn(3, 4, 4, dtype=F64),  # signed entries: the gains use absolute values
    ])
    got, fb = attempt(name, fn, comb.clone(), hint=hint)
    if fb:
        return fb
    if not _tuple_of(got, 2):
        return Feedback(name, False, "Return a tuple of two tensors (forward, backward).", hint)
    for got_t, want_t, what in zip(got, solution_acting_gains(comb), ("forward gain", "backward gain"), strict=True):
        res = compare_tensors(name, got_t, want_t, hint=hint, rtol=1e-9, atol=1e-12, what=what)
        if not res.passed:
            return res
    return Feedback(name, True, "Forward and backward gains of combᵀ are right for 8 matrices.")
