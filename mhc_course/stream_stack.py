"""n-stream connections around a stack of pre-norm blocks: expand once, connect every block, collapse once.

A ``PreNormResidual`` block computes h + F(norm(h)). Any connection (``Residual``,
``HyperConnection``, ``MHC``) can carry n streams past the same branch h ↦ F(norm(h)), which
makes it easy to compare a connection with the plain residual stack it replaces:

    x = conns[0].expand(h_0)                     (..., C) → (..., n, C), n copies
    x = conns[l](x, branch_l)  for every block   (..., n, C) → (..., n, C)

The streams are expanded once before the first block and collapsed once after the last,
never inside a block: otherwise the mixing matrices would never compose across depth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from .residual import PreNormResidual
from .stream_connection import StreamConnection
from .validation import check_tensor


def prenorm_branch(block: PreNormResidual) -> Callable[[Tensor], Tensor]:
    """The branch of a pre-norm block, h ↦ F(norm(h)), without its skip: (..., C) → (..., C)."""
    if not isinstance(block, PreNormResidual):
        raise ValueError(f"block must be a PreNormResidual, got {type(block).__name__}")
    return lambda h: block.sublayer(block.norm(h))


def run_streams(conns: Sequence[StreamConnection], blocks: Sequence[PreNormResidual], h: Tensor) -> Tensor:
    """Expand ``h`` into n streams, pass them through ``conns[l]`` around block l's branch, for every l.

    Args:
        conns: L connections with the same n.
        blocks: L ``PreNormResidual`` blocks whose branches the connections wrap.
        h: (..., C) the embedding h_0.

    Returns:
        (..., n, C) the streams after the last block (collapse them with ``conns[0].collapse``).
    """
    check_tensor("h", h, min_dim=1)
    if len(conns) != len(blocks) or not conns:
        raise ValueError(f"conns and blocks must have the same length >= 1, got {len(conns)} and {len(blocks)}")
    x = conns[0].expand(h)
    for conn, block in zip(conns, blocks, strict=True):
        x = conn(x, prenorm_branch(block))
    return x
