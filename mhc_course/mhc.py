"""The mHC connection (arXiv 2512.24880): the functional contract and the ``MHC`` module.

Per token, with n streams x ∈ R^{n×C} (Eq. 3):

    x_next = H_res · x + H_postᵀ · F(H_pre · x)

The coefficients come from the whole token (Eqs. 6–9): flatten, RMSNorm, project with φ,
scale by the gates α, add the biases b, then H_pre = σ(·), H_post = 2σ(·) and
H_res = Sinkhorn–Knopp(·). The reference here is plain PyTorch, differentiable and exact in
float64; ``mhc_course.kernels`` implements the same three functions as fused Triton kernels.
"""

from __future__ import annotations

import math
import sys

import torch
from torch import Tensor, nn

from .sinkhorn import sinkhorn_knopp
from .stream_connection import StreamConnection
from .validation import (
    check_leading,
    check_same_device,
    check_shape,
    check_streams,
    check_tensor,
    compute_dtype,
)

BACKENDS = ("torch", "triton")


def coefficient_count(n: int) -> int:
    """Width of φ's output: n (pre) + n (post) + n² (res)."""
    return n * n + 2 * n


def check_coefficient_params(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor) -> tuple[int, int]:
    """Validate the arguments of ``mhc_coefficients``; return (n, C)."""
    n, c = check_streams("x", x)
    k = coefficient_count(n)
    check_tensor("phi", phi)
    check_tensor("bias", bias)
    check_tensor("alpha", alpha)
    check_shape("phi", phi, (n * c, k), f"n·C × (n²+2n) for x of shape {tuple(x.shape)}")
    check_shape("bias", bias, (k,), f"n²+2n for n={n}")
    check_shape("alpha", alpha, (3,), "(α_pre, α_post, α_res)")
    check_same_device(x=x, phi=phi, bias=bias, alpha=alpha)
    return n, c


def mhc_coefficients(
    x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, iters: int = 20, eps: float = 1e-6
) -> tuple[Tensor, Tensor, Tensor]:
    """The three mHC mappings for every token.

    Args:
        x: (..., n, C) residual streams.
        phi: (n·C, n²+2n) projection; columns ordered [pre (n) | post (n) | res (n², row-major)].
        bias: (n²+2n,) biases in the same order.
        alpha: (3,) gates (α_pre, α_post, α_res).
        iters: Sinkhorn–Knopp iterations (t_max; the paper uses 20).
        eps: added to the mean square inside the RMSNorm.

    Returns:
        h_pre (..., n) in (0, 1), h_post (..., n) in (0, 2), h_res (..., n, n) doubly stochastic;
        all in at least float32.
    """
    n, _ = check_coefficient_params(x, phi, bias, alpha)
    dt = compute_dtype(x, phi, bias, alpha)
    v = x.to(dt).flatten(-2)  # (..., n·C): one vector per token, all streams together
    v = v * torch.rsqrt(v.square().mean(dim=-1, keepdim=True) + eps)
    z = v @ phi.to(dt)  # (..., n²+2n)
    a, b = alpha.to(dt), bias.to(dt)
    h_pre = torch.sigmoid(a[0] * z[..., :n] + b[:n])
    h_post = 2 * torch.sigmoid(a[1] * z[..., n : 2 * n] + b[n : 2 * n])
    res_logits = (a[2] * z[..., 2 * n :] + b[2 * n :]).unflatten(-1, (n, n))
    return h_pre, h_post, sinkhorn_knopp(res_logits, iters)


def check_pre_args(x: Tensor, h_pre: Tensor) -> tuple[int, int]:
    n, c = check_streams("x", x)
    check_tensor("h_pre", h_pre, min_dim=1)
    check_leading("h_pre", h_pre, (n,), x.shape[:-2])
    check_same_device(x=x, h_pre=h_pre)
    return n, c


def mhc_pre(x: Tensor, h_pre: Tensor) -> Tensor:
    """The layer input Σ_i h_pre[i]·x[i].

    Args:
        x: (..., n, C).
        h_pre: (..., n), leading dims broadcastable to x's.

    Returns:
        (..., C) in x's dtype (accumulated in at least float32).
    """
    check_pre_args(x, h_pre)
    dt = compute_dtype(x, h_pre)
    return (h_pre.to(dt).unsqueeze(-2) @ x.to(dt)).squeeze(-2).to(x.dtype)


def check_post_res_args(x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> tuple[int, int]:
    n, c = check_streams("x", x)
    check_tensor("f", f, min_dim=1)
    check_tensor("h_post", h_post, min_dim=1)
    check_tensor("h_res", h_res, min_dim=2)
    lead = x.shape[:-2]
    check_leading("f", f, (c,), lead)
    check_leading("h_post", h_post, (n,), lead)
    check_leading("h_res", h_res, (n, n), lead)
    check_same_device(x=x, f=f, h_post=h_post, h_res=h_res)
    return n, c


def mhc_post_res(x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
    """The next streams: out[i] = Σ_j h_res[i, j]·x[j] + h_post[i]·f.

    Args:
        x: (..., n, C) current streams.
        f: (..., C) the layer's output.
        h_post: (..., n); h_res: (..., n, n); leading dims broadcastable to x's.

    Returns:
        (..., n, C) in x's dtype (accumulated in at least float32).
    """
    check_post_res_args(x, f, h_post, h_res)
    dt = compute_dtype(x, f, h_post, h_res)
    out = h_res.to(dt) @ x.to(dt) + h_post.to(dt).unsqueeze(-1) * f.to(dt).unsqueeze(-2)
    return out.to(x.dtype)


def identity_logits(n: int, res_diag: float = 0.95) -> Tensor:
    """H_res logits whose Sinkhorn–Knopp projection has ``res_diag`` on the diagonal.

    β on the diagonal and 0 elsewhere gives equal row and column sums, so the matrix is
    already doubly stochastic after exp and normalisation: diagonal e^β/(e^β + n − 1).
    Returns (n, n); all zeros for n = 1 (a 1×1 projection is [[1]] whatever the logit).
    """
    if not 0 < res_diag < 1:
        raise ValueError(f"res_diag must lie in (0, 1), got {res_diag}")
    if n == 1:
        return torch.zeros(1, 1)
    return math.log(res_diag * (n - 1) / (1 - res_diag)) * torch.eye(n)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


class MHC(StreamConnection):
    """One mHC connection around a sublayer, with the paper's parameterisation.

    Parameters: ``phi`` (n·C, n²+2n), ``bias`` (n²+2n,), ``alpha`` (3,).

    Initialisation. The paper fixes α = 0.01 and leaves φ and b open; we choose b so that at
    step 0 the connection behaves like the residual stream it replaces, as Hyper-Connections
    do (A_m = e_{k mod n}, A_r = I, B = 1):

    - H_res ≈ I: ``identity_logits`` puts β on the diagonal, 0 elsewhere; Sinkhorn–Knopp
      leaves that matrix as it is, with ``res_diag`` on the diagonal. Exactly I would need
      β = ∞ and a zero gradient.
    - H_pre picks stream ``layer_index mod n``: σ(b) = ``pre_focus`` there and the rest
      shared by the other streams, so the weights sum to 1. While the streams are still
      copies of one another this reads exactly that copy; later layers read different streams,
      which lets the streams specialise.
    - H_post = 1: b = 0 gives 2σ(0) = 1, every stream receives the layer's output.
    - φ ~ N(0, 1/(n·C)), so each entry of RMSNorm(v)·φ is about N(0, 1) and α·z starts near 0.01.
    """

    def __init__(
        self,
        n: int,
        C: int,
        *,
        layer_index: int = 0,
        backend: str = "torch",
        iters: int = 20,
        eps: float = 1e-6,
        alpha_init: float = 0.01,
        res_diag: float = 0.95,
        pre_focus: float = 0.95,
    ) -> None:
        super().__init__()
        if n < 1 or C < 1:
            raise ValueError(f"n and C must be >= 1, got n={n}, C={C}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if not 0 < pre_focus < 1:
            raise ValueError(f"pre_focus must lie in (0, 1), got {pre_focus}")
        self.n, self.C, self.iters, self.eps, self.backend = n, C, iters, eps, backend
        k = coefficient_count(n)
        self.phi = nn.Parameter(torch.randn(n * C, k) / math.sqrt(n * C))
        self.alpha = nn.Parameter(torch.full((3,), float(alpha_init)))
        bias = torch.zeros(k)
        pick = layer_index % n
        rest = (1 - pre_focus) / (n - 1) if n > 1 else pre_focus
        bias[:n] = _logit(rest)
        bias[pick] = _logit(pre_focus)
        bias[2 * n :] = identity_logits(n, res_diag).flatten()
        self.bias = nn.Parameter(bias)

    def _ops(self):
        """The contract's functions for this backend: the reference here, or the Triton kernels."""
        if self.backend == "triton":
            from . import kernels

            return kernels
        return sys.modules[__name__]

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self._ops().mhc_coefficients(x, self.phi, self.bias, self.alpha, self.iters, self.eps)

    def pre(self, x: Tensor, h_pre: Tensor) -> Tensor:
        return self._ops().mhc_pre(x, h_pre)

    def post_res(self, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
        return self._ops().mhc_post_res(x, f, h_post, h_res)

    def forward(self, x: Tensor, layer) -> Tensor:
        """x (..., n, C) → x_next; the Triton backend runs the whole connection fused."""
        if self.backend != "triton":
            return super().forward(x, layer)
        from .kernels import mhc_connection

        self.check_input(x)
        out, h_res = mhc_connection(x, self.phi, self.bias, self.alpha, layer, self.iters, self.eps)
        if self.record:
            self.last_h_res = h_res
        return out

    def extra_repr(self) -> str:
        return f"n={self.n}, C={self.C}, iters={self.iters}, backend={self.backend!r}"

