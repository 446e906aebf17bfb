"""Lesson 08's checks: pass on the solutions, explain plausible wrong answers, wait for unfinished ones."""

import torch

from mhc_course.exercises.l08_training import (
    check_composite_forward_gain,
    check_floor_overhead,
    check_overhead_percent,
    solution_composite_forward_gain,
    solution_floor_overhead,
    solution_overhead_percent,
)
from mhc_course.metrics import amax_gain, composite

from .exercise_contract import assert_exercise_contract

CHECKS = ((check_composite_forward_gain, solution_composite_forward_gain),
          (check_overhead_percent, solution_overhead_percent), (check_floor_overhead, solution_floor_overhead))


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract(CHECKS)


def test_composite_gain_wrong_answers():
    fb = check_composite_forward_gain(lambda maps: amax_gain(composite(maps[::-1]))[0].mean())
    assert fb.passed is False and "wrong order" in fb.message and fb.hint
    fb = check_composite_forward_gain(lambda maps: torch.stack([amax_gain(m)[0] for m in maps]).prod(0).mean())
    assert fb.passed is False and "upper bound" in fb.message
    fb = check_composite_forward_gain(lambda maps: amax_gain(composite(maps))[1].mean())
    assert fb.passed is False and "backward" in fb.message
    fb = check_composite_forward_gain(lambda maps: amax_gain(composite([m.mean((0, 1)) for m in maps]))[0])
    assert fb.passed is False and "differs" in fb.message  # averaged the matrices before taking the gain
    fb = check_composite_forward_gain(lambda maps: amax_gain(composite(maps))[0])  # no average over tokens
    assert fb.passed is False and "shape" in fb.message
    fb = check_composite_forward_gain(lambda maps: 1 / 0)
    assert fb.passed is False and "ZeroDivisionError" in fb.message


def test_overhead_percent_wrong_answers():
    fb = check_overhead_percent(lambda t, t0: 100 * t / t0)
    assert fb.passed is False and "subtract the baseline" in fb.message
    fb = check_overhead_percent(lambda t, t0: (t - t0) / t0)
    assert fb.passed is False and "multiply by 100" in fb.message
    fb = check_overhead_percent(lambda t, t0: 100 * (t - t0) / t)
    assert fb.passed is False and "divide by the baseline" in fb.message
    fb = check_overhead_percent(lambda t, t0: f"{t / t0:.0%}")
    assert fb.passed is False and "number" in fb.message


def test_floor_overhead_wrong_answers():
    def all_bytes(n, C, depth, tokens, element_bytes, bandwidth_gbs, residual_step_s):
        return 2 * depth * tokens * (6 * n + 5) * C * element_bytes / (bandwidth_gbs * 1e9) / residual_step_s

    def one_per_block(n, C, depth, tokens, element_bytes, bandwidth_gbs, residual_step_s):
        return solution_floor_overhead(n, C, depth, tokens, element_bytes, bandwidth_gbs, residual_step_s) / 2

    def forward_only(n, C, depth, tokens, element_bytes, bandwidth_gbs, residual_step_s):
        return 2 * depth * tokens * ((3 * n + 2) - 3) * C * element_bytes / (bandwidth_gbs * 1e9) / residual_step_s

    fb = check_floor_overhead(all_bytes)
    assert fb.passed is False and "subtract the 6·C" in fb.message
    fb = check_floor_overhead(one_per_block)
    assert fb.passed is False and "two connections" in fb.message
    fb = check_floor_overhead(forward_only)
    assert fb.passed is False and "expected" in fb.message and fb.hint
    fb = check_floor_overhead(lambda *a, **k: 100 * solution_floor_overhead(*a, **k))
    assert fb.passed is False and "percent" in fb.message
