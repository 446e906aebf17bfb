"""A profiled model step read back: where its GPU time went, and what our connection kernels would
take at copy bandwidth.

``benchmarks/profile_step.py`` records, for the residual GPT and for mHC on our Triton kernels,
each step's time and every kernel's device time per step under the torch profiler. These
functions turn such a record into answers; the benchmark and lesson 08 both use them:

- ``group_of``: the part of the step a kernel belongs to (our connection kernels, matrix
  products, attention, norms, the rest);
- ``connection_bytes``: the bytes each of our connection kernels must move in a step
  (``io_model.kernel_pass_steps``);
- ``at_copy_bandwidth``: the bandwidth each of them reached, and the mHC step if each ran at copy
  bandwidth and nothing else changed;
- ``bandwidth_for``: the average bandwidth they would need for a given overhead over residual.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .io_model import kernel_pass_steps
from .training_logs import BENCH_MODEL_PATH, overhead

STEP_PROFILE_PATH = BENCH_MODEL_PATH.parent / "profile_step_h100.json"
GROUPS = (  # (group, pattern on the kernel's name): the first match wins
    ("our connection kernels", r"^(coefficients_|post_res_|pre_)"),
    ("matrix products", r"nvjet|gemm|cutlass|xmma"),
    ("attention", r"sdpa|flash|fmha|dot_do_o|dq_to_16bits"),
    ("norms", r"layer_norm|GammaBeta|rms_norm"),
    ("other", r""),
)
# Our kernels by name, and the pass of kernel_pass_steps each makes. The dF pass (post_res_bwd)
# runs only where no later connection handed the dF over (kernels/chain.py).
KERNEL_PASSES = {
    "coefficients_fwd_kernel": "coefficients + pre",
    "post_res_fwd_kernel": "post + res",
    "post_res_bwd_kernel": "dF pass",
    "coefficients_bwd_token_kernel": "token pass",
    "coefficients_bwd_channel_kernel": "channel pass",
}


def group_of(name: str) -> str:
    """The group of ``GROUPS`` that a kernel of this name belongs to."""
    return next(group for group, pattern in GROUPS if re.search(pattern, name))


def group_times(kernels: dict[str, dict[str, float]]) -> dict[str, float]:
    """Device ms per step of each group, from ``{kernel name: {"ms": ..., "calls": ...}}``."""
    out = dict.fromkeys((g for g, _ in GROUPS), 0.0)
    for name, k in kernels.items():
        out[group_of(name)] += k["ms"]
    return out


def _calls(kernels: dict[str, dict[str, float]], name: str) -> int:
    return round(kernels[name]["calls"]) if name in kernels else 0


def connection_bytes(kernels: dict[str, dict[str, float]], n: int, C: int, tokens: int,
                     element_bytes: int = 2) -> dict[str, int]:
    """Bytes per step each of our connection kernels in ``kernels`` must move (activations only).

    Every connection runs one channel pass. It also writes the previous connection's dF when that
    connection ran no dF pass of its own, so the channel passes that did are the channel passes
    less the dF passes."""
    for name, v in (("tokens", tokens), ("element_bytes", element_bytes)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    unknown = [name for name in kernels if group_of(name) == GROUPS[0][0] and name not in KERNEL_PASSES]
    if unknown:
        raise ValueError(f"kernels has connection kernels whose passes are not known: {unknown}")
    alone = {s.name: s.act_read + s.act_write for s in kernel_pass_steps(n, C)}
    chained = {s.name: s.act_read + s.act_write for s in kernel_pass_steps(n, C, chained=True)}
    df_passes, channel = _calls(kernels, "post_res_bwd_kernel"), _calls(kernels, "coefficients_bwd_channel_kernel")
    if df_passes > channel:
        raise ValueError(f"more dF passes ({df_passes}) than channel passes ({channel}) in kernels")
    elements = {name: _calls(kernels, name) * alone[step] for name, step in KERNEL_PASSES.items()}
    with_prev = chained["channel pass (+ the previous dF)"]
    elements["coefficients_bwd_channel_kernel"] = df_passes * alone["channel pass"] + (channel - df_passes) * with_prev
    return {name: e * tokens * element_bytes for name, e in elements.items() if name in kernels}


def at_copy_bandwidth(residual_step_ms: float, mhc_step_ms: float, mhc_kernels: dict[str, dict[str, float]],
                      copy_gbs: float, n: int, C: int, tokens: int) -> dict[str, Any]:
    """Each of our kernels in the mHC step: ms, GB moved, TB/s reached, ms at ``copy_gbs``; their
    TB/s all together (``tbps_all``); and the mHC step with every one of them at copy bandwidth
    (none made slower) and all else unchanged."""
    for name, v in (("residual_step_ms", residual_step_ms), ("mhc_step_ms", mhc_step_ms), ("copy_gbs", copy_gbs)):
        if not v > 0:
            raise ValueError(f"{name} must be > 0, got {v!r}")
    rows, saved = [], 0.0
    for name, nbytes in connection_bytes(mhc_kernels, n, C, tokens).items():
        ms, at_copy = mhc_kernels[name]["ms"], nbytes / (copy_gbs * 1e9) * 1e3
        saved += max(0.0, ms - at_copy)
        rows.append({"kernel": name, "calls": _calls(mhc_kernels, name), "ms": ms, "gb": nbytes / 1e9,
                     "tbps": nbytes / (ms * 1e-3) / 1e12, "ms_at_copy": at_copy})
    step = mhc_step_ms - saved
    tbps_all = sum(r["gb"] for r in rows) / sum(r["ms"] for r in rows) if rows else 0.0
    return {"connection_kernels": rows, "tbps_all": tbps_all, "overhead": overhead(mhc_step_ms, residual_step_ms),
            "mhc_step_ms_if_at_copy": step, "overhead_if_at_copy": overhead(step, residual_step_ms)}


def bandwidth_for(overhead: float, residual_step_ms: float, mhc_step_ms: float,
                  mhc_kernels: dict[str, dict[str, float]], n: int, C: int, tokens: int) -> float:
    """The average GB/s our connection kernels would need for the mHC step to cost ``overhead``
    over residual (0.15 is 15%), everything else in the step as measured; inf when the rest of
    the step alone already costs more."""
    moved = sum(connection_bytes(mhc_kernels, n, C, tokens).values())
    ours_ms = sum(mhc_kernels[name]["ms"] for name in KERNEL_PASSES if name in mhc_kernels)
    budget_ms = (1 + overhead) * residual_step_ms - (mhc_step_ms - ours_ms)
    return moved / (budget_ms * 1e-3) / 1e9 if budget_ms > 0 else float("inf")


def load_step_profile(path: str | Path = STEP_PROFILE_PATH) -> dict[str, Any]:
    """``benchmarks/profile_step.py``'s JSON: ``device``, ``config``, ``sizes``, ``copy_gbs`` and
    ``runs``, each run's ``rows`` holding ``residual`` and ``mhc-triton``."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no profile_step result at {str(path)!r}")
    data = json.loads(path.read_text())
    for key in ("device", "config", "sizes", "copy_gbs", "runs"):
        if key not in data:
            raise ValueError(f"{str(path)!r} lacks {key!r}")
    for i, run in enumerate(data["runs"]):
        for row in ("residual", "mhc-triton"):
            if row not in run.get("rows", {}):
                raise ValueError(f"{str(path)!r}: run {i} lacks the row {row!r}")
    return data
