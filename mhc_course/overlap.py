"""Scheduling post/res on a high-priority CUDA stream (the paper's DualPipe change), live or as a schematic.

In DeepSeek's DualPipe schedule, compute and communication of different micro-batches overlap.
mHC widens what crosses a pipeline stage from C to n·C per token and adds small kernels to
every layer. The paper runs the MLP's F_post,res kernel on a dedicated high-priority compute
stream, so that it is not queued behind long kernels of the other micro-batch and the data it
produces can be sent early; it also avoids persistent kernels for long attention operations,
so that they can be pre-empted.

``overlap_timings`` (CUDA only) measures the idea on one GPU: a chain of large matmuls (the
stand-in for a long attention or MLP kernel of the other micro-batch) is queued first, then a
post/res update is launched, on the same stream, on a normal-priority second stream, or on a
high-priority one (``torch.cuda.Stream(priority=-1)``). It records when the post/res finishes
and when everything finishes, both measured from the start of the matmuls.

``dualpipe_schematic`` returns the segments of a timeline drawn from the paper's description,
for machines without a GPU: a schematic in arbitrary units, not a measurement.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from .mhc import mhc_post_res

ORDERS = ("same stream, post/res after", "same stream, post/res first", "second stream, normal priority",
          "second stream, high priority")


def _post_res_fn(x: torch.Tensor, f: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor):
    """The fused Triton post/res kernel when it loads and runs on these inputs, else the reference; and its name."""
    try:
        from .kernels import mhc_post_res as fused

        fused(x, f, h_post, h_res)
        return fused, "fused Triton kernel (mhc_course.kernels)"
    except Exception:  # noqa: BLE001 - any failure of the optional kernel falls back to the reference
        return mhc_post_res, "reference mhc_course.mhc.mhc_post_res"


def overlap_timings(*, tokens: int = 16384, n: int = 4, C: int = 2048, matmul_size: int = 8192, matmuls: int = 6,
                    repeats: int = 5, dtype: torch.dtype = torch.bfloat16) -> dict[str, object]:
    """Finish times (ms from the start of the matmul chain) of post/res and of all work, per launch order.

    Args:
        tokens, n, C: the post/res problem, x (tokens, n, C) and f (tokens, C) in ``dtype``.
        matmul_size, matmuls: the long work, ``matmuls`` products of (size × size) matrices.
        repeats: medians over this many runs (after one warm-up).

    Returns:
        dict with ``orders`` (``ORDERS``), ``post_res_done`` and ``all_done`` (lists of ms, one per
        order), ``post_res_alone`` and ``matmuls_alone`` (ms), and ``kernel`` (which post/res ran).
    """
    if not torch.cuda.is_available():
        raise ValueError("overlap_timings needs a CUDA device; torch.cuda.is_available() is False")
    dev = torch.device("cuda")
    x = torch.randn(tokens, n, C, device=dev, dtype=dtype)
    f = torch.randn(tokens, C, device=dev, dtype=dtype)
    h_post = torch.rand(tokens, n, device=dev) * 2
    h_res = torch.softmax(torch.randn(tokens, n, n, device=dev), dim=-1)
    post_res, kernel = _post_res_fn(x, f, h_post, h_res)
    a = torch.randn(matmul_size, matmul_size, device=dev, dtype=dtype)
    streams = {"main": torch.cuda.current_stream(dev), "normal": torch.cuda.Stream(dev, priority=0),
               "high": torch.cuda.Stream(dev, priority=-1)}

    def matmul_chain() -> None:
        b = a
        for _ in range(matmuls):
            b = a @ b

    def run(order: str) -> tuple[float, float]:
        main = streams["main"]
        start, pr_done, all_done = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        main.synchronize()
        start.record(main)
        if order == ORDERS[1]:
            post_res(x, f, h_post, h_res)
            pr_done.record(main)
            matmul_chain()
        else:
            matmul_chain()
            side = {ORDERS[0]: main, ORDERS[2]: streams["normal"], ORDERS[3]: streams["high"]}[order]
            side.wait_event(start)
            with torch.cuda.stream(side):
                post_res(x, f, h_post, h_res)
                pr_done.record(side)
            main.wait_stream(side)
        all_done.record(main)
        all_done.synchronize()
        return start.elapsed_time(pr_done), start.elapsed_time(all_done)

    def alone(fn) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    result: dict[str, object] = {"orders": list(ORDERS), "post_res_done": [], "all_done": [], "kernel": kernel}
    for order in ORDERS:
        run(order)  # warm-up
        runs = [run(order) for _ in range(repeats)]
        result["post_res_done"].append(statistics.median(r[0] for r in runs))
        result["all_done"].append(statistics.median(r[1] for r in runs))
    result["post_res_alone"] = statistics.median(alone(lambda: post_res(x, f, h_post, h_res)) for _ in range(repeats))
    result["matmuls_alone"] = statistics.median(alone(matmul_chain) for _ in range(repeats))
    return result


@dataclass(frozen=True)
class Segment:
    """One bar of the schematic timeline: ``row`` (a stream), ``label``, start and end in arbitrary units."""

    row: str
    label: str
    start: float
    end: float
    kind: str


SCHEMATIC_ROWS = ("compute stream", "high-priority stream", "communication")


def dualpipe_schematic(high_priority: bool) -> list[Segment]:
    """Segments of a schematic timeline of one overlapped chunk pair, after the paper's description.

    Micro-batch A finishes its MLP and must send its n streams to the next pipeline stage, which
    needs F_post,res of that MLP first; micro-batch B's long attention kernel is queued on the
    compute stream. Without priority, post/res waits behind B's attention and the send starts
    late; on a high-priority stream it runs as soon as the MLP ends, and the send overlaps B's
    attention.
    Units are arbitrary: this is a picture of the idea, not a measurement.
    """
    seg = Segment
    out = [seg("compute stream", "A: MLP", 0.0, 3.0, "mlp")]
    if high_priority:  # post/res takes a little of the SMs while B's attention runs, so B ends a little later
        out += [
            seg("compute stream", "B: attention (long, not a persistent kernel)", 3.0, 9.4, "attention"),
            seg("high-priority stream", "A: F_post,res", 3.0, 3.6, "post_res"),
            seg("communication", "A: send n·C per token to the next stage", 3.6, 7.6, "comm"),
        ]
    else:
        out += [
            seg("compute stream", "B: attention (long)", 3.0, 9.0, "attention"),
            seg("compute stream", "A: F_post,res", 9.0, 9.6, "post_res"),
            seg("communication", "A: send n·C per token to the next stage", 9.6, 13.6, "comm"),
        ]
    return out
