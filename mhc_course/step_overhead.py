"""How much slower a training step with mHC should be than with a residual, if only memory traffic mattered.

The estimate is deliberately simple; its assumptions:

1. Each mHC connection's forward + backward moves its minimal activation bytes, (6n+5)·C elements
   per token (``io_model.fused_forward_backward_traffic``), at the device's copy bandwidth. The
   n² + 2n coefficients per token (floats) are left out: they are tiny next to n·C.
2. The connection replaces a plain residual that moves 6·C elements per token: forward reads x
   and f and writes x + f (``io_model.residual_traffic``), backward reads the incoming gradient g
   and the branch's gradient dh and writes dx = g + dh (the skip passes g on unchanged).
3. Every block has two connections (around attention and around the MLP), so a model of depth
   L has 2L of them.
4. Everything else in the step (attention, MLP, embeddings, loss, optimizer) costs what it
   costs in the residual model: the baseline is the residual model's measured step time.

Then the extra time per step is ``2L · tokens · ((6n+5) − 6)·C · bytes / bandwidth`` and the
predicted overhead is that over the residual step time. Because the connection's bytes grow as
C while a transformer's matmul FLOPs per token grow as C², the overhead shrinks roughly as 1/C
at fixed depth, tokens and efficiency (``scale_overhead_to_width``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .io_model import Traffic, fused_forward_backward_traffic, residual_traffic

CONNECTIONS_PER_BLOCK = 2


def _positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def residual_forward_backward_elements(C: int) -> int:
    """Activation elements per token a plain residual moves in forward + backward: 3C + 3C = 6C."""
    forward = residual_traffic(C)
    backward_reads, backward_writes = 2 * C, C  # g and dh read, dx = g + dh written
    return forward.act_read + forward.act_write + backward_reads + backward_writes


def extra_elements_per_token(n: int, C: int,
                             traffic: Callable[[int, int], Traffic] = fused_forward_backward_traffic) -> int:
    """Activation elements per token one mHC connection moves beyond the residual: by default the
    fused minimum, (6n+5)C − 6C; ``traffic=io_model.kernel_pass_traffic`` counts our kernels' passes."""
    moved = traffic(n, C)
    return moved.act_read + moved.act_write - residual_forward_backward_elements(C)


def _check_step(ints: dict[str, int], bandwidth_gbs: float, residual_step_s: float, efficiency: float) -> None:
    for name, value in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    _positive("bandwidth_gbs", bandwidth_gbs)
    _positive("residual_step_s", residual_step_s)
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must lie in (0, 1], got {efficiency!r}")


def floor_overhead(n: int, C: int, depth: int, tokens: int, element_bytes: int, bandwidth_gbs: float,
                   residual_step_s: float, efficiency: float = 1.0,
                   traffic: Callable[[int, int], Traffic] = fused_forward_backward_traffic) -> dict[str, Any]:
    """The predicted step-time overhead of mHC over residual (see the module's assumptions).

    Args:
        n, C: streams and width; depth: transformer blocks (2 connections each);
        tokens: tokens per optimizer step (batch × sequence);
        element_bytes: bytes per stream element (4 for fp32 streams, 2 for bf16);
        bandwidth_gbs: copy bandwidth, GB/s read + written;
        residual_step_s: the residual model's measured seconds per step;
        efficiency: the share of the copy bandwidth the kernels reach (1 is the floor);
        traffic: (n, C) → the connection's ``io_model.Traffic`` per token (the minimum by default).

    Returns a dict: ``extra_elements_per_token`` (per connection), ``connections``, ``extra_bytes``
    (per step), ``extra_ms``, ``predicted_step_s`` and ``overhead`` (a fraction: 0.067 is 6.7%).
    """
    _check_step({"n": n, "C": C, "depth": depth, "tokens": tokens, "element_bytes": element_bytes},
                bandwidth_gbs, residual_step_s, efficiency)
    extra = extra_elements_per_token(n, C, traffic)
    connections = CONNECTIONS_PER_BLOCK * depth
    extra_bytes = connections * tokens * extra * element_bytes
    extra_s = extra_bytes / (bandwidth_gbs * 1e9 * efficiency)
    return {"extra_elements_per_token": extra, "connections": connections, "extra_bytes": extra_bytes,
            "extra_ms": extra_s * 1e3, "predicted_step_s": residual_step_s + extra_s,
            "overhead": extra_s / residual_step_s}


def elements_within(overhead: float, C: int, depth: int, tokens: int, element_bytes: int, bandwidth_gbs: float,
                    residual_step_s: float, efficiency: float = 1.0) -> float:
    """The most activation elements per token one connection may move (forward + backward) for the
    step to stay within ``overhead`` (a fraction) of the residual's: the inverse of ``floor_overhead``,
    6C plus the extra that ``overhead · residual_step_s`` buys at ``efficiency`` of the bandwidth."""
    _positive("overhead", overhead)
    _check_step({"C": C, "depth": depth, "tokens": tokens, "element_bytes": element_bytes},
                bandwidth_gbs, residual_step_s, efficiency)
    extra_bytes = overhead * residual_step_s * bandwidth_gbs * 1e9 * efficiency
    per_connection = extra_bytes / (CONNECTIONS_PER_BLOCK * depth * tokens * element_bytes)
    return residual_forward_backward_elements(C) + per_connection


def scale_overhead_to_width(overhead: float, C: int, C_new: int) -> float:
    """The overhead at width ``C_new`` from one at width C, if the rest of the step grew as C² per token
    (matmul-bound) and the connections' bytes as C: ``overhead · C / C_new``. A scaling argument only."""
    _positive("overhead", overhead)
    _positive("C", C)
    _positive("C_new", C_new)
    return overhead * C / C_new
