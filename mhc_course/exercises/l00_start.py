"""Lesson 00's exercises: compounding a per-layer gain."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .checking import Feedback, attempt, compare_tensors


def solution_composite_gain(gains: torch.Tensor) -> torch.Tensor:
    """Total gain after layers with the given per-layer gains: their product."""
    return torch.prod(gains)


def solution_doubling_depth(gain: float) -> int:
    """Fewest layers after which gain**L reaches 2."""
    return math.ceil(math.log(2) / math.log(gain))


def check_composite_gain(fn: Callable[[torch.Tensor], torch.Tensor]) -> Feedback:
    name = "Exercise 0.1 (composite gain)"
    hint = "Each layer multiplies the signal by its gain; what does a chain of multiplications give?"
    gains = 1 + 0.1 * torch.randn(37, dtype=torch.float64)
    got, fb = attempt(name, fn, gains.clone(), hint=hint)
    if fb:
        return fb
    if isinstance(got, (int, float)):
        got = torch.tensor(float(got), dtype=torch.float64)
    return compare_tensors(name, got, solution_composite_gain(gains), hint=hint, rtol=1e-9, what="composite gain")


def check_doubling_depth(fn: Callable[[float], int]) -> Feedback:
    name = "Exercise 0.2 (doubling depth)"
    hint = "Solve gain**L >= 2 for L with logarithms, then round up to a whole layer."
    for gain in (1.01, 1.05, 1.003, 1.5):
        got, fb = attempt(name, fn, gain, hint=hint)
        if fb:
            return fb
        want = solution_doubling_depth(gain)
        if got != want:
            return Feedback(name, False, f"For gain {gain} you gave L = {got!r}; expected {want} "
                            f"({gain}**{want} = {gain**want:.4f}).", hint)
    return Feedback(name, True, "Right for gains 1.01, 1.05, 1.003 and 1.5.")
