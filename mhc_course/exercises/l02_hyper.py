"""Lesson 02's exercises: the static HC update, composite gains over depth, dynamic HC coefficients."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..hyper_connections import HyperConnection
from ..metrics import amax_gain, composite
from ..mhc import mhc_post_res
from ..propagation import RandomBranch
from .checking import Feedback, attempt, compare_tensors

Layer = Callable[[Tensor], Tensor]


def _fresh_generator() -> torch.Generator:
    return torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))


def solution_static_hc_update(H: Tensor, layer: Layer, A_m: Tensor, A_r: Tensor, B: Tensor) -> Tensor:
    """H (..., n, C) → H' (..., n, C): h = Σ_i A_m[i]·H_i, H'_j = B_j·T(h) + Σ_i A_r[i, j]·H_i."""
    h = torch.einsum("i,...ic->...c", A_m, H)
    return B[:, None] * layer(h).unsqueeze(-2) + torch.einsum("ij,...ic->...jc", A_r, H)


def solution_composite_gains(mats: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(forward, backward) Amax gain of mats[-1] @ … @ mats[0]: max |row sum| and max |column sum|."""
    product = mats[0]
    for m in mats[1:]:
        product = m @ product
    a = product.abs()
    return a.sum(dim=-1).max(), a.sum(dim=-2).max()


def solution_dynamic_hc_coefficients(hc: HyperConnection, H: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A_m(H) (..., n), A_r(H) (..., n, n) and B(H) (..., n) of a dynamic ``HyperConnection``."""
    Hb = hc.norm(H)
    a_m = hc.s_alpha * torch.tanh(Hb @ hc.W_m) + hc.A_m
    a_r = hc.s_alpha * torch.tanh(Hb @ hc.W_r) + hc.A_r
    b = hc.s_beta * torch.tanh(Hb @ hc.W_beta) + hc.B
    return a_m, a_r, b


def _close(got: object, want: Tensor) -> bool:
    return (isinstance(got, Tensor) and got.shape == want.shape
            and torch.allclose(got.detach().double(), want.detach().double(), rtol=1e-6, atol=1e-9))


def check_static_hc_update(fn: Callable[[Tensor, Layer, Tensor, Tensor, Tensor], Tensor]) -> Feedback:
    name = "Exercise 2.1 (static HC update)"
    hint = ("The layer reads h = Σ_i A_m[i]·H_i. Stream j of the output is B_j·T(h) + Σ_i A_r[i, j]·H_i: "
            "A_r's column j says how much of each stream goes into stream j, i.e. A_rᵀ acts on the streams.")
    n, C = 4, 8
    g = _fresh_generator()
    H = torch.randn(3, n, C, generator=g, dtype=torch.float64)
    A_m = torch.randn(n, generator=g, dtype=torch.float64)
    A_r = torch.eye(n, dtype=torch.float64) + 0.5 * torch.randn(n, n, generator=g, dtype=torch.float64)
    B = torch.randn(n, generator=g, dtype=torch.float64)
    layer = RandomBranch(C, 1.0, generator=g)
    hc = HyperConnection(n, C, dynamic=False).double()
    with torch.no_grad():
        for param, value in ((hc.A_m, A_m), (hc.A_r, A_r), (hc.B, B)):
            param.copy_(value)
        want = hc(H, layer)
        got, fb = attempt(name, fn, H.clone(), layer, A_m.clone(), A_r.clone(), B.clone(), hint=hint)
        if fb:
            return fb
        if _close(got, mhc_post_res(H, layer(torch.einsum("i,...ic->...c", A_m, H)), B, A_r)):
            return Feedback(name, False, "You mixed the streams with A_r; HC's A_r multiplies from the right, "
                            "so the matrix acting on the streams is A_rᵀ.", hint)
        fb = compare_tensors(name, got, want, hint=hint, rtol=1e-9, atol=1e-10, what="H'")
    if fb.passed:
        return Feedback(name, True, "Matches HyperConnection(dynamic=False) with random A_m, A_r, B.")
    return fb


def check_composite_gains(fn: Callable[[Sequence[Tensor]], tuple[Tensor, Tensor]]) -> Feedback:
    name = "Exercise 2.2 (composite gains)"
    hint = ("Multiply first (later layers on the left: mats[-1] @ … @ mats[0]), then take the largest "
            "absolute row sum (forward) and the largest absolute column sum (backward) of the product.")
    g = _fresh_generator()
    eye = torch.eye(4, dtype=torch.float64)
    cases = {  # the second flips every sign: its product has mostly negative row and column sums
        "six matrices I + 0.4·noise": [eye + 0.4 * torch.randn(4, 4, generator=g, dtype=torch.float64)
                                       for _ in range(6)],
        "five matrices −(I + 0.4·noise)": [-eye - 0.4 * torch.randn(4, 4, generator=g, dtype=torch.float64)
                                           for _ in range(5)],
        "four matrices I + noise": [eye + torch.randn(4, 4, generator=g, dtype=torch.float64) for _ in range(4)],
    }
    for case, mats in cases.items():
        got, fb = attempt(name, fn, [m.clone() for m in mats], hint=hint)
        if fb:
            return fb
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            return Feedback(name, False, f"Return a pair (forward, backward); got {type(got).__name__}.", hint)
        try:
            fwd, bwd = (torch.as_tensor(v, dtype=torch.float64).reshape(()) for v in got)
        except (TypeError, ValueError, RuntimeError):
            return Feedback(name, False, "Each gain should be a number or a 0-dim tensor.", hint)
        want = amax_gain(composite(mats))
        per_layer = [amax_gain(m) for m in mats]
        suspects = {
            "the product in the wrong order (mats[0] on the left)": amax_gain(composite(mats[::-1])),
            "forward and backward swapped": want[::-1],
            "the product of the per-layer gains (an upper bound, not the composite's gain)": (
                torch.stack([f for f, _ in per_layer]).prod(), torch.stack([b for _, b in per_layer]).prod()),
        }
        for what, (sf, sb) in suspects.items():
            if torch.allclose(fwd, sf, rtol=1e-6) and torch.allclose(bwd, sb, rtol=1e-6):
                return Feedback(name, False, f"For {case} you computed {what}.", hint)
        for value, target, label in ((fwd, want[0], "forward gain"), (bwd, want[1], "backward gain")):
            fb = compare_tensors(name, value, target, hint=hint, rtol=1e-9, what=f"{label} for {case}")
            if not fb.passed:
                return fb
    return Feedback(name, True, "Both gains match amax_gain(composite(mats)) for three random lists of 4×4 matrices.")


def check_dynamic_hc_coefficients(fn: Callable[[HyperConnection, Tensor], tuple[Tensor, Tensor, Tensor]]) -> Feedback:
    name = "Exercise 2.3 (dynamic HC coefficients)"
    hint = ("Normalise each stream with hc.norm first (H̄ = hc.norm(H)); then A_m(H) = s_α·tanh(H̄ W_m) + A_m, "
            "A_r(H) = s_α·tanh(H̄ W_r) + A_r, B(H) = s_β·tanh(H̄ W_β) + B. Return A_r(H) itself, not its transpose.")
    n, C = 4, 8
    g = _fresh_generator()
    hc = HyperConnection(n, C, layer_index=int(torch.randint(0, n, (1,), generator=g))).double()
    with torch.no_grad():
        for param in hc.parameters():
            param.add_(0.5 * torch.randn(param.shape, generator=g, dtype=torch.float64))
    H = torch.randn(2, 3, n, C, generator=g, dtype=torch.float64)
    with torch.no_grad():
        h_pre, h_post, h_res = hc.coefficients(H)
        got, fb = attempt(name, fn, hc, H.clone(), hint=hint)
    if fb:
        return fb
    if not (isinstance(got, (tuple, list)) and len(got) == 3):
        return Feedback(name, False, f"Return a triple (A_m(H), A_r(H), B(H)); got {type(got).__name__}.", hint)
    a_r = h_res.transpose(-1, -2)
    if _close(got[1], h_res) and not _close(got[1], a_r):
        return Feedback(name, False, "Your A_r(H) is transposed: return A_r(H) as the paper writes it; "
                        "the package's h_res is its transpose.", hint)
    for value, want, label in ((got[0], h_pre, "A_m(H)"), (got[1], a_r, "A_r(H)"), (got[2], h_post, "B(H)")):
        fb = compare_tensors(name, value, want, hint=hint, rtol=1e-9, atol=1e-10, what=label)
        if not fb.passed:
            return fb
    return Feedback(name, True, "All three match HyperConnection.coefficients on random parameters and streams.")
