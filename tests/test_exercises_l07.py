"""Lesson 07's checks: pass on the solutions, explain plausible wrong answers, wait for unfinished ones."""

import math

import torch

from mhc_course.exercises.l07_memory import (
    check_kept_values,
    check_paper_group_size,
    check_recompute_streams,
    solution_kept_values,
    solution_paper_group_size,
    solution_recompute_streams,
)
from mhc_course.mhc import mhc_coefficients

from .exercise_contract import assert_exercise_contract

CHECKS = ((check_paper_group_size, solution_paper_group_size), (check_kept_values, solution_kept_values),
          (check_recompute_streams, solution_recompute_streams))


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract(CHECKS)


def test_paper_group_size_wrong_answers():
    fb = check_paper_group_size(lambda n, L: round(math.sqrt(L)))  # this implementation's optimum, not the paper's
    assert fb.passed is False and "expected" in fb.message and fb.hint
    fb = check_paper_group_size(lambda n, L: math.sqrt(n * L / (n + 2)))  # not rounded
    assert fb.passed is False and "int" in fb.message
    fb = check_paper_group_size(lambda n, L: math.floor(math.sqrt(n * L / (n + 2))))  # rounds down
    assert fb.passed is False and "L = 12 you gave L_r = 2; expected 3" in fb.message
    fb = check_paper_group_size(lambda n, L: round(math.sqrt(L * (n + 2) / n)))  # the ratio upside down
    assert fb.passed is False


def test_kept_values_wrong_answers():
    fb = check_kept_values(lambda L, n, C, g: L // g * n * C + L * C)  # floor: forgets the short last group
    assert fb.passed is False and "L_r = 5" in fb.message
    fb = check_kept_values(lambda L, n, C, g: math.ceil(L / g) * n * C)  # forgets f_l
    assert fb.passed is False
    fb = check_kept_values(lambda L, n, C, g: L * n * C + L * C)  # keeps every x_l
    assert fb.passed is False


def test_recompute_streams_wrong_answers():
    def transposed(x0, fs, conns):
        xs = [x0]
        for conn, f in zip(conns, fs, strict=True):
            _, h_post, h_res = mhc_coefficients(xs[-1], conn.phi, conn.bias, conn.alpha)
            xs.append(h_res.mT @ xs[-1] + h_post.unsqueeze(-1) * f.unsqueeze(-2))
        return xs

    def coefficients_from_x0(x0, fs, conns):  # the mappings depend on x_l, not only on the group's input
        h = [mhc_coefficients(x0, c.phi, c.bias, c.alpha) for c in conns]
        xs = [x0]
        for (_, h_post, h_res), f in zip(h, fs, strict=True):
            xs.append(h_res @ xs[-1] + h_post.unsqueeze(-1) * f.unsqueeze(-2))
        return xs

    def without_x0(x0, fs, conns):
        return solution_recompute_streams(x0, fs, conns)[1:]

    for wrong, first_wrong in ((transposed, "x_{l0+1}"), (coefficients_from_x0, "x_{l0+2}")):
        fb = check_recompute_streams(wrong)
        assert fb.passed is False and "differs at index" in fb.message, wrong.__name__
        assert f"Your {first_wrong} differs" in fb.message, fb.message  # layer 0's coefficients do come from x_l0
    fb = check_recompute_streams(without_x0)
    assert fb.passed is False and "m + 1 = 5" in fb.message


def test_learner_exception_is_reported():
    fb = check_recompute_streams(lambda x0, fs, conns: [x0 @ fs[0]])
    assert fb.passed is False and "raised RuntimeError" in fb.message
    fb = check_paper_group_size(lambda n, L: torch.tensor(2))
    assert fb.passed is False
