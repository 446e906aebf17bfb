"""What every lesson's exercise checks promise, asserted once for all lessons."""

from collections.abc import Callable, Iterable


def _unfinished(*args, **kwargs):
    raise NotImplementedError


def assert_exercise_contract(pairs: Iterable[tuple[Callable, Callable]]) -> None:
    """Each check passes its reference solution, and reports an attempt that still raises
    NotImplementedError as not attempted (passed is None), saying so and giving its hint."""
    for check, solution in pairs:
        fb = check(solution)
        assert fb.passed is True, str(fb)
        fb = check(_unfinished)
        assert fb.passed is None and "NotImplementedError" in fb.message and fb.hint, str(fb)
