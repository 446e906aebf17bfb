"""Lesson 03's exercises: recognising doubly stochastic matrices, the spectral-norm bound, BvN reconstruction."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..birkhoff import random_convex_permutations, random_permutations
from .checking import Feedback, attempt, compare_tensors


def solution_is_doubly_stochastic(m: Tensor, tol: float) -> bool:
    """True when the (n, n) matrix m has entries ≥ −tol and every row and column sum within tol of 1."""
    rows_ok = ((m.sum(dim=-1) - 1).abs() <= tol).all()
    cols_ok = ((m.sum(dim=-2) - 1).abs() <= tol).all()
    return bool((m >= -tol).all() and rows_ok and cols_ok)


def solution_spectral_norm_bound(m: Tensor) -> Tensor:
    """√(‖M‖₁·‖M‖_∞) for each (..., n, n) matrix: max |column sum| times max |row sum|, square root."""
    a = m.abs()
    return torch.sqrt(a.sum(dim=-1).amax(dim=-1) * a.sum(dim=-2).amax(dim=-1))


def solution_bvn_reconstruct(weights: Tensor, perms: Tensor) -> Tensor:
    """Σ_k weights[k]·P_k with P_k[i, perms[k, i]] = 1; weights (k,), perms (k, n) → (n, n)."""
    n = perms.shape[-1]
    m = torch.zeros(n, n, dtype=weights.dtype)
    for w, perm in zip(weights, perms, strict=True):
        m[torch.arange(n), perm] += w
    return m


def _cases(tol: float, generator: torch.Generator) -> list[tuple[str, Tensor, bool]]:
    n = 4
    ds = random_convex_permutations(1, n, 6, generator=generator)[0]
    row_only = torch.softmax(torch.randn(n, n, generator=generator, dtype=torch.float64), dim=-1)
    p, q = torch.eye(n, dtype=torch.float64), torch.eye(n, dtype=torch.float64).roll(1, dims=0)
    signed = torch.full((n, n), 1.0 / n, dtype=torch.float64) + 0.5 * (p - q)  # sums are 1, one entry is negative
    wiggle = torch.zeros(n, n, dtype=torch.float64)
    wiggle[0, 0] = 0.3 * tol  # row 0 and column 0 off by 0.3·tol: still within tol
    off = ds.clone()
    off[1, 2] += 10 * tol
    return [
        ("is a random convex combination of permutation matrices", ds, True),
        ("is doubly stochastic up to 0.3·tol", ds + wiggle, True),
        ("has rows summing to 1 but not columns", row_only, False),
        ("has columns summing to 1 but not rows", row_only.T.contiguous(), False),
        ("has row and column sums 1 but a negative entry", signed, False),
        ("has one entry 10·tol too large", off, False),
    ]


def check_is_doubly_stochastic(fn: Callable[[Tensor, float], bool]) -> Feedback:
    name = "Exercise 3.1 (is it doubly stochastic?)"
    hint = ("Three conditions, each within tol: no entry below −tol, every row sum within tol of 1 "
            "(sum over dim=-1), every column sum within tol of 1 (sum over dim=-2). Return a Python bool.")
    tol = 1e-9
    cases = _cases(tol, torch.Generator().manual_seed(int(torch.randint(0, 2**31, ()))))
    for what, m, want in cases:
        got, fb = attempt(name, fn, m.clone(), tol, hint=hint)
        if fb:
            return fb
        if not isinstance(got, (bool, torch.Tensor)) or (isinstance(got, torch.Tensor) and got.numel() != 1):
            return Feedback(name, False, f"Return one bool, got {type(got).__name__}.", hint)
        if bool(got) != want:
            return Feedback(name, False, f"For a matrix that {what} you returned {bool(got)}; expected {want} "
                            f"(tol = {tol:g}).", hint)
    return Feedback(name, True, f"Right on all {len(cases)} cases: doubly stochastic, within tol, rows only, "
                    "columns only, a negative entry, off by more than tol.")


def check_spectral_norm_bound(fn: Callable[[Tensor], Tensor]) -> Feedback:
    name = "Exercise 3.2 (spectral norm bound)"
    hint = ("‖M‖₂ ≤ √(‖M‖₁·‖M‖_∞): ‖M‖_∞ is the largest sum of |entries| along a row, ‖M‖₁ along a column. "
            "Take absolute values before summing, keep the leading (batch) dims.")
    m = torch.randn(6, 5, 5, dtype=torch.float64)
    got, fb = attempt(name, fn, m.clone(), hint=hint)
    if fb:
        return fb
    fb = compare_tensors(name, got, solution_spectral_norm_bound(m), hint=hint, rtol=1e-9, atol=1e-12,
                         what="bound for 6 random signed 5×5 matrices")
    if not fb.passed:
        return fb
    sigma = torch.linalg.matrix_norm(m, ord=2)
    return Feedback(name, True, f"Matches, and every bound is ≥ the true ‖M‖₂ (largest ratio σ/bound "
                    f"{(sigma / got).max().item():.3f}).")


def check_bvn_reconstruct(fn: Callable[[Tensor, Tensor], Tensor]) -> Feedback:
    name = "Exercise 3.3 (reconstruct from a BvN decomposition)"
    hint = ("Start from an n×n zero matrix and, for each term k, add weights[k] at the entries "
            "(i, perms[k, i]) for i = 0..n-1.")
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31, ())))
    weights = -torch.log(torch.rand(5, generator=g, dtype=torch.float64))
    weights = weights / weights.sum()
    perms = random_permutations(5, 4, generator=g)
    got, fb = attempt(name, fn, weights.clone(), perms.clone(), hint=hint)
    if fb:
        return fb
    want = solution_bvn_reconstruct(weights, perms)
    if isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got.double(), want.T, atol=1e-12) \
            and not torch.allclose(want, want.T, atol=1e-12):
        return Feedback(name, False, "Your matrix is the transpose of the expected one: the convention here is "
                        "P[i, perms[k, i]] = 1 (row i picks column perms[k, i]).", hint)
    return compare_tensors(name, got, want, hint=hint, rtol=1e-10, atol=1e-12, what="reconstructed matrix")
