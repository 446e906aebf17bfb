"""The interface shared by every connection: residual, Hyper-Connections and mHC.

A connection wraps one sublayer F (attention or MLP, with its own pre-norm inside) and
carries n residual streams x of shape (..., n, C) past it:

    h_pre, h_post, h_res = coefficients(x)
    x_next = h_res · x + h_post ⊗ F(h_pre · x)

A plain residual is the case n = 1, h_pre = h_post = 1, h_res = I. Because all three share
this form, a model switches between them by name (see ``connections.make_connection``) and
the metrics read ``h_res`` from any of them the same way.

The model expands its embedding into n streams once (``expand``) and sums them back once
before the final norm (``collapse``), never inside a block: otherwise the mixing matrices
would never compose across depth.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.autograd import Function

from .validation import check_streams, check_tensor

Layer = Callable[[Tensor], Tensor]


def _copies(t: Tensor, n: int) -> Tensor:
    """(..., C) → (..., n, C) holding n copies of t, written as one concatenation along C: a
    vectorised copy on the GPU, where ``expand(...).contiguous()`` reads a broadcast view
    element by element (0.17 against 0.09 ms per call in bench_model's step on an H100,
    benchmarks/NOTES.md)."""
    return torch.cat([t] * n, dim=-1).view(*t.shape[:-1], n, t.shape[-1])


class _Expand(Function):
    @staticmethod
    def forward(ctx, h, n):
        return _copies(h, n)

    @staticmethod
    def backward(ctx, g):
        return g.sum(dim=-2), None


class _Collapse(Function):
    """x.sum(dim=-2) whose gradient, n copies of the incoming one, is written out contiguous,
    so the last connection's backward need not copy a broadcast view."""

    @staticmethod
    def forward(ctx, x):
        ctx.n = x.shape[-2]
        return x.sum(dim=-2)

    @staticmethod
    def backward(ctx, g):
        return _copies(g, ctx.n)


class StreamConnection(nn.Module):
    """Base class: subclasses set ``self.n`` and implement ``coefficients``, ``pre``, ``post_res``."""

    n: int

    def __init__(self) -> None:
        super().__init__()
        self.record = False
        self.last_h_res: Tensor | None = None

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(h_pre (..., n), h_post (..., n), h_res (..., n, n)) for streams x (..., n, C)."""
        raise NotImplementedError

    def pre(self, x: Tensor, h_pre: Tensor) -> Tensor:
        """The layer input (..., C) = Σ_i h_pre[i]·x[i]."""
        raise NotImplementedError

    def post_res(self, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
        """x_next (..., n, C) = h_res·x + h_post ⊗ f."""
        raise NotImplementedError

    def check_input(self, x: Tensor) -> None:
        """x must be (..., n, C) with this connection's n."""
        n, _ = check_streams("x", x)
        if n != self.n:
            raise ValueError(f"x has {n} streams but this connection has n={self.n} (x shape {tuple(x.shape)})")

    def forward(self, x: Tensor, layer: Layer) -> Tensor:
        """x (..., n, C) → x_next (..., n, C); ``layer`` maps (..., C) → (..., C)."""
        self.check_input(x)
        h_pre, h_post, h_res = self.coefficients(x)
        if self.record:
            self.last_h_res = h_res.detach()
        f = layer(self.pre(x, h_pre))
        return self.post_res(x, f, h_post, h_res)

    def expand(self, h: Tensor) -> Tensor:
        """(..., C) → (..., n, C): every stream starts as a copy of the embedding (with n = 1, a
        view: nothing to copy or to sum in the backward)."""
        check_tensor("h", h, min_dim=1)
        return h.unsqueeze(-2) if self.n == 1 else _Expand.apply(h, self.n)

    def collapse(self, x: Tensor) -> Tensor:
        """(..., n, C) → (..., C): the streams are summed before the final norm (one stream: a view)."""
        check_streams("x", x)
        return x.squeeze(-2) if x.shape[-2] == 1 else _Collapse.apply(x)
