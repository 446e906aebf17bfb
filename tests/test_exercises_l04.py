import torch

from mhc_course.exercises.l04_sinkhorn import (
    check_iterations_needed,
    check_log_sinkhorn_step,
    check_sinkhorn_step,
    solution_iterations_needed,
    solution_log_sinkhorn_step,
    solution_sinkhorn_step,
)
from mhc_course.sinkhorn import sinkhorn_error, sinkhorn_knopp

from .exercise_contract import assert_exercise_contract


def test_solutions_pass_and_unfinished_attempts_wait():
    assert_exercise_contract([
        (check_sinkhorn_step, solution_sinkhorn_step),
        (check_log_sinkhorn_step, solution_log_sinkhorn_step),
        (check_iterations_needed, solution_iterations_needed),
    ])


def test_solution_step_matches_one_iteration_of_the_package():
    logits = torch.randn(3, 5, 5, dtype=torch.float64)
    m0 = sinkhorn_knopp(logits, 0)
    torch.testing.assert_close(solution_sinkhorn_step(m0), sinkhorn_knopp(logits, 1))
    torch.testing.assert_close(solution_log_sinkhorn_step(torch.log(m0)).exp(), sinkhorn_knopp(logits, 1))


def test_sinkhorn_step_wrong_order():
    def rows_first(m):
        m = m / m.sum(dim=-1, keepdim=True)
        return m / m.sum(dim=-2, keepdim=True)

    fb = check_sinkhorn_step(rows_first)
    assert fb.passed is False and "rows first" in fb.message

    fb = check_sinkhorn_step(lambda m: m / m.sum(dim=-2, keepdim=True))  # only the column step
    assert fb.passed is False and "differs" in fb.message


def test_log_step_through_exp_fails_on_large_logits():
    def via_exp(log_m):
        return torch.log(solution_sinkhorn_step(torch.exp(log_m)))

    fb = check_log_sinkhorn_step(via_exp)
    assert fb.passed is False and "±1000" in fb.message

    def wrong_dims(log_m):
        log_m = log_m - torch.logsumexp(log_m, dim=-1, keepdim=True)
        return log_m - torch.logsumexp(log_m, dim=-2, keepdim=True)

    assert check_log_sinkhorn_step(wrong_dims).passed is False


def test_solution_iterations_needed_is_the_first_t_below_tol():
    logits = 1.5 * torch.randn(3, 4, 4, dtype=torch.float64)
    t = solution_iterations_needed(logits, 1e-6)
    worst = lambda k: max(e.max().item() for e in sinkhorn_error(sinkhorn_knopp(logits, k)))  # noqa: E731
    assert worst(t) <= 1e-6 and (t == 0 or worst(t - 1) > 1e-6)


def test_iterations_needed_off_by_one():
    fb = check_iterations_needed(lambda logits, tol: solution_iterations_needed(logits, tol) + 1)
    assert fb.passed is False and "expected" in fb.message and "error after your t" in fb.message
    fb = check_iterations_needed(lambda logits, tol: 20)
    assert fb.passed is False
    fb = check_iterations_needed(lambda logits, tol: float(solution_iterations_needed(logits, tol)))
    assert fb.passed is False
