"""Plain residual connections: the baseline that HC and mHC widen.

``Residual`` is the connection interface's n = 1 case (h_pre = h_post = 1, h_res = I): with a
sublayer that normalises its own input it is the pre-norm residual x + F(norm(x)).
``PreNormResidual`` and ``PostNormResidual`` wrap a sublayer directly and differ only in where
the norm sits: before the sublayer, leaving the identity path untouched, or after the sum,
where it rescales the identity path at every layer.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .stream_connection import StreamConnection


class Residual(StreamConnection):
    """x_next = x + F(x) on a single stream: x is (..., 1, C)."""

    def __init__(self, n: int = 1) -> None:
        super().__init__()
        if n != 1:
            raise ValueError(f"a plain residual connection has one stream, got n={n}")
        self.n = 1

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        one = torch.ones(1, dtype=torch.float32, device=x.device)
        return one, one, one.view(1, 1)

    def pre(self, x: Tensor, h_pre: Tensor) -> Tensor:
        # a view whose backward is a view too: x[..., 0, :] would make autograd allocate zeros
        # and copy the gradient into them at every layer (a fill and a device copy of T·C each)
        return x.squeeze(-2)

    def post_res(self, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
        return x + f.unsqueeze(-2)


class PreNormResidual(nn.Module):
    """h → h + F(norm(h)) for h of shape (..., C)."""

    def __init__(self, sublayer: nn.Module, C: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.sublayer, self.norm = sublayer, nn.RMSNorm(C, eps=eps)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.sublayer(self.norm(h))


class PostNormResidual(nn.Module):
    """h → norm(h + F(h)) for h of shape (..., C), as in the original Transformer."""

    def __init__(self, sublayer: nn.Module, C: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.sublayer, self.norm = sublayer, nn.RMSNorm(C, eps=eps)

    def forward(self, h: Tensor) -> Tensor:
        return self.norm(h + self.sublayer(h))
