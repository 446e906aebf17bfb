"""Lesson 01's checks: solutions pass, plausible mistakes fail with a useful message, blanks are not attempted."""

import torch

from mhc_course.exercises.l01_residual import (
    check_activation_and_gradient_rms,
    check_residual_update,
    check_rms_norm,
    solution_activation_and_gradient_rms,
    solution_residual_update,
    solution_rms_norm,
)
from mhc_course.metrics import rms

from .exercise_contract import assert_exercise_contract


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract([
        (check_rms_norm, solution_rms_norm),
        (check_residual_update, solution_residual_update),
        (check_activation_and_gradient_rms, solution_activation_and_gradient_rms),
    ])


def test_rms_norm_mistakes():
    eps_outside = lambda h, eps: h / (h.square().mean(-1, keepdim=True).sqrt() + eps)
    whole_tensor = lambda h, eps: h * torch.rsqrt(h.square().mean() + eps)
    no_keepdim = lambda h, eps: h * torch.rsqrt(h.square().mean(-1) + eps)
    for wrong in (eps_outside, whole_tensor):
        fb = check_rms_norm(wrong)
        assert fb.passed is False and "differs at index" in fb.message and fb.hint
    fb = check_rms_norm(no_keepdim)
    assert fb.passed is False and "raised RuntimeError" in fb.message


def test_residual_update_mistakes():
    def swapped(h, f, norm, placement):
        if placement == "post-norm":
            return h + f(norm(h))
        return solution_residual_update(h, f, norm, placement)

    fb = check_residual_update(swapped)
    assert fb.passed is False and "'post-norm' update" in fb.message

    def norm_on_skip(h, f, norm, placement):
        if placement == "pre-norm":
            return norm(h) + f(norm(h))
        return solution_residual_update(h, f, norm, placement)

    fb = check_residual_update(norm_on_skip)
    assert fb.passed is False and "'pre-norm' update" in fb.message


def test_activation_and_gradient_rms_mistakes():
    def reversed_order(blocks, x, readout):
        act, grad = solution_activation_and_gradient_rms(blocks, x, readout)
        return act, grad.flip(0)

    fb = check_activation_and_gradient_rms(reversed_order)
    assert fb.passed is False and "reverse order" in fb.message

    def without_input(blocks, x, readout):
        act, grad = solution_activation_and_gradient_rms(blocks, x, readout)
        return act[1:], grad[1:]

    fb = check_activation_and_gradient_rms(without_input)
    assert fb.passed is False and "shape (12,)" in fb.message and "expected (13,)" in fb.message

    def mean_loss(blocks, x, readout):  # a different loss scales every gradient
        hs = [x.detach().requires_grad_(True)]
        for b in blocks:
            hs.append(b(hs[-1]))
        grads = torch.autograd.grad((hs[-1] * readout).mean(), hs)
        return torch.stack([rms(h.detach()) for h in hs]), torch.stack([rms(g) for g in grads])

    fb = check_activation_and_gradient_rms(mean_loss)
    assert fb.passed is False and "gradient RMS differs" in fb.message

    fb = check_activation_and_gradient_rms(lambda blocks, x, readout: [1.0, 2.0, 3.0])
    assert fb.passed is False and "pair" in fb.message
