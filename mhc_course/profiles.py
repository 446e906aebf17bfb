"""One switch sizes everything: ``MHC_COURSE_PROFILE`` = ``ci`` | ``default`` | ``gpu``.

``ci`` is tiny (nbval in CI runs every lesson in seconds), ``default`` fits a laptop CPU
(minutes), ``gpu`` uses full sizes. Lessons ask ``pick(ci=..., default=..., gpu=...)``.
"""

from __future__ import annotations

import os
from typing import TypeVar

PROFILES = ("ci", "default", "gpu")
T = TypeVar("T")


def profile() -> str:
    """The active profile, read from the environment each call."""
    name = os.environ.get("MHC_COURSE_PROFILE", "default").strip().lower() or "default"
    if name not in PROFILES:
        raise ValueError(f"MHC_COURSE_PROFILE must be one of {PROFILES}, got {name!r}")
    return name


def pick(*, ci: T, default: T, gpu: T | None = None) -> T:
    """The value for the active profile; ``gpu`` falls back to ``default`` when not given."""
    name = profile()
    if name == "ci":
        return ci
    if name == "gpu" and gpu is not None:
        return gpu
    return default
