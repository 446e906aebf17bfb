"""Lesson 08's exercises: the composite gain a log records, a step-time overhead, and its bandwidth floor."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..metrics import amax_gain, composite, gain_profile
from ..step_overhead import floor_overhead
from ..training_logs import overhead
from .checking import Feedback, attempt, compare_tensors

F64 = torch.float64


def solution_composite_forward_gain(maps: Sequence[Tensor]) -> Tensor:
    """The trainer's ``amax_fwd``: the max absolute row sum of H_res(L)···H_res(1), averaged over tokens.

    maps: L tensors (B, T, n, n) in layer order. Returns a 0-dim float64 tensor."""
    return amax_gain(composite([m.to(F64) for m in maps]))[0].mean()


def solution_overhead_percent(step_s: float, baseline_s: float) -> float:
    """How much longer a step takes than the baseline's, in percent."""
    return 100 * (step_s - baseline_s) / baseline_s


def solution_floor_overhead(n: int, C: int, depth: int, tokens: int, element_bytes: int, bandwidth_gbs: float,
                            residual_step_s: float) -> float:
    """Predicted overhead (a fraction) if the only extra cost were the connections' minimal bytes:
    2·depth connections, each moving (6n+5)·C − 6·C more elements per token than a residual."""
    extra_bytes = 2 * depth * tokens * ((6 * n + 5) * C - 6 * C) * element_bytes
    return extra_bytes / (bandwidth_gbs * 1e9) / residual_step_s


def _maps(layers: int, n: int, seed: int) -> list[Tensor]:
    """HC-like mappings: identity plus a drift, different for every token (B = 2, T = 5)."""
    g = torch.Generator().manual_seed(seed)
    return [torch.eye(n, dtype=F64) + 0.35 * torch.randn(2, 5, n, n, generator=g, dtype=F64) for _ in range(layers)]


def check_composite_forward_gain(fn: Callable[[list[Tensor]], Tensor]) -> Feedback:
    name = "Exercise 8.1 (the composite gain of a log record)"
    hint = ("Multiply the maps with the later layer on the left (`mhc_course.composite`), take each token's "
            "largest absolute row sum (`amax_gain(...)[0]`), then average over the tokens.")
    seed = int(torch.randint(0, 2**31 - 1, ()).item())
    for layers, n in ((6, 4), (3, 2), (9, 3)):
        maps = _maps(layers, n, seed + layers)
        got, fb = attempt(name, fn, [m.clone() for m in maps], hint=hint)
        if fb:
            return fb
        if isinstance(got, (int, float)):
            got = torch.tensor(float(got), dtype=F64)
        want = gain_profile(maps)["composite_fwd"][-1]
        if isinstance(got, Tensor) and got.numel() == 1 and want.numel() == 1:
            reversed_order = amax_gain(composite([m for m in reversed(maps)]))[0].mean()
            per_layer = torch.stack([amax_gain(m)[0] for m in maps]).prod(0).mean()
            columns = amax_gain(composite(maps))[1].mean()
            for wrong, why in ((reversed_order, "the product in the wrong order (the earliest layer on the left)"),
                               (per_layer, "the product of each layer's own gain, an upper bound"),
                               (columns, "column sums: that is the backward gain")):
                if math.isclose(float(got), float(wrong), rel_tol=1e-9) and not math.isclose(
                        float(wrong), float(want), rel_tol=1e-9):
                    return Feedback(name, False, f"With {layers} layers of n = {n} you returned {float(got):.6g}, "
                                    f"which is {why}; expected {float(want):.6g}.", hint)
        fb = compare_tensors(name, got.reshape(()) if isinstance(got, Tensor) and got.numel() == 1 else got, want,
                             hint=hint, rtol=1e-9, atol=1e-12, what=f"gain for {layers} layers of n = {n}")
        if not fb.passed:
            return fb
    return Feedback(name, True, "Right for three stacks of random token-dependent mappings.")


def check_overhead_percent(fn: Callable[[float, float], float]) -> Feedback:
    name = "Exercise 8.2 (overhead in percent)"
    hint = "The overhead is the extra time relative to the baseline: (t − t₀)/t₀, times 100 for percent."
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ()).item()))
    base = (0.05 + torch.rand(4, generator=g, dtype=F64)).tolist()
    factor = (0.9 + 8 * torch.rand(4, generator=g, dtype=F64)).tolist()
    for t0, f in zip(base, factor, strict=True):
        t = t0 * f
        got, fb = attempt(name, fn, t, t0, hint=hint)
        if fb:
            return fb
        want = 100 * overhead(t, t0)
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return Feedback(name, False, f"Return a number (percent), got {type(got).__name__}.", hint)
        if not math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9):
            if math.isclose(got, 100 * t / t0, rel_tol=1e-9):
                why = " That is t/t₀ in percent: subtract the baseline first."
            elif math.isclose(got, want / 100, rel_tol=1e-9):
                why = " That is a fraction: multiply by 100."
            elif math.isclose(got, 100 * (t - t0) / t, rel_tol=1e-9):
                why = " You divided by the slower time; divide by the baseline."
            else:
                why = ""
            return Feedback(name, False, f"For t = {t:.4f} s and t₀ = {t0:.4f} s you gave {got:.6g}; expected "
                            f"{want:.6g}.{why}", hint)
    return Feedback(name, True, "Right for four pairs of step times, slower and faster than the baseline.")


def check_floor_overhead(fn: Callable[..., float]) -> Feedback:
    name = "Exercise 8.3 (the bandwidth-floor overhead)"
    hint = ("Extra elements per token and connection: (6n+5)·C for the fused mHC forward+backward minus 6·C for "
            "the residual it replaces; times the element size, the tokens of a step and 2 connections per block, "
            "divided by the bandwidth (bytes/s), relative to the residual step time.")
    cases = [dict(n=4, C=512, depth=24, tokens=16384, element_bytes=4, bandwidth_gbs=3000.0, residual_step_s=0.05),
             dict(n=2, C=2560, depth=30, tokens=8192, element_bytes=2, bandwidth_gbs=2000.0, residual_step_s=0.4),
             dict(n=8, C=64, depth=12, tokens=1024, element_bytes=4, bandwidth_gbs=50.0, residual_step_s=0.08)]
    for case in cases:
        got, fb = attempt(name, fn, **case, hint=hint)
        if fb:
            return fb
        want = floor_overhead(**case)["overhead"]
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            return Feedback(name, False, f"Return a number (a fraction), got {type(got).__name__}.", hint)
        if not math.isclose(got, want, rel_tol=1e-9):
            n = case["n"]
            ratio = got / want if want else float("nan")
            if math.isclose(ratio, (6 * n + 5) / (6 * n - 1), rel_tol=1e-9):
                why = " You counted all of mHC's bytes: subtract the 6·C the residual moves anyway."
            elif math.isclose(ratio, 0.5, rel_tol=1e-9):
                why = " Half the expected value: every block has two connections."
            elif math.isclose(ratio, 100, rel_tol=1e-9):
                why = " That looks like percent: return a fraction."
            else:
                why = ""
            return Feedback(name, False, f"For {case} you gave {got:.6g}; expected {want:.6g}.{why}", hint)
    return Feedback(name, True, "Right for three configurations, fp32 and bf16 streams.")
