"""A sublayer run under its own autograd graph, inside another autograd Function.

The fused connection (``mhc_course.kernels.connection``) and the recomputed groups
(``mhc_course.recompute``) both call the sublayer F in their forward, keep its graph, and in
their backward run F's backward themselves, as reentrant checkpointing does, so that F's
parameters accumulate their ``.grad``. What they need back is dL/dh for F's input h.
``run_sublayer`` puts a small node in front of F that keeps the gradient it receives. Making h a
leaf and reading its ``.grad`` instead would copy that gradient whenever it is still referenced
elsewhere, as when F returns h itself (on the H100, 42 µs per call of the fused connection at
T = 16384, C = 2048: ``benchmarks/NOTES.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd import Function


class _KeepGrad(Function):
    """Identity on h whose backward appends the gradient it receives to ``box``."""

    @staticmethod
    def forward(ctx, h: Tensor, box: list[Tensor]) -> Tensor:
        ctx.box = box
        return h.view_as(h)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None]:
        ctx.box.append(grad)
        return None, None


@dataclass
class SublayerGraph:
    """f = F(h) with its autograd graph, and where dL/dh arrives when that graph's backward runs."""

    f: Tensor
    box: list[Tensor]

    def backward(self, df: Tensor) -> Tensor:
        """Run F's backward for dL/df = df (F's parameters accumulate ``.grad``); return dL/dh,
        zeros when F's output does not depend on h."""
        if self.f.requires_grad:
            torch.autograd.backward(self.f, df.to(self.f.dtype))
        return self.box[0] if self.box else torch.zeros_like(self.f)


def run_sublayer(layer: Callable[[Tensor], Tensor], h: Tensor) -> SublayerGraph:
    """F(h) under its own autograd graph (h detached from the caller's); F must keep h's shape."""
    box: list[Tensor] = []
    with torch.enable_grad():
        h_in = _KeepGrad.apply(h.detach().requires_grad_(True), box)
        f = layer(h_in)
    if f.shape != h_in.shape:
        raise ValueError(f"layer must map (..., C) to (..., C), got {tuple(h_in.shape)} → {tuple(f.shape)}")
    return SublayerGraph(f, box)
