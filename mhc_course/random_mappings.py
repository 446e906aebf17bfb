"""Residual mappings as training might leave them: the identity, drifted by random noise.

Lessons use these to compare constrained and unconstrained mixing without training a model.
HC's mapping is the identity plus noise, nothing holding it back; mHC's is the Sinkhorn–Knopp
projection of identity-leaning logits plus noise, so it stays doubly stochastic however far
it drifts. Both return (depth, tokens, n, n): one matrix per layer and token.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .mhc import identity_logits
from .sinkhorn import sinkhorn_knopp


def _noise(depth: int, tokens: int, n: int, generator: torch.Generator | None, dtype: torch.dtype) -> Tensor:
    if depth < 1 or tokens < 1 or n < 1:
        raise ValueError(f"depth, tokens and n must be >= 1, got depth={depth}, tokens={tokens}, n={n}")
    return torch.randn(depth, tokens, n, n, generator=generator, dtype=dtype)


def hc_mappings(depth: int, n: int, drift: float, *, tokens: int = 1, generator: torch.Generator | None = None,
                dtype: torch.dtype = torch.float64) -> Tensor:
    """Unconstrained HC mixing: I + drift·G with G standard normal, per layer and token."""
    return torch.eye(n, dtype=dtype) + drift * _noise(depth, tokens, n, generator, dtype)


def mhc_mappings(depth: int, n: int, drift: float, *, tokens: int = 1, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float64, res_diag: float = 0.95, iters: int = 20) -> Tensor:
    """mHC mixing: Sinkhorn–Knopp(identity logits + drift·G), the logits of ``MHC``'s initialisation."""
    logits = identity_logits(n, res_diag).to(dtype) + drift * _noise(depth, tokens, n, generator, dtype)
    return sinkhorn_knopp(logits, iters)
