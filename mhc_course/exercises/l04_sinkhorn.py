"""Lesson 04's exercises: one Sinkhorn–Knopp step, the log-domain step, iterations to a tolerance."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..sinkhorn import sinkhorn_error, sinkhorn_error_curve, sinkhorn_knopp
from .checking import Feedback, attempt, compare_tensors


def solution_sinkhorn_step(m: Tensor) -> Tensor:
    """One iteration T_r(T_c(M)) on positive (..., n, n): normalise columns, then rows."""
    m = m / m.sum(dim=-2, keepdim=True)
    return m / m.sum(dim=-1, keepdim=True)


def solution_log_sinkhorn_step(log_m: Tensor) -> Tensor:
    """The same step on log M: subtract each column's logsumexp, then each row's."""
    log_m = log_m - torch.logsumexp(log_m, dim=-2, keepdim=True)
    return log_m - torch.logsumexp(log_m, dim=-1, keepdim=True)


def solution_iterations_needed(logits: Tensor, tol: float) -> int:
    """Smallest t ≥ 0 with row and column errors of sinkhorn_knopp(logits, t) both ≤ tol.

    One step at a time on the running matrix: the same operations as sinkhorn_knopp(logits, t),
    without starting over for every t.
    """
    m, t = sinkhorn_knopp(logits, 0), 0
    while max(e.max().item() for e in sinkhorn_error(m)) > tol:
        m, t = solution_sinkhorn_step(m), t + 1
    return t


def _moderate_logits(scale: float, tol: float, cap: int = 200) -> tuple[Tensor, int]:
    """Random (3, 4, 4) logits at ``scale`` that reach ``tol`` within ``cap`` iterations, and that count."""
    while True:
        logits = scale * torch.randn(3, 4, 4, dtype=torch.float64)
        row, col = sinkhorn_error_curve(logits, cap)
        done = ((row.amax(-1) <= tol) & (col.amax(-1) <= tol)).nonzero()
        if len(done):
            return logits, int(done[0])


def check_sinkhorn_step(fn: Callable[[Tensor], Tensor]) -> Feedback:
    name = "Exercise 4.1 (one Sinkhorn–Knopp step)"
    hint = ("T_c divides every entry by its column's sum (m.sum(dim=-2, keepdim=True)); then T_r divides by "
            "the new row sums (dim=-1). Columns first, rows last.")
    m = torch.exp(torch.randn(8, 4, 4, dtype=torch.float64))
    got, fb = attempt(name, fn, m.clone(), hint=hint)
    if fb:
        return fb
    want = solution_sinkhorn_step(m)
    rows_first = m / m.sum(dim=-1, keepdim=True)
    rows_first = rows_first / rows_first.sum(dim=-2, keepdim=True)
    if isinstance(got, Tensor) and got.shape == want.shape and torch.allclose(got.double(), rows_first, atol=1e-12):
        return Feedback(name, False, "You normalised rows first and columns last: now columns are exact and rows "
                        "carry the error. The paper applies T_c first, T_r last.", hint)
    return compare_tensors(name, got, want, hint=hint, rtol=1e-10, atol=1e-12, what="matrix after one step")


def check_log_sinkhorn_step(fn: Callable[[Tensor], Tensor]) -> Feedback:
    name = "Exercise 4.2 (the log-domain step)"
    hint = ("Dividing by a sum is subtracting its log: log_m − logsumexp over columns (dim=-2, keepdim=True), "
            "then − logsumexp over rows (dim=-1). Never exponentiate log_m itself.")
    moderate = torch.randn(8, 4, 4, dtype=torch.float64)
    got, fb = attempt(name, fn, moderate.clone(), hint=hint)
    if fb:
        return fb
    fb = compare_tensors(name, got, solution_log_sinkhorn_step(moderate), hint=hint, rtol=1e-10, atol=1e-10,
                         what="log M after one step (logits of size about 1)")
    if not fb.passed:
        return fb
    extreme = 1000 * torch.randn(8, 4, 4, dtype=torch.float64)
    got, fb = attempt(name, fn, extreme.clone(), hint=hint)
    if fb:
        return fb
    if isinstance(got, Tensor) and got.shape == extreme.shape and not torch.isfinite(got).all():
        return Feedback(name, False, "Right for logits of size about 1, but logits spread over ±1000 give NaN or "
                        "inf: exp(log_m) underflows to 0 even in float64.", hint)
    return compare_tensors(name, got, solution_log_sinkhorn_step(extreme), hint=hint, rtol=1e-10, atol=1e-8,
                           what="log M after one step (logits spread over ±1000)")


def check_iterations_needed(fn: Callable[[Tensor, float], int]) -> Feedback:
    name = "Exercise 4.3 (iterations to reach a tolerance)"
    hint = ("Try t = 0, 1, 2, … and return the first t for which both errors from "
            "sinkhorn_error(sinkhorn_knopp(logits, t)) are ≤ tol (take .max() over the batch).")
    tol = 1e-6
    for scale in (0.5, 1.5, 2.5):
        logits, want = _moderate_logits(scale, tol)
        got, fb = attempt(name, fn, logits.clone(), tol, hint=hint)
        if fb:
            return fb
        if not isinstance(got, int) or isinstance(got, bool) or got != want:
            detail = ""
            if isinstance(got, int) and not isinstance(got, bool) and got >= 0:
                err = max(e.max().item() for e in sinkhorn_error(sinkhorn_knopp(logits, got)))
                detail = f" (error after your t: {err:.2g})"
            return Feedback(name, False, f"For logits of scale {scale} you returned {got!r}{detail}; expected "
                            f"{want}, the smallest t with both errors ≤ {tol:g}.", hint)
    return Feedback(name, True, f"Right for logit scales 0.5, 1.5 and 2.5 at tol {tol:g}.")
