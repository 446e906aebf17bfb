"""Feedback for notebook exercises: what is wrong and a hint, never a bare AssertionError.

A lesson's exercise cell defines a function (its body starts as ``raise NotImplementedError``)
and passes it to a ``check_…`` function. The check runs it on fresh inputs, compares with the
reference, and returns a ``Feedback`` that prints as a short verdict: not attempted yet,
correct, or wrong with the first difference found and a hint. It never raises, so a lesson
runs top to bottom before the learner has done anything, and CI can execute it.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

NOT_ATTEMPTED = None


@dataclass(frozen=True)
class Feedback:
    """The outcome of one check: ``passed`` is True, False, or None (not attempted)."""

    exercise: str
    passed: bool | None
    message: str
    hint: str = ""

    @property
    def verdict(self) -> str:
        return {True: "correct", False: "not yet right", None: "not attempted yet"}[self.passed]

    def __str__(self) -> str:
        mark = {True: "✅", False: "❌", None: "✏️"}[self.passed]
        lines = [f"{mark} {self.exercise}: {self.verdict}. {self.message}"]
        if self.hint and self.passed is not True:
            lines.append(f"   hint: {self.hint}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = {True: "#1b7f3b", False: "#b3261e", None: "#6b6b6b"}[self.passed]
        body = f"<b style='color:{colour}'>{_inline_code(str(self).splitlines()[0])}</b>"
        if self.hint and self.passed is not True:
            body += f"<br><i>hint: {_inline_code(self.hint)}</i>"
        return f"<div style='padding:4px 8px;border-left:4px solid {colour}'>{body}</div>"


def _inline_code(text: str) -> str:
    """Escape for HTML and render `backticked` spans as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def attempt(exercise: str, fn: Callable, *args, hint: str = "", **kwargs) -> tuple[object, Feedback | None]:
    """Call the learner's ``fn``; a ``Feedback`` instead of a result if it is unfinished or raises."""
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, Feedback(exercise, NOT_ATTEMPTED, "Replace `raise NotImplementedError` with your code.", hint)
    except Exception as exc:  # the learner's code may raise anything; show it, don't crash the lesson
        return None, Feedback(exercise, False, f"Your code raised {type(exc).__name__}: {exc}", hint)


def compare_tensors(exercise: str, got: object, want: torch.Tensor, *, hint: str, rtol: float = 1e-5,
                    atol: float = 1e-6, what: str = "result") -> Feedback:
    """Shape, then values: the message names the first thing that differs."""
    if not isinstance(got, torch.Tensor):
        return Feedback(exercise, False, f"Your {what} should be a torch.Tensor, got {type(got).__name__}.", hint)
    if got.shape != want.shape:
        return Feedback(exercise, False, f"Your {what} has shape {tuple(got.shape)}; expected {tuple(want.shape)}.",
                        hint)
    got_d, want_d = got.detach().to(torch.float64), want.detach().to(torch.float64)
    if not torch.isfinite(got_d).all():
        return Feedback(exercise, False, f"Your {what} contains NaN or inf.", hint)
    close = torch.isclose(got_d, want_d, rtol=rtol, atol=atol)
    if not close.all():
        idx = tuple(int(i) for i in (~close).nonzero()[0])
        return Feedback(
            exercise, False,
            f"Your {what} differs at index {idx}: got {got_d[idx].item():.6g}, expected {want_d[idx].item():.6g} "
            f"({int((~close).sum())} of {close.numel()} entries differ).", hint,
        )
    return Feedback(exercise, True, f"Your {what} matches the reference.")


def show_solution(fn: Callable) -> str:
    """The source of a reference solution, to print when stuck."""
    return inspect.getsource(fn)
