"""How the course compares its Triton kernels with the PyTorch reference, forward and backward.

Three habits, the same in tests/test_kernels.py and benchmarks/check_kernels_gpu.py:

1. **Fresh random inputs** for every comparison, never zeros or ones: a zero input hides a
   missing term, a symmetric matrix hides a transpose.
2. **Relative error against float64.** The reference runs in float64 on the very values the
   kernel got (bf16 inputs are upcast, not regenerated), and ‖ours − ref‖ / ‖ref‖ must stay
   under a tolerance set by the kernel's dtype (``TOLERANCE``): float32 kernels agree to
   rounding, bf16 ones to bf16's 8-bit mantissa.
3. **Poisoned outputs.** Inside ``poisoned()``, ``torch.empty`` and ``torch.empty_like`` return
   NaN-filled floating tensors, so an output element a kernel never writes stays NaN and the
   error becomes inf, instead of whatever stale memory the allocator handed back (which can
   even be a freed copy of the right answer).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import torch
from torch import Tensor

from . import mhc as reference
from .mhc import coefficient_count
from .sinkhorn import sinkhorn_knopp

TOLERANCE = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}
OPS = {  # op → names of its differentiable inputs, in call order
    "mhc_pre": ("x", "h_pre"),
    "mhc_post_res": ("x", "f", "h_post", "h_res"),
    "mhc_coefficients": ("x", "phi", "bias", "alpha"),
    "mhc_connection": ("x", "phi", "bias", "alpha"),
}


def tolerance(dtype: torch.dtype) -> float:
    """Largest relative error accepted for kernels whose activations are in ``dtype``."""
    if dtype not in TOLERANCE:
        raise ValueError(f"dtype must be one of {list(TOLERANCE)}, got {dtype}")
    return TOLERANCE[dtype]


def relative_error(got: Tensor, want: Tensor) -> float:
    """‖got − want‖ / ‖want‖ in float64; inf when ``got`` holds NaN or inf (e.g. a poisoned, unwritten element)."""
    if got.shape != want.shape:
        raise ValueError(f"got and want must have one shape, got {tuple(got.shape)} and {tuple(want.shape)}")
    a = got.detach().double()
    b = want.detach().to(a.device).double()
    if not torch.isfinite(a).all():
        return math.inf
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


@contextmanager
def poisoned() -> Iterator[None]:
    """Inside the block, ``torch.empty`` and ``torch.empty_like`` return NaN-filled floating tensors."""
    empty, empty_like = torch.empty, torch.empty_like

    def fill(t: Tensor) -> Tensor:
        return t.fill_(math.nan) if t.is_floating_point() else t

    torch.empty = lambda *a, **k: fill(empty(*a, **k))
    torch.empty_like = lambda *a, **k: fill(empty_like(*a, **k))
    try:
        yield
    finally:
        torch.empty, torch.empty_like = empty, empty_like


def op_inputs(op: str, T: int, n: int, C: int, dtype: torch.dtype, device: str | torch.device,
              generator: torch.Generator) -> tuple[Tensor, ...]:
    """Fresh random inputs for ``op`` over T tokens: activations (T, n, C) / (T, C) in ``dtype``,
    coefficients and parameters float32 (as the paper keeps them), shaped like the real ones:
    H_pre = σ(·), H_post = 2σ(·), H_res = Sinkhorn–Knopp(·) (rows exact, columns not: not symmetric)."""
    if op not in OPS:
        raise ValueError(f"op must be one of {list(OPS)}, got {op!r}")

    def rnd(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device)

    x = rnd(T, n, C).to(dtype)
    if op == "mhc_pre":
        return x, torch.sigmoid(rnd(T, n)).float()
    if op == "mhc_post_res":
        h_res = sinkhorn_knopp(2 * rnd(T, n, n), 3).float()
        return x, rnd(T, C).to(dtype), (2 * torch.sigmoid(rnd(T, n))).float(), h_res
    k = coefficient_count(n)
    alpha = torch.rand(3, generator=generator, dtype=torch.float64).to(device) + 0.3
    return x, (rnd(n * C, k) / math.sqrt(n * C)).float(), rnd(k).float(), alpha.float()


def _sublayer(C: int, device: str | torch.device, generator: torch.Generator):
    """F(h) = tanh(h·W) with a fixed random W, evaluated in the dtype of h."""
    w = torch.randn(C, C, generator=generator, dtype=torch.float64).to(device) / math.sqrt(C)
    return lambda h: torch.tanh(h @ w.to(h.dtype))


def _outputs(module: ModuleType, op: str, args: tuple[Tensor, ...], layer) -> tuple[Tensor, ...]:
    if op == "mhc_connection" and module is reference:  # the reference composes the contract's three functions
        h_pre, h_post, h_res = reference.mhc_coefficients(*args)
        x = args[0]
        return (reference.mhc_post_res(x, layer(reference.mhc_pre(x, h_pre)), h_post, h_res),)
    if op == "mhc_connection":
        return (module.mhc_connection(*args, layer)[0],)
    out = getattr(module, op)(*args)
    return tuple(out) if isinstance(out, tuple) else (out,)


@dataclass(frozen=True)
class Comparison:
    """Relative errors of one op at one shape and dtype: ``out`` and ``d<input>`` for each gradient."""

    op: str
    T: int
    n: int
    C: int
    dtype: torch.dtype
    errors: dict[str, float]

    @property
    def tolerance(self) -> float:
        return tolerance(self.dtype)

    @property
    def worst(self) -> float:
        return max(self.errors.values())

    @property
    def ok(self) -> bool:
        return self.worst < self.tolerance


def compare_op(op: str, T: int, n: int, C: int, dtype: torch.dtype = torch.float32,
               device: str | torch.device = "cpu", seed: int = 0, candidate: ModuleType | None = None) -> Comparison:
    """Run ``op`` of ``candidate`` (default ``mhc_course.kernels``) forward and backward under
    ``poisoned()`` and compare output and input gradients with the float64 reference."""
    if candidate is None:
        from . import kernels as candidate  # sets TRITON_INTERPRET=1 on a machine without CUDA
    gen = torch.Generator().manual_seed(seed)
    args = op_inputs(op, T, n, C, dtype, device, gen)
    layer = _sublayer(C, device, gen)
    ours = [a.detach().clone().requires_grad_() for a in args]
    ref = [a.detach().double().requires_grad_() for a in args]
    want = _outputs(reference, op, tuple(ref), layer)
    weights = [torch.randn(w.shape, generator=gen, dtype=torch.float64).to(device) for w in want]
    with poisoned():
        got = _outputs(candidate, op, tuple(ours), layer)
        sum((g * w.to(g.dtype)).sum() for g, w in zip(got, weights, strict=True)).backward()
    sum((r * w.to(g.dtype).double()).sum() for r, g, w in zip(want, got, weights, strict=True)).backward()
    errors = {"out": max(relative_error(g, r) for g, r in zip(got, want, strict=True))}
    for name, a, r in zip(OPS[op], ours, ref, strict=True):
        errors[f"d{name}"] = math.inf if a.grad is None else relative_error(a.grad, r.grad)
    return Comparison(op, T, n, C, dtype, errors)


def harness_table(rows: list[Comparison]) -> str:
    """A fixed-width table: op, dtype, shape, each error, tolerance and verdict."""
    head = f"{'op':<17}{'dtype':<10}{'T':>6}{'n':>3}{'C':>6}  {'out':>8}  {'worst grad':>10}  {'tolerance':>9}  verdict"
    lines = [head]
    for r in rows:
        grads = [v for k, v in r.errors.items() if k != "out"]
        lines.append(f"{r.op:<17}{str(r.dtype).removeprefix('torch.'):<10}{r.T:>6}{r.n:>3}{r.C:>6}  "
                     f"{r.errors['out']:8.1e}  {max(grads):10.1e}  {r.tolerance:9.0e}  {'ok' if r.ok else 'FAIL'}")
    return "\n".join(lines)
