"""Fused Triton kernels for mHC, installed and imported as ``mhc_course.kernels``.

Without CUDA, Triton runs kernels in its interpreter (fp32 only): importing this package sets
``TRITON_INTERPRET=1`` before any kernel is defined, unless the variable is already set.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
