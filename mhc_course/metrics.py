"""Gains of residual mappings: the paper's "Amax Gain Magnitude" and composites over depth.

For a mapping M acting on the streams (x ↦ M·x), the largest absolute row sum bounds how
much the forward signal can grow (‖M‖_∞) and the largest absolute column sum how much the
gradient flowing back can grow (‖M‖_1). Across layers the identity path is the product of
the per-layer mappings, later layers on the left; its gains are the composite gains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .validation import check_square, check_tensor, compute_dtype


def amax_gain(m: Tensor) -> tuple[Tensor, Tensor]:
    """(forward, backward) gain of each matrix: max |row sum| and max |column sum|.

    Args:
        m: (..., n, n).

    Returns:
        two tensors of shape (...); no reduction over leading dims.
    """
    m = check_square("m", m)
    a = m.abs()
    return a.sum(dim=-1).amax(dim=-1), a.sum(dim=-2).amax(dim=-1)


def _as_list(mats: Sequence[Tensor] | Tensor) -> list[Tensor]:
    items = list(mats.unbind(0)) if isinstance(mats, Tensor) else list(mats)
    if not items:
        raise ValueError("mats must hold at least one matrix, got none")
    for i, m in enumerate(items):
        check_square(f"mats[{i}]", m)
        if m.shape[-1] != items[0].shape[-1]:
            raise ValueError(
                f"mats[{i}] has shape {tuple(m.shape)} but mats[0] has {tuple(items[0].shape)}: n must agree"
            )
    return items


def composite_prefixes(mats: Sequence[Tensor] | Tensor) -> list[Tensor]:
    """[M_0, M_1·M_0, …, M_{L-1}···M_0]: the identity path after each layer.

    Args:
        mats: L matrices (..., n, n) in layer order, or one tensor (L, ..., n, n).
    """
    items = _as_list(mats)
    out = [items[0]]
    for m in items[1:]:
        out.append(m @ out[-1])
    return out


def composite(mats: Sequence[Tensor] | Tensor) -> Tensor:
    """mats[-1] @ … @ mats[0]: the whole identity path (..., n, n), later layers on the left."""
    return composite_prefixes(mats)[-1]


def gain_profile(mats: Sequence[Tensor] | Tensor) -> dict[str, Tensor]:
    """Per-layer and composite gains, each averaged over every leading (token) dim.

    Returns a dict of four tensors of shape (L,): ``layer_fwd``, ``layer_bwd`` (each layer's
    own mapping) and ``composite_fwd``, ``composite_bwd`` (the product up to that layer).
    """
    items = _as_list(mats)

    def mean_gains(ms: list[Tensor]) -> tuple[Tensor, Tensor]:
        pairs = [amax_gain(m.to(torch.float64)) for m in ms]
        return (torch.stack([f.mean() for f, _ in pairs]), torch.stack([b.mean() for _, b in pairs]))

    lf, lb = mean_gains(items)
    cf, cb = mean_gains(composite_prefixes(items))
    return {"layer_fwd": lf, "layer_bwd": lb, "composite_fwd": cf, "composite_bwd": cb}


def rms(t: Tensor) -> Tensor:
    """Root mean square of every entry of ``t`` (any shape): a signal's or gradient's size per entry.

    Unlike a norm it does not grow with the number of entries, so activations of width C and a
    batch of tokens compare directly with a unit-variance input (RMS ≈ 1). Returns a 0-dim
    tensor in at least float32, computed in float64 when ``t`` is float64.
    """
    t = check_tensor("t", t)
    if t.numel() == 0:
        raise ValueError(f"t must have at least one entry, got shape {tuple(t.shape)}")
    return t.to(compute_dtype(t)).square().mean().sqrt()
