"""Fused Triton kernels for mHC, installed and imported as ``mhc_course.kernels``.

The contract's functions (``mhc_coefficients``, ``mhc_pre``, ``mhc_post_res``) with the same
signatures as the PyTorch reference in ``mhc_course.mhc``, and ``mhc_connection``, the whole
connection around a sublayer in the fewest passes over memory (used by
``MHC(..., backend="triton")``).

Without CUDA, Triton runs kernels in its interpreter (fp32 only): importing this package sets
``TRITON_INTERPRET=1`` before any kernel is defined, unless the variable is already set.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from .connection import mhc_connection  # noqa: E402
from .ops import mhc_coefficients, mhc_post_res, mhc_pre  # noqa: E402

__all__ = ["mhc_coefficients", "mhc_connection", "mhc_post_res", "mhc_pre"]
