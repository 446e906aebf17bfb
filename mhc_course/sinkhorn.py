"""Sinkhorn–Knopp: projecting a matrix of logits towards the doubly stochastic matrices.

The mHC paper (Eq. 9) starts from ``M0 = exp(H̃_res)`` and alternates a column
normalisation ``T_c`` and a row normalisation ``T_r`` for ``t_max = 20`` iterations. Because
the row step comes last, rows sum to 1 exactly and columns carry the remaining error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .validation import check_square, compute_dtype


def _check_iters(iters: int) -> None:
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 0:
        raise ValueError(f"iters must be a non-negative int, got {iters!r}")


def sinkhorn_knopp(logits: Tensor, iters: int = 20) -> Tensor:
    """Doubly stochastic approximation of ``exp(logits)``, in the exp domain.

    Args:
        logits: (..., n, n) real matrix.
        iters: number of (column, row) normalisation pairs; 0 returns ``exp(logits - max)``.

    Returns:
        (..., n, n) in at least float32 (float64 stays float64). After ``iters >= 1`` every
        row sums to 1 up to rounding; column sums converge as ``iters`` grows.
    """
    logits = check_square("logits", logits)
    _check_iters(iters)
    z = logits.to(compute_dtype(logits))
    m = torch.exp(z - z.amax(dim=(-2, -1), keepdim=True))
    for _ in range(iters):
        m = m / m.sum(dim=-2, keepdim=True)  # T_c: every column sums to 1
        m = m / m.sum(dim=-1, keepdim=True)  # T_r: every row sums to 1
    return m


def sinkhorn_knopp_log(logits: Tensor, iters: int = 20) -> Tensor:
    """The same iteration carried out on log M with logsumexp, then exponentiated once.

    Each normalisation subtracts a logsumexp, which never overflows or underflows to an
    all-zero row, so logits of ±1e4 stay finite where the exp domain would lose whole rows.
    Returns (..., n, n) in at least float32.
    """
    logits = check_square("logits", logits)
    _check_iters(iters)
    log_m = logits.to(compute_dtype(logits))
    log_m = log_m - log_m.amax(dim=(-2, -1), keepdim=True)
    for _ in range(iters):
        log_m = log_m - torch.logsumexp(log_m, dim=-2, keepdim=True)
        log_m = log_m - torch.logsumexp(log_m, dim=-1, keepdim=True)
    return torch.exp(log_m)


def sinkhorn_error(m: Tensor) -> tuple[Tensor, Tensor]:
    """Distance from doubly stochastic: (max |row sum - 1|, max |column sum - 1|) per matrix.

    Args:
        m: (..., n, n).

    Returns:
        two tensors of shape (...): the row error and the column error.
    """
    m = check_square("m", m)
    row = (m.sum(dim=-1) - 1).abs().amax(dim=-1)
    col = (m.sum(dim=-2) - 1).abs().amax(dim=-1)
    return row, col
