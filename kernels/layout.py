"""Host-side preparation shared by the kernels: the padded coefficient width, flattening, checks.

Inside the kernels the n² + 2n coefficients of a token live in one padded row of width
``NZ = next_pow2(max(16, n² + 2n))`` ordered ``[res (n², row-major) | pre (n) | post (n) | 0…]``.
With that order every group is one aligned chunk: res is chunk 0 of width n², pre is chunk n
and post chunk n + 1 of width n, so a kernel extracts a group with a reshape and a masked sum.
The kernels read φ and b in the contract's order ``[pre | post | res]`` and map columns
themselves (``tile_ops.contract_columns``), so nothing is copied on the host.
"""

from __future__ import annotations

import os

import torch
import triton
from torch import Tensor

from mhc_course.mhc import coefficient_count

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def padded_width(n: int) -> int:
    """NZ: the coefficient row width inside the kernels."""
    return max(16, triton.next_power_of_2(coefficient_count(n)))


def check_kernel_streams(x: Tensor, n_allowed: tuple[int, ...] = (1, 2, 4, 8)) -> None:
    """Kernel-specific limits on top of the contract's checks: n, dtype and device."""
    n = x.shape[-2]
    if n not in n_allowed:
        raise ValueError(f"the Triton kernels support n in {n_allowed}, got n={n} (x shape {tuple(x.shape)})")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"x must be float32, bfloat16 or float16 for the kernels, got {x.dtype}")
    if x.device.type == "cuda":
        return
    if x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        if x.dtype != torch.float32:
            raise ValueError(
                f"Triton's interpreter on the CPU runs float32 only, got x of dtype {x.dtype}; "
                "use float32 or a CUDA device"
            )
        return
    raise ValueError(
        f"x is on {x.device}: the Triton kernels need a CUDA tensor, or a CPU tensor with TRITON_INTERPRET=1"
    )


def coefficient_params(phi: Tensor, alpha: Tensor, bias: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """φ, α, b as the kernels read them: contiguous, in the contract's column order."""
    return phi.contiguous(), alpha.contiguous(), bias.contiguous()


def as_tokens(t: Tensor, tail: int) -> Tensor:
    """Flatten the leading dims: (..., *tail) → (T, *tail), contiguous."""
    return t.reshape(-1, *t.shape[t.dim() - tail :]).contiguous()


def grad_dtype_like(g: Tensor, like: Tensor) -> Tensor:
    """Incoming gradients in the dtype and layout the kernels expect."""
    return g.to(like.dtype).contiguous()


def cdiv(a: int, b: int) -> int:
    """⌈a / b⌉ for launch grids, in plain Python (``triton.cdiv`` is a jit function whose host
    call costs microseconds, paid on every launch)."""
    return -(-a // b)
