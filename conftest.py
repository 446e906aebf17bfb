"""Tests and lessons run at the tiny ``ci`` profile unless the caller chose another."""

import os

os.environ.setdefault("MHC_COURSE_PROFILE", "ci")
