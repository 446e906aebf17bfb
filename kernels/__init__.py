"""Fused Triton kernels for mHC, installed and imported as ``mhc_course.kernels``.

The contract's functions (``mhc_coefficients``, ``mhc_pre``, ``mhc_post_res``) with the same
signatures as the PyTorch reference in ``mhc_course.mhc``, and ``mhc_connection``, the whole
connection around a sublayer in the fewest passes over memory (used by
``MHC(..., backend="triton")``).

Without CUDA, Triton runs kernels in its interpreter (fp32 only). The switch,
``TRITON_INTERPRET=1``, must be set before triton is first imported: ``import mhc_course``
sets it (unless already set), so import mhc_course before triton.
"""

from .connection import mhc_connection
from .ops import mhc_coefficients, mhc_post_res, mhc_pre

__all__ = ["mhc_coefficients", "mhc_connection", "mhc_post_res", "mhc_pre"]
