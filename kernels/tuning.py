"""Block sizes for each kernel: (BT tokens, BK or BC channels, warps[, token splits]).

The GPU values were chosen on an H100 with benchmarks/bench_connection.py; under the CPU
interpreter larger blocks mean fewer Python-level program launches, so it uses its own.
"""

from __future__ import annotations

import os

import torch
import triton

_GPU = {
    "coefficients_fwd": (32, 64, 64, 4),  # BT, BK, BC, warps
    "coefficients_bwd_token": (16, 64, 4),  # BT, BC, warps
    "coefficients_bwd_channel": (32, 64, 4),  # BT, BC, warps (+ splits, computed)
    "pre_fwd": (16, 128, 4),
    "pre_bwd": (16, 64, 4),
    "post_res_fwd": (16, 128, 4),
    "post_res_bwd": (16, 64, 4),
}
_INTERPRETER = {
    "coefficients_fwd": (16, 64, 32, 1),
    "coefficients_bwd_token": (16, 32, 1),
    "coefficients_bwd_channel": (16, 32, 1),
    "pre_fwd": (16, 32, 1),
    "pre_bwd": (16, 32, 1),
    "post_res_fwd": (16, 32, 1),
    "post_res_bwd": (16, 32, 1),
}


def _multiprocessors() -> int:
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).multi_processor_count
    return 1


def blocks(kind: str, n: int, C: int, dtype: torch.dtype, tokens: int | None = None) -> tuple[int, ...]:
    """Launch parameters for kernel ``kind`` at stream count n and width C."""
    table = _INTERPRETER if os.environ.get("TRITON_INTERPRET") == "1" else _GPU
    cfg = table[kind]
    if kind != "coefficients_bwd_channel":
        return cfg
    bt, bc, warps = cfg
    programs = n * triton.cdiv(C, bc)
    splits = max(1, triton.cdiv(2 * _multiprocessors(), programs))
    splits = min(splits, triton.cdiv(tokens or 1, bt))
    return bt, bc, warps, splits
