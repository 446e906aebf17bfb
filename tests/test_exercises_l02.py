"""Lesson 02's checks: solutions pass, plausible mistakes fail with a useful message, blanks are not attempted."""

import torch

from mhc_course.exercises.l02_hyper import (
    check_composite_gains,
    check_dynamic_hc_coefficients,
    check_static_hc_update,
    solution_composite_gains,
    solution_dynamic_hc_coefficients,
    solution_static_hc_update,
)
from mhc_course.metrics import amax_gain

from .exercise_contract import assert_exercise_contract


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract([
        (check_static_hc_update, solution_static_hc_update),
        (check_composite_gains, solution_composite_gains),
        (check_dynamic_hc_coefficients, solution_dynamic_hc_coefficients),
    ])


def test_static_update_mistakes():
    untransposed = lambda H, layer, A_m, A_r, B: solution_static_hc_update(H, layer, A_m, A_r.T, B)
    fb = check_static_hc_update(untransposed)
    assert fb.passed is False and "A_rᵀ" in fb.message and fb.hint

    no_write_back = lambda H, layer, A_m, A_r, B: torch.einsum("ij,...ic->...jc", A_r, H)
    fb = check_static_hc_update(no_write_back)
    assert fb.passed is False and "H' differs at index" in fb.message

    def layer_on_every_stream(H, layer, A_m, A_r, B):  # T applied per stream, not to the mixture
        return B[:, None] * layer(H) + torch.einsum("ij,...ic->...jc", A_r, H)

    assert check_static_hc_update(layer_on_every_stream).passed is False


def test_composite_gains_mistakes():
    def reversed_order(mats):
        return solution_composite_gains(list(mats)[::-1])

    fb = check_composite_gains(reversed_order)
    assert fb.passed is False and "wrong order" in fb.message

    fb = check_composite_gains(lambda mats: solution_composite_gains(mats)[::-1])
    assert fb.passed is False and "swapped" in fb.message

    def product_of_layer_gains(mats):
        gains = [amax_gain(m) for m in mats]
        return torch.stack([f for f, _ in gains]).prod(), torch.stack([b for _, b in gains]).prod()

    fb = check_composite_gains(product_of_layer_gains)
    assert fb.passed is False and "upper bound" in fb.message

    def without_abs(mats):
        product = mats[0]
        for m in mats[1:]:
            product = m @ product
        return product.sum(-1).max(), product.sum(-2).max()

    fb = check_composite_gains(without_abs)
    assert fb.passed is False and "gain for" in fb.message and "differs at index" in fb.message

    fb = check_composite_gains(lambda mats: 3.0)
    assert fb.passed is False and "pair" in fb.message

    fb = check_composite_gains(lambda mats: (float(amax_gain(mats[-1] @ mats[0])[0]), 1.0))
    assert fb.passed is False


def test_dynamic_coefficients_mistakes():
    def transposed(hc, H):
        a_m, a_r, b = solution_dynamic_hc_coefficients(hc, H)
        return a_m, a_r.transpose(-1, -2), b

    fb = check_dynamic_hc_coefficients(transposed)
    assert fb.passed is False and "transposed" in fb.message

    def no_norm(hc, H):
        return (hc.s_alpha * torch.tanh(H @ hc.W_m) + hc.A_m, hc.s_alpha * torch.tanh(H @ hc.W_r) + hc.A_r,
                hc.s_beta * torch.tanh(H @ hc.W_beta) + hc.B)

    fb = check_dynamic_hc_coefficients(no_norm)
    assert fb.passed is False and "A_m(H) differs" in fb.message

    def alpha_for_beta(hc, H):
        a_m, a_r, _ = solution_dynamic_hc_coefficients(hc, H)
        return a_m, a_r, hc.s_alpha * torch.tanh(hc.norm(H) @ hc.W_beta) + hc.B

    fb = check_dynamic_hc_coefficients(alpha_for_beta)
    assert fb.passed is False and "B(H) differs" in fb.message
