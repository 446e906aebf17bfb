"""Block sizes for each kernel: (BT tokens, BK or BC channels, warps[, token splits]).

The GPU values were chosen on an H100 with benchmarks/profile_kernels.py; under the CPU
interpreter larger blocks mean fewer Python-level program launches, so it uses its own.
``MHC_COURSE_KERNEL_BLOCKS`` overrides them with JSON such as ``{"post_res_fwd": [8, 256, 8]}``
(profile_kernels.py writes one for the GPU it ran on).
"""

from __future__ import annotations

import functools
import json
import os

import torch

from .layout import cdiv

_GPU = {
    "coefficients_fwd": (64, 128, 128, 4),  # BT, BK, BC, warps
    "coefficients_fwd_one_wave": (64, 128, 64, 4),  # the same when there is at most one program per multiprocessor
    "coefficients_bwd_token": (8, 128, 4),  # BT, BC, warps
    "coefficients_bwd_channel": (32, 64, 4, 4),  # BT, BC, warps, token splits
    "coefficients_bwd_channel_all": (16, 64, 4, 8),  # the same with all n streams in one program (n = 4)
    "pre_fwd": (8, 256, 8),
    "pre_bwd": (8, 128, 4),
    "post_res_fwd": (8, 256, 8),
    "post_res_bwd": (8, 256, 8),
}
_INTERPRETER = {
    "coefficients_fwd": (16, 64, 32, 1),
    "coefficients_fwd_one_wave": (16, 64, 32, 1),
    "coefficients_bwd_token": (16, 32, 1),
    "coefficients_bwd_channel": (16, 32, 1),
    "coefficients_bwd_channel_all": (16, 32, 1),
    "pre_fwd": (16, 32, 1),
    "pre_bwd": (16, 32, 1),
    "post_res_fwd": (16, 32, 1),
    "post_res_bwd": (16, 32, 1),
}


@functools.cache
def multiprocessors() -> int:
    """Streaming multiprocessors of the current CUDA device (1 without one)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).multi_processor_count
    return 1


def one_wave(programs: int) -> bool:
    """Whether a grid of this many programs has at most one per multiprocessor, so that nothing else
    on a multiprocessor can hide a program's memory latency."""
    return programs <= multiprocessors()


_CHANNEL_STREAMS = {"coefficients_bwd_channel": 2, "coefficients_bwd_channel_all": 4}  # streams per program


def blocks(kind: str, n: int, C: int, tokens: int | None = None) -> tuple[int, ...]:
    """Launch parameters for kernel ``kind`` at stream count n and width C."""
    return _blocks(kind, n, C, tokens, os.environ.get("TRITON_INTERPRET") == "1",
                   os.environ.get("MHC_COURSE_KERNEL_BLOCKS") or "{}")


@functools.lru_cache(maxsize=1024)  # called on every launch: keep the host's share of a launch small
def _blocks(kind: str, n: int, C: int, tokens: int | None, interpret: bool, override: str) -> tuple[int, ...]:
    table, mine = (_INTERPRETER if interpret else _GPU), json.loads(override)
    if kind == "coefficients_fwd" and tokens is not None and kind not in mine:
        # one program per BT tokens: in one wave (T = 8192 on an H100) the 64-channel h scan is
        # faster; an override of coefficients_fwd itself applies at every T
        kind += "_one_wave" if one_wave(cdiv(tokens, table[kind][0])) else ""
    cfg = tuple(mine.get(kind, table[kind]))
    if kind not in _CHANNEL_STREAMS:
        return cfg
    bt, bc, warps = cfg[:3]
    # The token splits (the table's or an override's), raised where the (n / streams per program)·⌈C/BC⌉
    # programs of one split would leave multiprocessors idle (narrow C: at C = 512 one split of the
    # two-stream pass has 16 programs for the H100's 132).
    programs = max(1, n // min(n, _CHANNEL_STREAMS[kind])) * cdiv(C, bc)
    splits = max(cfg[3] if len(cfg) == 4 else 1, cdiv(multiprocessors(), programs))
    return bt, bc, warps, max(1, min(splits, cdiv(tokens or 1, bt)))
