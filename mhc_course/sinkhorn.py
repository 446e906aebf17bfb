"""Sinkhorn–Knopp: projecting a matrix of logits towards the doubly stochastic matrices.

The mHC paper (Eq. 9) starts from ``M0 = exp(H̃_res)`` and alternates a column
normalisation ``T_c`` and a row normalisation ``T_r`` for ``t_max = 20`` iterations. Because
the row step comes last, rows sum to 1 exactly and columns carry the remaining error.

Beyond ``sinkhorn_knopp``, ``sinkhorn_knopp_log`` and ``sinkhorn_error``: ``sinkhorn_converged``
(the limit), ``sinkhorn_iterates`` and ``sinkhorn_knopp_in_dtype`` (the iteration carried out in
bf16, fp16, … with an optional eps), ``sinkhorn_error_curve`` and ``convergence_rate`` (error
against iterations), and the implicit-function-theorem gradient of the limit
(``sinkhorn_implicit_grad``, ``sinkhorn_knopp_implicit``, ``gradient_error_curve``).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from .validation import check_square, check_tensor, compute_dtype


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


def sinkhorn_converged(logits: Tensor, tol: float | None = None, max_iters: int = 20_000) -> Tensor:
    """The limit of Sinkhorn–Knopp: log-domain iterations until row and column errors are ≤ ``tol``.

    Runs ``sinkhorn_knopp_log`` with 50, 100, 200, … iterations (at most twice the work of the
    smallest sufficient count) until every matrix's errors are within ``tol``.

    Args:
        logits: (..., n, n).
        tol: default 64·machine epsilon of the compute dtype (about 1.4e-14 in float64, 7.6e-6 in float32).
        max_iters: give up beyond this many iterations.

    Returns:
        (..., n, n) in at least float32.

    Raises:
        ValueError: when ``max_iters`` iterations do not reach ``tol`` (very large logits converge slowly).
    """
    logits = check_square("logits", logits)
    _check_iters(max_iters)
    if tol is None:
        tol = 64 * torch.finfo(compute_dtype(logits)).eps
    iters = min(50, max_iters)
    while True:
        m = sinkhorn_knopp_log(logits, iters)
        row, col = sinkhorn_error(m)
        worst = max(row.max().item(), col.max().item()) if m.numel() else 0.0
        if worst <= tol:
            return m
        if iters >= max_iters:
            raise ValueError(f"logits of shape {tuple(logits.shape)} did not converge to tol={tol:.3g} in "
                             f"max_iters={max_iters} (error {worst:.3g})")
        iters = min(2 * iters, max_iters)


def _iterate(m: Tensor, iters: int, eps: float) -> Iterator[Tensor]:
    yield m
    for _ in range(iters):
        m = m / (m.sum(dim=-2, keepdim=True) + eps)  # T_c
        m = m / (m.sum(dim=-1, keepdim=True) + eps)  # T_r
        yield m


def sinkhorn_iterates(logits: Tensor, iters: int = 20, dtype: torch.dtype | None = None, *, eps: float = 0.0,
                      subtract_max: bool = True) -> Iterator[Tensor]:
    """M⁰, M¹, …, M^iters of the exp-domain iteration, every operation rounded to ``dtype``.

    The logits are first rounded to ``dtype``; then ``M⁰ = exp(logits − max)`` (or ``exp(logits)``
    with ``subtract_max=False``) and each step divides by ``column sum + eps``, then by
    ``row sum + eps``. With ``dtype=None`` the iteration runs in at least float32, and with
    ``eps=0`` the last iterate equals ``sinkhorn_knopp(logits, iters)`` bit for bit.

    Args:
        logits: (..., n, n).
        iters: number of (column, row) steps.
        dtype: floating dtype to carry the iteration in (torch.bfloat16, torch.float16, …).
        eps: added to every sum before dividing, as some implementations do (0 = the paper's T_c, T_r).
        subtract_max: subtract each matrix's largest logit before exp (the overflow guard).

    Returns:
        an iterator over iters + 1 tensors (..., n, n) in ``dtype``.
    """
    logits = check_square("logits", logits)
    _check_iters(iters)
    dt = compute_dtype(logits) if dtype is None else dtype
    if not isinstance(dt, torch.dtype) or not dt.is_floating_point:
        raise ValueError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    z = logits.to(dt)
    m = torch.exp(z - z.amax(dim=(-2, -1), keepdim=True)) if subtract_max else torch.exp(z)
    return _iterate(m, iters, eps)


def sinkhorn_knopp_in_dtype(logits: Tensor, iters: int = 20, dtype: torch.dtype = torch.bfloat16, *,
                            eps: float = 0.0, subtract_max: bool = True) -> Tensor:
    """``sinkhorn_knopp`` carried out in ``dtype`` (e.g. bf16 or fp16), with an optional ``eps`` in the sums.

    See ``sinkhorn_iterates`` for the arguments. Returns (..., n, n) in ``dtype``: it may hold
    NaN (0/0 after a row or column underflows with ``eps=0``) or inf (exp overflow with
    ``subtract_max=False``); that is what the lessons show.
    """
    *_, last = sinkhorn_iterates(logits, iters, dtype, eps=eps, subtract_max=subtract_max)
    return last


def sinkhorn_error_curve(logits: Tensor, iters: int, dtype: torch.dtype | None = None, *, eps: float = 0.0,
                         subtract_max: bool = True) -> tuple[Tensor, Tensor]:
    """Row and column error after each iteration t = 0 … iters, measured in float64.

    Args:
        logits: (..., n, n); the other arguments as for ``sinkhorn_iterates``.

    Returns:
        (row, col), each (iters + 1, ...) float64: ``sinkhorn_error`` of M^t for every t
        (NaN where M^t holds NaN).
    """
    errors = [sinkhorn_error(m.to(torch.float64))
              for m in sinkhorn_iterates(logits, iters, dtype, eps=eps, subtract_max=subtract_max)]
    return torch.stack([r for r, _ in errors]), torch.stack([c for _, c in errors])


def sinkhorn_implicit_grad(p: Tensor, grad_p: Tensor) -> Tensor:
    """Gradient of a loss with respect to the logits at the Sinkhorn fixed point, by the implicit function theorem.

    At convergence ``P = exp(Z + f·1ᵀ + 1·gᵀ)`` with scalings f, g chosen so that ``P·1 = 1`` and
    ``Pᵀ·1 = 1``. Differentiating those constraints gives the linear system
    ``[[I, P], [Pᵀ, I]]·(df, dg) = −((P⊙dZ)·1, (P⊙dZ)ᵀ·1)``, whose matrix H is singular along
    (1, −1) (adding c to f and −c to g changes nothing). With A = grad_p ⊙ P, solve
    ``H·(λ, μ) = (A·1, Aᵀ·1)`` (consistent: both halves sum to ΣA; we solve with H + ννᵀ,
    ν = (1, −1)/√(2n), which picks the solution orthogonal to ν), then

        dL/dZ = P ⊙ (grad_p − λ·1ᵀ − 1·μᵀ).

    Only P is needed, not the iterations that produced it: memory O(n²) per matrix and one
    (2n × 2n) solve, instead of storing or recomputing t_max steps.

    Args:
        p: (..., n, n) converged doubly stochastic matrix (the formula is exact only at the fixed point).
        grad_p: (..., n, n) upstream gradient dL/dP.

    Returns:
        (..., n, n) dL/dZ in the compute dtype; its rows and columns sum to 0 (the logits'
        row and column offsets do not change P).
    """
    p = check_square("p", p)
    grad_p = check_square("grad_p", grad_p)
    if p.shape != grad_p.shape:
        raise ValueError(f"p and grad_p must have the same shape, got {tuple(p.shape)} and {tuple(grad_p.shape)}")
    dt = compute_dtype(p, grad_p)
    p, grad_p = p.to(dt), grad_p.to(dt)
    n = p.shape[-1]
    eye = torch.eye(n, dtype=dt, device=p.device).expand_as(p)
    h = torch.cat([torch.cat([eye, p], dim=-1), torch.cat([p.mT, eye], dim=-1)], dim=-2)  # (..., 2n, 2n)
    nu = torch.cat([torch.ones(n, dtype=dt, device=p.device), -torch.ones(n, dtype=dt, device=p.device)])
    h = h + torch.outer(nu, nu) / (2 * n)
    a = grad_p * p
    rhs = torch.cat([a.sum(dim=-1), a.sum(dim=-2)], dim=-1).unsqueeze(-1)  # (..., 2n, 1)
    lam_mu = torch.linalg.solve(h, rhs).squeeze(-1)
    lam, mu = lam_mu[..., :n], lam_mu[..., n:]
    return p * (grad_p - lam.unsqueeze(-1) - mu.unsqueeze(-2))


class _SinkhornImplicit(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, tol: float | None, max_iters: int) -> Tensor:
        p = sinkhorn_converged(logits.detach(), tol, max_iters)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_p: Tensor) -> tuple[Tensor, None, None]:
        (p,) = ctx.saved_tensors
        return sinkhorn_implicit_grad(p, grad_p), None, None


def sinkhorn_knopp_implicit(logits: Tensor, tol: float | None = None, max_iters: int = 20_000) -> Tensor:
    """The converged projection (``sinkhorn_converged``) with the implicit-function-theorem backward.

    Autograd keeps only the result P; ``backward`` calls ``sinkhorn_implicit_grad``. This is
    the gradient of the exact projection, not of the t_max = 20 steps mHC runs: the paper's
    kernel differentiates the unrolled iterations (recomputing them in the backward pass).

    Args:
        logits: (..., n, n). tol, max_iters: as for ``sinkhorn_converged``.

    Returns:
        (..., n, n) in at least float32.
    """
    logits = check_square("logits", logits)
    return _SinkhornImplicit.apply(logits, tol, max_iters)


def gradient_error_curve(logits: Tensor, grad_p: Tensor, iters: int) -> dict[str, Tensor]:
    """How far finite-iteration gradients are from the gradient of the limit, for t = 1 … iters.

    The reference is ``sinkhorn_implicit_grad`` at ``sinkhorn_converged(logits)``. For each t:
    the unrolled autograd gradient of ``(sinkhorn_knopp(logits, t) * grad_p).sum()``, and the
    implicit formula applied to the unconverged M^t; each error is a relative Frobenius norm
    over the whole batch.

    Args:
        logits, grad_p: (..., n, n), same shape.
        iters: largest t.

    Returns:
        dict of float64 tensors (iters,): ``iters`` (1 … iters), ``unrolled``, ``implicit``, and
        ``column_error`` (max column error of M^t, the forward error, for comparison).
    """
    logits = check_square("logits", logits)
    grad_p = check_square("grad_p", grad_p)
    _check_iters(iters)
    if logits.shape != grad_p.shape:
        raise ValueError(f"logits and grad_p must have the same shape, got {tuple(logits.shape)} and "
                         f"{tuple(grad_p.shape)}")
    z = logits.detach().to(compute_dtype(logits))
    reference = sinkhorn_implicit_grad(sinkhorn_converged(z), grad_p)
    scale = reference.norm()
    unrolled, implicit, col_err = [], [], []
    for t in range(1, iters + 1):
        zt = z.clone().requires_grad_(True)
        m = sinkhorn_knopp(zt, t)
        (g,) = torch.autograd.grad((m * grad_p.to(m.dtype)).sum(), zt)
        unrolled.append((g - reference).norm() / scale)
        m = m.detach()
        implicit.append((sinkhorn_implicit_grad(m, grad_p) - reference).norm() / scale)
        col_err.append(sinkhorn_error(m)[1].max())
    as64 = lambda xs: torch.stack(xs).to(torch.float64)  # noqa: E731
    return {"iters": torch.arange(1, iters + 1, dtype=torch.float64), "unrolled": as64(unrolled),
            "implicit": as64(implicit), "column_error": as64(col_err)}


def convergence_rate(errors: Tensor, lo: float = 1e-11, hi: float = 1e-3) -> float:
    """Average factor by which an error curve shrinks per iteration, measured where it lies in (lo, hi].

    Sinkhorn–Knopp converges linearly: far enough in, the error shrinks by a constant factor per
    iteration, σ₂² of the limit matrix (smaller while a faster mode still dominates). The window
    skips the start, before that regime, and the rounding floor at the end.

    Args:
        errors: (iters + 1,) one error per iteration, e.g. a column of ``sinkhorn_error_curve``.

    Returns:
        the geometric mean of err[t+1]/err[t] over the first run of consecutive points in the window;
        NaN when fewer than two points lie in it.
    """
    check_tensor("errors", errors, min_dim=1)
    if errors.dim() != 1:
        raise ValueError(f"errors must be 1-D (one value per iteration), got shape {tuple(errors.shape)}")
    inside = ((errors > lo) & (errors <= hi)).tolist()
    if True not in inside:
        return float("nan")
    start = inside.index(True)
    stop = start
    while stop + 1 < len(inside) and inside[stop + 1]:
        stop += 1
    if stop == start:
        return float("nan")
    return (errors[stop] / errors[start]).item() ** (1 / (stop - start))
