"""Lesson 07's exercises: the paper's group size, the values a recompute policy keeps, recomputing x_l."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..memory_model import saved_elements
from ..mhc import MHC, mhc_coefficients, mhc_post_res
from ..recompute import default_group_size
from .checking import Feedback, attempt, compare_tensors

F64 = torch.float64


def solution_paper_group_size(n: int, depth: int) -> int:
    """L_r* = sqrt(n·L/(n+2)) rounded to the nearest whole number of layers."""
    return round(math.sqrt(n * depth / (n + 2)))


def solution_kept_values(depth: int, n: int, C: int, group_size: int) -> int:
    """Values per token the recompute policy keeps for the mHC part: x_{l0} (n·C) for each of the
    ceil(L/L_r) groups, and f_l (C) for each of the L layers."""
    return math.ceil(depth / group_size) * n * C + depth * C


def solution_recompute_streams(x0: Tensor, fs: Sequence[Tensor], conns: Sequence[MHC]) -> list[Tensor]:
    """[x_{l0}, …, x_{l0+m}] from x0 (..., n, C) and the m stored outputs f_l (..., C):
    x_{l+1} = H_res(x_l)·x_l + H_post(x_l) ⊗ f_l, the coefficients recomputed from x_l."""
    xs = [x0]
    for conn, f in zip(conns, fs, strict=True):
        _, h_post, h_res = mhc_coefficients(xs[-1], conn.phi, conn.bias, conn.alpha, conn.iters, conn.eps)
        xs.append(mhc_post_res(xs[-1], f, h_post, h_res))
    return xs


def check_paper_group_size(fn: Callable[[int, int], int]) -> Feedback:
    name = "Exercise 7.1 (the paper's group size)"
    hint = ("Balance n·C·L/L_r (the kept group inputs) against (n+2)·C·L_r (one recomputed group): the minimum is "
            "at L_r = sqrt(n·L/(n+2)). Round to the nearest whole number of layers (an int).")
    cases = [(4, 30), (4, 12), (4, 64), (2, 7), (8, 100), (4, 1), (1, 2), (6, 48)]
    for n, depth in cases:
        got, fb = attempt(name, fn, n, depth, hint=hint)
        if fb:
            return fb
        want = default_group_size(n, depth)
        if not isinstance(got, int) or isinstance(got, bool):
            return Feedback(name, False, f"For n = {n}, L = {depth} you returned {got!r} ({type(got).__name__}); "
                            f"a number of layers is an int.", hint)
        if got != want:
            return Feedback(name, False, f"For n = {n}, L = {depth} you gave L_r = {got}; expected {want} "
                            f"(sqrt(nL/(n+2)) = {math.sqrt(n * depth / (n + 2)):.3f}).", hint)
    return Feedback(name, True, f"Right for {len(cases)} pairs (n, L).")


def check_kept_values(fn: Callable[[int, int, int, int], int]) -> Feedback:
    name = "Exercise 7.2 (values kept per token)"
    hint = ("Count per token: each group of L_r layers keeps its input streams, n·C values, and there are "
            "ceil(L/L_r) groups (the last may be shorter); every layer keeps its sublayer output f_l, C values.")
    cases = [(12, 4, 64, 3), (12, 4, 64, 5), (30, 4, 2560, 4), (7, 2, 16, 7), (9, 3, 10, 1), (10, 4, 8, 4)]
    for depth, n, c, g in cases:
        got, fb = attempt(name, fn, depth, n, c, g, hint=hint)
        if fb:
            return fb
        want = saved_elements("recompute", depth=depth, n=n, C=c, sublayer=0, group_size=g)
        if got != want:
            return Feedback(name, False, f"For L = {depth}, n = {n}, C = {c}, L_r = {g} you gave {got!r}; expected "
                            f"{want}.", hint)
    return Feedback(name, True, f"Right for {len(cases)} cases, including groups that do not divide L.")


def _group(m: int, n: int, c: int, seed: int) -> tuple[Tensor, list[Tensor], list[MHC], list[Tensor]]:
    """A drifted group of m connections, its input, the sublayer outputs and the streams of a plain forward pass."""
    gen = torch.Generator().manual_seed(seed)
    conns = []
    for i in range(m):
        conn = MHC(n, c, layer_index=i).double()
        with torch.no_grad():
            for p in conn.parameters():
                p.add_(0.5 * torch.randn(p.shape, generator=gen, dtype=F64))
        conns.append(conn)
    weights = [torch.randn(c, c, generator=gen, dtype=F64) / math.sqrt(c) for _ in range(m)]
    x0 = torch.randn(3, 2, n, c, generator=gen, dtype=F64)
    xs, fs = [x0], []
    with torch.no_grad():
        for conn, w in zip(conns, weights, strict=True):
            fs.append(torch.tanh(conn.pre(xs[-1], conn.coefficients(xs[-1])[0]) @ w))
            xs.append(conn(xs[-1], lambda h, w=w: torch.tanh(h @ w)))
    return x0, fs, conns, xs


def check_recompute_streams(fn: Callable[[Tensor, Sequence[Tensor], Sequence[MHC]], list[Tensor]]) -> Feedback:
    name = "Exercise 7.3 (recompute x_l from x_l0 and the f's)"
    hint = ("Start from [x0]. For each layer, compute the coefficients from the latest x with "
            "mhc_coefficients(x, conn.phi, conn.bias, conn.alpha, conn.iters, conn.eps), then append "
            "h_res @ x + h_post ⊗ f (mhc_post_res). The sublayer is not called: its output is given.")
    m, n, c = 4, 4, 6
    x0, fs, conns, want = _group(m, n, c, seed=7)
    got, fb = attempt(name, fn, x0.clone(), [f.clone() for f in fs], conns, hint=hint)
    if fb:
        return fb
    if not isinstance(got, (list, tuple)) or len(got) != m + 1:
        size = len(got) if isinstance(got, (list, tuple)) else type(got).__name__
        return Feedback(name, False, f"Return a list of m + 1 = {m + 1} tensors, x_l0 first; got {size}.", hint)
    for layer, (g, w) in enumerate(zip(got, want, strict=True)):
        res = compare_tensors(name, g, w, hint=hint, rtol=1e-10, atol=1e-10, what=f"x_{{l0+{layer}}}")
        if not res.passed:
            return res
    return Feedback(name, True, f"All {m + 1} streams of a {m}-layer group match the forward pass.")
