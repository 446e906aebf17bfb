"""RMSNorm for mixed precision: ``nn.RMSNorm`` with its weight cast to the input's dtype.

torch's fused RMSNorm kernel needs input and weight of one dtype; bf16 streams with an fp32
weight fall back to a slower path (and a warning). Same parameters and state-dict keys as
``nn.RMSNorm``; in fp32 it is exactly ``nn.RMSNorm``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.RMSNorm):
    def forward(self, h: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.to(h.dtype)
        return F.rms_norm(h, self.normalized_shape, weight, self.eps)
