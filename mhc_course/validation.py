"""Input checks shared by the reference math and the kernels.

Every public function of the contract validates its arguments here, so a wrong shape, an
integer tensor or tensors on different devices fail early with a ``ValueError`` that names
the argument and the shapes involved, instead of a broadcasting surprise deep inside.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(name: str, t: object, *, min_dim: int = 0) -> Tensor:
    """Require a floating-point tensor with at least ``min_dim`` dimensions."""
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype} (shape {tuple(t.shape)})")
    if t.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(t.shape)}")
    return t


def check_square(name: str, m: object) -> Tensor:
    """Require a floating-point (..., n, n) tensor."""
    m = check_tensor(name, m, min_dim=2)
    if m.shape[-1] != m.shape[-2]:
        raise ValueError(f"{name} must be (..., n, n), got shape {tuple(m.shape)}")
    return m


def check_streams(name: str, x: object) -> tuple[int, int]:
    """Require ``x`` of shape (..., n, C) and return (n, C)."""
    x = check_tensor(name, x, min_dim=2)
    n, c = x.shape[-2], x.shape[-1]
    if n < 1 or c < 1:
        raise ValueError(f"{name} must have n >= 1 streams and width C >= 1, got shape {tuple(x.shape)}")
    return n, c


def check_same_device(**tensors: Tensor) -> None:
    """Require all tensors on one device; the message lists each argument's device."""
    devices = {t.device for t in tensors.values()}
    if len(devices) > 1:
        where = ", ".join(f"{k} on {v.device} (shape {tuple(v.shape)})" for k, v in tensors.items())
        raise ValueError(f"arguments must be on one device, got {where}")


def check_shape(name: str, t: Tensor, expected: tuple[int, ...], why: str) -> None:
    """Require an exact shape; ``why`` says where the expectation comes from."""
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)} ({why}), got {tuple(t.shape)}")


def check_leading(name: str, t: Tensor, tail: tuple[int, ...], lead: torch.Size, x_name: str = "x") -> None:
    """Require ``t`` of shape (*lead', *tail) where lead' broadcasts to ``x``'s leading dims."""
    k = len(tail)
    if t.dim() < k or tuple(t.shape[t.dim() - k :]) != tuple(tail):
        raise ValueError(
            f"{name} must end in {tuple(tail)} to match {x_name}, got shape {tuple(t.shape)}"
        )
    try:
        ok = torch.broadcast_shapes(t.shape[: t.dim() - k], lead) == lead
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}'s leading dims {tuple(t.shape[: t.dim() - k])} must broadcast to {x_name}'s "
            f"leading dims {tuple(lead)} (shape {tuple(t.shape)})"
        )


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """At least float32: bf16/fp16 inputs are promoted, float64 stays float64."""
    dt = torch.float32
    for t in tensors:
        dt = torch.promote_types(dt, t.dtype)
    return dt
