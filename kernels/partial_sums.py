"""The backward's partial sums, added up in one launch.

The channel pass leaves dφ as one partial per token split, (splits, M); the token pass leaves
db and dα as one partial per program, stored transposed as (W, P) so that each of the W sums
reads one contiguous row. One kernel adds both in a fixed order (deterministic): its first
⌈M / BLOCK⌉ programs each sum a block of dφ over the splits, the next W programs each sum one
row of the token pass's partials. Two torch reductions did the same in two launches, the one over
the (P, W) rows slowly for its few columns (benchmarks/NOTES.md, eighth session).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .layout import cdiv

BLOCK = 1024


@triton.jit
def partial_sums_kernel(dphi_parts_ptr, parts_ptr, dphi_ptr, sums_ptr, SPLITS, M, P,
                        BLOCK: tl.constexpr, PBLOCK: tl.constexpr):
    pid = tl.program_id(0)
    blocks_of_m = tl.cdiv(M, BLOCK)
    if pid < blocks_of_m:
        i = pid * BLOCK + tl.arange(0, BLOCK)
        m = i < M
        src = dphi_parts_ptr + i
        total = tl.zeros((BLOCK,), dtype=tl.float32)
        for _ in range(SPLITS):
            total += tl.load(src, mask=m, other=0.0)
            src += M
        tl.store(dphi_ptr + i, total, mask=m)
    else:  # the compiler needs names bound in both branches to agree in shape: a name of its own
        row = (pid - blocks_of_m).to(tl.int64)
        row_total = tl.zeros((PBLOCK,), dtype=tl.float32)
        for p0 in range(0, P, PBLOCK):
            j = p0 + tl.arange(0, PBLOCK)
            row_total += tl.load(parts_ptr + row * P + j, mask=j < P, other=0.0)
        tl.store(sums_ptr + row, tl.sum(row_total, axis=0))


def sum_partials(dphi_parts: Tensor, parts: Tensor) -> tuple[Tensor, Tensor]:
    """dphi_parts (splits, *shape) → their sum (*shape); parts (W, P) → their row sums (W,). float32, contiguous."""
    for name, t, ok in (("dphi_parts", dphi_parts, dphi_parts.dim() >= 2), ("parts", parts, parts.dim() == 2)):
        if t.dtype != torch.float32 or not t.is_contiguous() or not ok:
            raise ValueError(f"{name} must be a contiguous float32 tensor, (splits, ...) for dphi_parts and (W, P) "
                             f"for parts, got {name} {t.dtype} of shape {tuple(t.shape)}")
    splits, M = dphi_parts.shape[0], dphi_parts[0].numel()
    W, P = parts.shape
    dphi = torch.empty(dphi_parts.shape[1:], device=dphi_parts.device, dtype=torch.float32)
    sums = torch.empty(W, device=parts.device, dtype=torch.float32)
    partial_sums_kernel[(cdiv(M, BLOCK) + W,)](
        dphi_parts, parts, dphi, sums, splits, M, P,
        BLOCK=BLOCK, PBLOCK=min(1024, triton.next_power_of_2(P)), num_warps=4,
    )
    return dphi, sums
