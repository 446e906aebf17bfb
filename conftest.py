"""Tests and lessons run at the tiny ``ci`` profile unless the caller chose another.

mhc_course is imported before any test module can import triton, so that on a machine without
CUDA Triton's interpreter is switched on in time (see mhc_course/__init__.py).
"""

import os

os.environ.setdefault("MHC_COURSE_PROFILE", "ci")

import mhc_course  # noqa: E402, F401
