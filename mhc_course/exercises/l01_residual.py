"""Lesson 01's exercises: RMSNorm, the three ways to stack a layer, and measuring propagation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..metrics import rms
from ..propagation import PLACEMENTS, RandomBranch, build_stack, make_block, propagate
from .checking import Feedback, attempt, compare_tensors

Sublayer = Callable[[Tensor], Tensor]


def solution_rms_norm(h: Tensor, eps: float) -> Tensor:
    """RMSNorm without a weight: each (..., C) vector divided by its root mean square."""
    return h * torch.rsqrt(h.square().mean(dim=-1, keepdim=True) + eps)


def solution_residual_update(h: Tensor, sublayer: Sublayer, norm: Sublayer, placement: str) -> Tensor:
    """One layer of a stack: no skip, post-norm residual or pre-norm residual."""
    if placement == "none":
        return sublayer(h)
    if placement == "post-norm":
        return norm(h + sublayer(h))
    return h + sublayer(norm(h))


def solution_activation_and_gradient_rms(blocks: Sequence[nn.Module], x: Tensor,
                                         readout: Tensor) -> tuple[Tensor, Tensor]:
    """RMS of every h_l (l = 0 … L) and of ∂loss/∂h_l for loss = Σ readout·h_L."""
    hs = [x.detach().requires_grad_(True)]
    for block in blocks:
        hs.append(block(hs[-1]))
    loss = (hs[-1] * readout).sum()
    grads = torch.autograd.grad(loss, hs)
    return torch.stack([rms(h.detach()) for h in hs]), torch.stack([rms(g) for g in grads])


def check_rms_norm(fn: Callable[[Tensor, float], Tensor]) -> Feedback:
    name = "Exercise 1.1 (RMSNorm)"
    hint = ("Divide each vector along the last dim by sqrt(mean(h²) + eps); keep that dim "
            "(keepdim=True) so the division broadcasts.")
    h = 3 * torch.randn(4, 5, 24, dtype=torch.float64) + 0.5
    for eps in (1e-6, 0.5):
        got, fb = attempt(name, fn, h.clone(), eps, hint=hint)
        if fb:
            return fb
        want = F.rms_norm(h, (h.shape[-1],), eps=eps)
        fb = compare_tensors(name, got, want, hint=hint, rtol=1e-9, atol=1e-12, what=f"RMSNorm (eps={eps})")
        if not fb.passed:
            return fb
    return Feedback(name, True, "Matches torch.nn.functional.rms_norm on random (4, 5, 24) input, for two eps.")


def check_residual_update(fn: Callable[[Tensor, Sublayer, Sublayer, str], Tensor]) -> Feedback:
    name = "Exercise 1.2 (three ways to stack a layer)"
    hint = ("none: F(h). post-norm: normalise the sum h + F(h). pre-norm: normalise only the branch's "
            "input and add F's output to h unchanged.")
    C = 16
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))
    h = torch.randn(3, 7, C, generator=g, dtype=torch.float64)
    for placement in PLACEMENTS:
        block = make_block(placement, RandomBranch(C, 0.8, "mlp", generator=g), C).double()
        norm = getattr(block, "norm", nn.RMSNorm(C, eps=1e-6).double())
        with torch.no_grad():
            norm.weight.copy_(1 + 0.5 * torch.randn(C, generator=g, dtype=torch.float64))
            got, fb = attempt(name, fn, h.clone(), block.sublayer, norm, placement, hint=hint)
            if fb:
                return fb
            fb = compare_tensors(name, got, block(h), hint=hint, rtol=1e-9, atol=1e-12,
                                 what=f"{placement!r} update")
        if not fb.passed:
            return fb
    return Feedback(name, True, "All three placements match NoSkip, PostNormResidual and PreNormResidual.")


def check_activation_and_gradient_rms(fn: Callable[[Sequence[nn.Module], Tensor, Tensor],
                                                   tuple[Tensor, Tensor]]) -> Feedback:
    name = "Exercise 1.3 (measuring a stack)"
    hint = ("Keep a list hs = [h_0, h_1, …, h_L] (h_0 = x with requires_grad), loss = (hs[-1] * readout).sum(), "
            "then torch.autograd.grad(loss, hs) gives one gradient per h_l; return the RMS of each, in layer order.")
    seed = int(torch.randint(0, 2**31 - 1, ()))
    blocks = build_stack("pre-norm", 12, 16, 1.3, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(5, 16, generator=g, dtype=torch.float64)
    r = torch.randn(5, 16, generator=g, dtype=torch.float64)
    r = r / rms(r)
    got, fb = attempt(name, fn, blocks, x.clone(), r.clone(), hint=hint)
    if fb:
        return fb
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return Feedback(name, False, f"Return a pair (act_rms, grad_rms); got {type(got).__name__}.", hint)
    want = propagate(blocks, x, r)
    for value, key, what in ((got[0], "act_rms", "activation RMS"), (got[1], "grad_rms", "gradient RMS")):
        if isinstance(value, torch.Tensor) and value.shape == want[key].shape and torch.allclose(
                value.detach().double().flip(0), want[key], rtol=1e-6):
            return Feedback(name, False, f"Your {what} is in reverse order: entry l should belong to h_l, "
                            "with h_0 (the input) first.", hint)
        fb = compare_tensors(name, value, want[key], hint=hint, rtol=1e-6, atol=1e-12, what=what)
        if not fb.passed:
            return fb
    return Feedback(name, True, "Both profiles match mhc_course.propagation.propagate on a random 12-layer stack.")
