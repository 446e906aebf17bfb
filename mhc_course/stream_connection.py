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

from torch import Tensor, nn

from .validation import check_streams, check_tensor

Layer = Callable[[Tensor], Tensor]


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
        """(..., C) → (..., n, C): every stream starts as a copy of the embedding."""
        check_tensor("h", h, min_dim=1)
        return h.unsqueeze(-2).expand(*h.shape[:-1], self.n, h.shape[-1]).contiguous()

    def collapse(self, x: Tensor) -> Tensor:
        """(..., n, C) → (..., C): the streams are summed before the final norm."""
        check_streams("x", x)
        return x.sum(dim=-2)
