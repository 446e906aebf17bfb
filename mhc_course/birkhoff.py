"""The Birkhoff polytope: doubly stochastic matrices, their vertices and how to sample them.

A matrix M ∈ R^{n×n} is doubly stochastic when M ≥ 0, every row sums to 1 and every column
sums to 1. The set of them, the Birkhoff polytope B_n, is convex and its vertices are the
n! permutation matrices (Birkhoff–von Neumann): every M ∈ B_n is Σ_k w_k P_k with w_k ≥ 0,
Σ_k w_k = 1. ``bvn_decomposition`` finds such weights greedily with a bipartite matching
written out here, ``bvn_reconstruct`` sums them back.

Convention: a permutation is a 1-D integer tensor ``perm`` of length n, and its matrix P has
``P[i, perm[i]] = 1``, so ``(P @ x)[i] = x[perm[i]]``: stream i receives stream perm[i].
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from .sinkhorn import sinkhorn_converged, sinkhorn_error
from .validation import check_square, check_tensor


def _check_perms(perms: object) -> Tensor:
    if not isinstance(perms, Tensor) or perms.is_floating_point() or perms.is_complex() or perms.dtype == torch.bool \
            or perms.dim() < 1:
        shape = tuple(perms.shape) if isinstance(perms, Tensor) else type(perms).__name__
        raise ValueError(f"perms must be an integer tensor (..., n), got {shape}")
    n = perms.shape[-1]
    expected = torch.arange(n, device=perms.device)
    if n == 0 or not (perms.sort(dim=-1).values == expected).all():
        raise ValueError(f"perms must hold permutations of 0..n-1 along the last dim, got shape {tuple(perms.shape)}")
    return perms


def permutation_matrix(perms: Tensor, dtype: torch.dtype = torch.float64) -> Tensor:
    """Permutation matrices with ``P[..., i, perms[..., i]] = 1``.

    Args:
        perms: (..., n) integer tensor, each row a permutation of 0..n-1.
        dtype: floating dtype of the result.

    Returns:
        (..., n, n).
    """
    perms = _check_perms(perms)
    return torch.nn.functional.one_hot(perms.long(), perms.shape[-1]).to(dtype)


def all_permutations(n: int) -> Tensor:
    """Every permutation of 0..n-1 in lexicographic order: (n!, n) int64. Meant for small n (≤ 8)."""
    if not isinstance(n, int) or not 1 <= n <= 8:
        raise ValueError(f"n must be an int in 1..8 (n! rows are materialised), got {n!r}")
    return torch.tensor(list(itertools.permutations(range(n))), dtype=torch.int64)


def max_weight_permutation(scores: Tensor) -> Tensor:
    """The permutation maximising Σ_i scores[i, perm[i]], by enumerating all n! of them.

    Args:
        scores: (n, n) with n ≤ 8.

    Returns:
        (n,) int64.
    """
    scores = check_square("scores", scores)
    if scores.dim() != 2:
        raise ValueError(f"scores must be one (n, n) matrix, got shape {tuple(scores.shape)}")
    perms = all_permutations(scores.shape[-1])
    totals = scores.gather(1, perms.T.to(scores.device)).sum(dim=0)  # (n!,)
    return perms[int(totals.argmax())]


def random_permutations(count: int, n: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``count`` independent uniformly random permutations of 0..n-1: (count, n) int64."""
    if count < 1 or n < 1:
        raise ValueError(f"count and n must be >= 1, got count={count}, n={n}")
    return torch.rand(count, n, generator=generator).argsort(dim=-1)


def random_convex_permutations(count: int, n: int, terms: int, *, generator: torch.Generator | None = None,
                               dtype: torch.dtype = torch.float64) -> Tensor:
    """``count`` points of the Birkhoff polytope, each Σ_k w_k P_k over ``terms`` random permutations.

    The weights are uniform on the simplex (Dirichlet(1, …, 1)); ``terms = 1`` gives permutation
    matrices. Doubly stochastic up to rounding, by construction.

    Returns:
        (count, n, n) in ``dtype``.
    """
    if count < 1 or n < 1 or terms < 1:
        raise ValueError(f"count, n and terms must be >= 1, got count={count}, n={n}, terms={terms}")
    weights = -torch.log(torch.rand(count, terms, generator=generator, dtype=torch.float64))
    weights = weights / weights.sum(dim=-1, keepdim=True)
    perms = random_permutations(count * terms, n, generator=generator).reshape(count, terms, n)
    return torch.einsum("ck,ckij->cij", weights, permutation_matrix(perms)).to(dtype)


def random_doubly_stochastic(count: int, n: int, *, logit_scale: float = 1.0, generator: torch.Generator | None = None,
                             dtype: torch.dtype = torch.float64, tol: float = 1e-13) -> Tensor:
    """``count`` matrices Sinkhorn–Knopp(logit_scale·G), G standard normal, iterated to convergence.

    Full support (every entry positive); row and column errors at most ``tol`` (computed in float64).

    Returns:
        (count, n, n) in ``dtype``.
    """
    if count < 1 or n < 1:
        raise ValueError(f"count and n must be >= 1, got count={count}, n={n}")
    logits = logit_scale * torch.randn(count, n, n, generator=generator, dtype=torch.float64)
    return sinkhorn_converged(logits, tol).to(dtype)


def is_doubly_stochastic(m: Tensor, tol: float = 1e-9) -> Tensor:
    """Whether each matrix is doubly stochastic within ``tol``: entries ≥ −tol, row and column sums within tol of 1.

    Args:
        m: (..., n, n).

    Returns:
        bool tensor of shape (...).
    """
    m = check_square("m", m)
    row, col = sinkhorn_error(m)
    return (m.amin(dim=(-2, -1)) >= -tol) & (row <= tol) & (col <= tol)


def distance_from_uniform(m: Tensor) -> Tensor:
    """‖M − J/n‖₂ (spectral norm), J the all-ones matrix: how far M is from mixing everything evenly.

    For doubly stochastic M this equals σ₂(M), its second largest singular value, and for a
    product of doubly stochastic matrices it is at most the product of their σ₂.

    Args:
        m: (..., n, n).

    Returns:
        (...).
    """
    m = check_square("m", m)
    n = m.shape[-1]
    return torch.linalg.matrix_norm(m - torch.full_like(m, 1.0 / n), ord=2)


def find_permutation_in_support(support: Tensor) -> Tensor | None:
    """A permutation with ``support[i, perm[i]]`` true for every i, or None: a perfect bipartite matching.

    Kuhn's augmenting-path algorithm: rows are matched one after another; when row i's
    candidate column is taken, the row holding it looks for another column, recursively.
    O(n³) for an (n, n) boolean ``support``.

    Returns:
        (n,) int64 permutation, or None when no perfect matching exists.
    """
    if not isinstance(support, Tensor) or support.dtype != torch.bool or support.dim() != 2 \
            or support.shape[0] != support.shape[1]:
        shape = tuple(support.shape) if isinstance(support, Tensor) else type(support).__name__
        raise ValueError(f"support must be a bool tensor (n, n), got {shape}")
    n = support.shape[0]
    adjacent = [torch.nonzero(support[i]).flatten().tolist() for i in range(n)]
    row_of_col: list[int | None] = [None] * n

    def augment(i: int, seen: list[bool]) -> bool:
        for j in adjacent[i]:
            if not seen[j]:
                seen[j] = True
                holder = row_of_col[j]
                if holder is None or augment(holder, seen):
                    row_of_col[j] = i
                    return True
        return False

    for i in range(n):
        if not augment(i, [False] * n):
            return None
    perm = [0] * n
    for j, i in enumerate(row_of_col):
        perm[i] = j
    return torch.tensor(perm, dtype=torch.int64)


@dataclass(frozen=True)
class BvNDecomposition:
    """M ≈ Σ_k weights[k]·P(perms[k]); ``weights`` (k,) float, ``perms`` (k, n) int64."""

    weights: Tensor
    perms: Tensor

    def __len__(self) -> int:
        return self.weights.shape[0]

    def matrices(self) -> Tensor:
        """The permutation matrices, (k, n, n)."""
        return permutation_matrix(self.perms, self.weights.dtype)

    def reconstruct(self) -> Tensor:
        """Σ_k w_k P_k, (n, n)."""
        return bvn_reconstruct(self.weights, self.perms)


def _bottleneck_permutation(r: Tensor, tol: float) -> Tensor | None:
    """The permutation in r's support (entries > tol) whose smallest entry is largest."""
    values = torch.unique(r[r > tol])  # ascending
    best, lo, hi = None, 0, values.numel() - 1
    while lo <= hi:  # binary search for the largest threshold that still admits a perfect matching
        mid = (lo + hi) // 2
        perm = find_permutation_in_support(r >= values[mid])
        if perm is None:
            hi = mid - 1
        else:
            best, lo = perm, mid + 1
    return best


def bvn_decomposition(m: Tensor, tol: float = 1e-12) -> BvNDecomposition:
    """Birkhoff–von Neumann decomposition of a doubly stochastic (n, n) matrix, greedily.

    Repeat on the remainder R (starting at R = M): find the permutation in R's support whose
    smallest entry w is largest (binary search over thresholds, each tested with a perfect
    matching), record (w, P), subtract w·P. Each step zeroes at least one entry, so there are at
    most n² − n + 1 steps. R keeps equal row and column sums (1 − Σw), so by Birkhoff's theorem
    a matching always exists until R's mass (its row sum) falls below n·``tol``.

    Args:
        m: (n, n), doubly stochastic within n·tol (entries ≥ −n·tol, row and column sums within n·tol of 1).
        tol: entries ≤ tol count as zero; stops when R's average row sum is ≤ n·tol.

    Returns:
        a ``BvNDecomposition``, terms in the order found.

    Raises:
        ValueError: when m is not (n, n) or not doubly stochastic.
    """
    m = check_square("m", m)
    if m.dim() != 2:
        raise ValueError(f"m must be one (n, n) matrix, got shape {tuple(m.shape)}")
    n = m.shape[-1]
    if not bool(is_doubly_stochastic(m, tol=n * tol)):
        row, col = sinkhorn_error(m)
        raise ValueError(
            f"m (shape {tuple(m.shape)}) must be doubly stochastic: min entry {m.min().item():.3g}, "
            f"row error {row.item():.3g}, column error {col.item():.3g}"
        )
    r = m.detach().to(torch.float64).clone()
    weights, perms = [], []
    while r.sum().item() / n > n * tol:
        perm = _bottleneck_permutation(r, tol) if len(weights) < n * n - n + 1 else None
        if perm is None:
            raise ValueError(f"no permutation in the support of the remainder (mass {r.sum().item() / n:.3g}); "
                             f"m is not doubly stochastic closely enough for tol={tol}")
        rows = torch.arange(n)
        w = r[rows, perm].min()
        r[rows, perm] -= w
        weights.append(w)
        perms.append(perm)
    return BvNDecomposition(torch.stack(weights).to(m.dtype), torch.stack(perms))


def bvn_reconstruct(weights: Tensor, perms: Tensor) -> Tensor:
    """Σ_k weights[k]·P(perms[k]).

    Args:
        weights: (k,) floating.
        perms: (k, n) integer, each row a permutation of 0..n-1.

    Returns:
        (n, n) in weights' dtype.
    """
    weights = check_tensor("weights", weights, min_dim=1)
    perms = _check_perms(perms)
    if weights.dim() != 1 or perms.dim() != 2 or perms.shape[0] != weights.shape[0]:
        raise ValueError(
            f"weights must be (k,) and perms (k, n) with the same k, "
            f"got {tuple(weights.shape)} and {tuple(perms.shape)}"
        )
    return torch.einsum("k,kij->ij", weights, permutation_matrix(perms, weights.dtype))


def marcus_ree_bound(n: int) -> int:
    """(n − 1)² + 1: some BvN decomposition of any n×n doubly stochastic matrix has at most this many terms.

    The polytope has dimension (n − 1)², so Carathéodory's theorem gives (n − 1)² + 1 vertices.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return (n - 1) ** 2 + 1

