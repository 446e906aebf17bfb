"""Lesson 05's checks: pass on the solutions, explain plausible wrong answers, wait for unfinished ones."""

import torch

from mhc_course import amax_gain, mhc_coefficients, sinkhorn_knopp
from mhc_course.exercises.l05_mhc_layer import (
    check_acting_gains,
    check_coefficient_logits,
    check_post_res,
    solution_acting_gains,
    solution_coefficient_logits,
    solution_post_res,
)
from mhc_course.mhc import coefficient_count

from .exercise_contract import assert_exercise_contract


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract([
        (check_coefficient_logits, solution_coefficient_logits),
        (check_post_res, solution_post_res),
        (check_acting_gains, solution_acting_gains),
    ])


def test_coefficient_logits_solution_gives_the_contract():
    n, c = 4, 5
    k = coefficient_count(n)
    x, phi = torch.randn(3, n, c, dtype=torch.float64), torch.randn(n * c, k, dtype=torch.float64)
    bias, alpha = torch.randn(k, dtype=torch.float64), torch.rand(3, dtype=torch.float64)
    pre, post, res = solution_coefficient_logits(x, phi, bias, alpha)
    h_pre, h_post, h_res = mhc_coefficients(x, phi, bias, alpha)
    torch.testing.assert_close(torch.sigmoid(pre), h_pre)
    torch.testing.assert_close(2 * torch.sigmoid(post), h_post)
    torch.testing.assert_close(sinkhorn_knopp(res), h_res)


def test_coefficient_logits_wrong_answers():
    def per_stream_norm(x, phi, bias, alpha):  # HC-style: each stream normalised on its own
        n = x.shape[-2]
        xn = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-6)
        z = xn.flatten(-2) @ phi
        return (alpha[0] * z[..., :n] + bias[:n], alpha[1] * z[..., n : 2 * n] + bias[n : 2 * n],
                (alpha[2] * z[..., 2 * n :] + bias[2 * n :]).unflatten(-1, (n, n)))

    def one_gate(x, phi, bias, alpha):  # α_pre used for every group
        return solution_coefficient_logits(x, phi, bias, alpha[0].expand(3))

    def column_major_res(x, phi, bias, alpha):
        pre, post, res = solution_coefficient_logits(x, phi, bias, alpha)
        return pre, post, res.mT

    def two_outputs(x, phi, bias, alpha):
        return solution_coefficient_logits(x, phi, bias, alpha)[:2]

    for wrong, says in ((per_stream_norm, "H̃_pre"), (one_gate, "H̃_post"), (column_major_res, "H̃_res"),
                        (two_outputs, "tuple of three")):
        fb = check_coefficient_logits(wrong)
        assert fb.passed is False, wrong.__name__
        assert says in fb.message and fb.hint, (wrong.__name__, fb.message)


def test_post_res_wrong_answers():
    def transposed(x, f, h_post, h_res):
        return h_res.mT @ x + h_post.unsqueeze(-1) * f.unsqueeze(-2)

    def post_on_input(x, f, h_post, h_res):
        return h_res @ x + f.unsqueeze(-2)

    def wrong_shape(x, f, h_post, h_res):
        return (h_res @ x).sum(-2)

    for wrong in (transposed, post_on_input):
        fb = check_post_res(wrong)
        assert fb.passed is False and "x_next differs at index" in fb.message, wrong.__name__
    fb = check_post_res(wrong_shape)
    assert fb.passed is False and "has shape (3, 2, 5); expected (3, 2, 4, 5)" in fb.message


def test_acting_gains_wrong_answers():
    fb = check_acting_gains(lambda comb: amax_gain(comb))  # forgot the transpose
    assert fb.passed is False and "forward gain differs" in fb.message
    fb = check_acting_gains(lambda comb: (comb.sum(-2).amax(-1), comb.sum(-1).amax(-1)))  # no absolute values
    assert fb.passed is False
    fb = check_acting_gains(lambda comb: amax_gain(comb.mT)[0])
    assert fb.passed is False and "tuple of two" in fb.message


def test_learner_exception_is_reported():
    fb = check_post_res(lambda x, f, h_post, h_res: x @ f)
    assert fb.passed is False and "raised RuntimeError" in fb.message
