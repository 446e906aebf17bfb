import torch

from mhc_course.exercises.l03_doubly_stochastic import (
    check_bvn_reconstruct,
    check_is_doubly_stochastic,
    check_spectral_norm_bound,
    solution_bvn_reconstruct,
    solution_is_doubly_stochastic,
    solution_spectral_norm_bound,
)

from .exercise_contract import assert_exercise_contract


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract([
        (check_is_doubly_stochastic, solution_is_doubly_stochastic),
        (check_spectral_norm_bound, solution_spectral_norm_bound),
        (check_bvn_reconstruct, solution_bvn_reconstruct),
    ])


def test_is_doubly_stochastic_wrong_answers():
    rows_only = lambda m, tol: bool(((m.sum(-1) - 1).abs() <= tol).all())  # noqa: E731
    fb = check_is_doubly_stochastic(rows_only)
    assert fb.passed is False and "columns summing to 1 but not rows" not in fb.message
    assert "rows summing to 1 but not columns" in fb.message

    no_sign = lambda m, tol: bool(((m.sum(-1) - 1).abs() <= tol).all() and ((m.sum(-2) - 1).abs() <= tol).all())  # noqa: E731
    fb = check_is_doubly_stochastic(no_sign)
    assert fb.passed is False and "negative entry" in fb.message

    exact = lambda m, tol: bool((m >= 0).all() and (m.sum(-1) == 1).all() and (m.sum(-2) == 1).all())  # noqa: E731
    assert check_is_doubly_stochastic(exact).passed is False  # ignores tol

    fb = check_is_doubly_stochastic(lambda m, tol: "yes")
    assert fb.passed is False and "Return one bool" in fb.message


def test_spectral_norm_bound_wrong_answers():
    no_abs = lambda m: torch.sqrt((m.sum(-1).amax(-1) * m.sum(-2).amax(-1)).abs())  # noqa: E731
    fb = check_spectral_norm_bound(no_abs)
    assert fb.passed is False and "differs at index" in fb.message
    rows_only = lambda m: m.abs().sum(-1).amax(-1)  # noqa: E731
    assert check_spectral_norm_bound(rows_only).passed is False
    fb = check_spectral_norm_bound(lambda m: torch.linalg.matrix_norm(m, ord=2)[0])
    assert fb.passed is False and "shape" in fb.message


def test_bvn_reconstruct_wrong_answers():
    def transposed(weights, perms):
        return solution_bvn_reconstruct(weights, perms).T

    fb = check_bvn_reconstruct(transposed)
    assert fb.passed is False and "transpose" in fb.message

    def unweighted(weights, perms):
        return solution_bvn_reconstruct(torch.ones_like(weights) / len(weights), perms)

    fb = check_bvn_reconstruct(unweighted)
    assert fb.passed is False and "differs" in fb.message

    def crashes(weights, perms):
        return weights @ perms

    fb = check_bvn_reconstruct(crashes)
    assert fb.passed is False and "raised" in fb.message
