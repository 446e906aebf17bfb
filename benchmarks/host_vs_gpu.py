"""GPU time and host time of one fused mHC connection, forward + backward (a benchmark, run on a CUDA GPU).

For each width: 20 calls timed with CUDA events (the GPU's elapsed time), then 20 calls timed
with a host clock and no synchronisation inside the loop (the host's own time per call: when it
exceeds the GPU time, the GPU waits for the host). T = 16384 tokens, n = 4, bf16, identity
sublayer, gradients reset every call.

    python benchmarks/host_vs_gpu.py --widths 512 2048
"""

from __future__ import annotations

import argparse
import time

import torch

from mhc_course import kernels as tk
from mhc_course.io_model import connection_inputs


def measure(T: int, n: int, C: int, calls: int = 20) -> tuple[float, float]:
    """(GPU ms per call, host ms per call)."""
    x, phi, bias, alpha = connection_inputs(T, n, C)
    g = torch.randn_like(x)

    def call() -> None:
        for t in (x, phi, bias, alpha):
            t.grad = None
        out, _ = tk.mhc_connection(x, phi, bias, alpha, lambda h: h)
        out.backward(g)

    for _ in range(5):
        call()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        call()
    end.record()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        call()
    host = (time.perf_counter() - t0) / calls
    torch.cuda.synchronize()
    return start.elapsed_time(end) / calls, host * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--widths", type=int, nargs="+", default=[512, 2048])
    args = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("host_vs_gpu.py needs a CUDA GPU")
    for C in args.widths:
        gpu_ms, host_ms = measure(args.tokens, 4, C)
        print(f"C={C}: {gpu_ms:.3f} ms per fwd+bwd (events), host time per call {host_ms:.3f} ms", flush=True)


if __name__ == "__main__":
    main()
