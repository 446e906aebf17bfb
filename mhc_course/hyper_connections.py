"""Hyper-Connections (Zhu et al., arXiv 2409.19606), static and dynamic.

The residual stream is widened to n copies H ∈ R^{n×C}. One connection is described by
the matrix [[0, B], [A_m, A_r]]: A_m (n) mixes the streams into the layer's input, A_r (n×n)
mixes the streams with each other and B (n) spreads the layer's output back:

    h = Σ_i A_m[i]·H_i,        H'_j = B_j·T(h) + Σ_i A_r[i, j]·H_i.

In the contract's notation (``mhc_pre``, ``mhc_post_res``) that is h_pre = A_m,
h_post = B and h_res = A_rᵀ: HC's A_r multiplies from the right, so the mixing matrix
that acts on the streams, the one whose products across depth matter, is its transpose.

Dynamic HC adds token-dependent terms computed from H̄ = norm(H), one norm per stream:

    A_m(H) = s_α·tanh(H̄ W_m) + A_m,  A_r(H) = s_α·tanh(H̄ W_r) + A_r,  B(H) = s_β·tanh(H̄ W_β)ᵀ + B.

Initialisation (the paper's): W = 0, A_m = e_{k mod n} for layer k, A_r = I, B = 1. All
streams start as copies of the embedding; each layer reads one copy and adds its output to
every copy, so the copies stay equal and each equals a pre-norm residual stream.
Nothing bounds A_r once training moves it: that is the problem mHC solves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .mhc import mhc_post_res, mhc_pre
from .norm import RMSNorm
from .stream_connection import StreamConnection


class HyperConnection(StreamConnection):
    """Static (``dynamic=False``) or dynamic Hyper-Connections around one sublayer.

    Parameters: ``A_m`` (n,), ``A_r`` (n, n), ``B`` (n,); dynamic adds ``norm`` (RMSNorm over
    C with a learned weight), ``W_m`` (C,), ``W_r`` (C, n), ``W_beta`` (C,) and the scalar
    scales ``s_alpha``, ``s_beta``. The paper leaves the scales' start open; we start them
    at 0.01, like mHC's gates.
    """

    def __init__(
        self, n: int, C: int, *, layer_index: int = 0, dynamic: bool = True, scale_init: float = 0.01,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if n < 1 or C < 1:
            raise ValueError(f"n and C must be >= 1, got n={n}, C={C}")
        self.n, self.C, self.dynamic = n, C, dynamic
        self.A_m = nn.Parameter(torch.eye(n)[layer_index % n].clone())
        self.A_r = nn.Parameter(torch.eye(n))
        self.B = nn.Parameter(torch.ones(n))
        if dynamic:
            self.norm = RMSNorm(C, eps=norm_eps)
            self.W_m = nn.Parameter(torch.zeros(C))
            self.W_r = nn.Parameter(torch.zeros(C, n))
            self.W_beta = nn.Parameter(torch.zeros(C))
            self.s_alpha = nn.Parameter(torch.tensor(float(scale_init)))
            self.s_beta = nn.Parameter(torch.tensor(float(scale_init)))

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """h_pre = A_m(H), h_post = B(H), h_res = A_r(H)ᵀ; static ones have no leading dims."""
        if not self.dynamic:
            return self.A_m, self.B, self.A_r.T
        xb = self.norm(x)  # (..., n, C): each stream normalised on its own
        a_m = self.s_alpha * torch.tanh(xb @ self.W_m) + self.A_m
        a_r = self.s_alpha * torch.tanh(xb @ self.W_r) + self.A_r
        b = self.s_beta * torch.tanh(xb @ self.W_beta) + self.B
        return a_m, b, a_r.transpose(-1, -2)

    def pre(self, x: Tensor, h_pre: Tensor) -> Tensor:
        return mhc_pre(x, h_pre)

    def post_res(self, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
        return mhc_post_res(x, f, h_post, h_res)

    def extra_repr(self) -> str:
        return f"n={self.n}, C={self.C}, dynamic={self.dynamic}"
