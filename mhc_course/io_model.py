"""Bytes and FLOPs per token of one mHC connection, and the roofline that turns them into a time floor.

Memory traffic is counted in elements per token, split into activations (tensors of width C,
stored in the activations' dtype, e.g. bf16) and coefficients (the n² + 2n mapping entries,
float32). The paper (§4.3) counts, per token:

- a plain residual ``x + F(x)``: reads 2C, writes C;
- naive HC, one kernel per step: reads (5n+1)C + n² + 2n, writes (3n+1)C + n² + 2n;
- post and res fused with the residual merge: reads (n+1)C, writes nC (activations).

The fused kernels of ``mhc_course.kernels`` need at least, in activations: forward (3n+2)·C
(x read by the coefficient+pre kernel and again by post+res, h written, f read, x_next
written) and backward (3n+3)·C (g, x, f and dh read once, dx and df written once), so
forward+backward (6n+5)·C. Fusion changes how often tensors cross memory, not the arithmetic.
Our kernels make more passes than that minimum, (10n+6)·C for one connection alone and (9n+6)·C
for one between two others in a model (``kernel_pass_steps`` says which).

FLOPs follow the operations of the contract (a multiply-add counts 2); the roofline bounds the
time by max(bytes / bandwidth, FLOPs / peak). ``measure_copy_bandwidth`` and
``measure_matmul_tflops`` measure the two ceilings of the machine the code runs on.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

COEFFICIENT_BYTES = 4  # the coefficients are float32 (paper §4.3)


@dataclass(frozen=True)
class Traffic:
    """Elements read and written per token: activations (in their dtype) and coefficients (float32)."""

    name: str
    act_read: int = 0
    act_write: int = 0
    coef_read: int = 0
    coef_write: int = 0

    @property
    def reads(self) -> int:
        return self.act_read + self.coef_read

    @property
    def writes(self) -> int:
        return self.act_write + self.coef_write

    def activation_bytes(self, element_bytes: int) -> int:
        """Bytes of activations read + written per token."""
        return (self.act_read + self.act_write) * element_bytes

    def bytes(self, element_bytes: int) -> int:
        """All bytes per token: activations in ``element_bytes`` each, coefficients in float32."""
        return self.activation_bytes(element_bytes) + (self.coef_read + self.coef_write) * COEFFICIENT_BYTES

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(f"{self.name} + {other.name}", self.act_read + other.act_read, self.act_write + other.act_write,
                       self.coef_read + other.coef_read, self.coef_write + other.coef_write)


def _check_nc(n: int, C: int) -> None:
    for name, v in (("n", n), ("C", C)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r} (n={n!r}, C={C!r})")


def total(steps: list[Traffic], name: str) -> Traffic:
    """The sum of a schedule's steps, named ``name``."""
    return Traffic(name, sum(s.act_read for s in steps), sum(s.act_write for s in steps),
                   sum(s.coef_read for s in steps), sum(s.coef_write for s in steps))


def residual_traffic(C: int) -> Traffic:
    """A plain residual ``x + f``: reads x and f (2C), writes C."""
    _check_nc(1, C)
    return Traffic("plain residual", act_read=2 * C, act_write=C)


def naive_hc_steps(n: int, C: int) -> list[Traffic]:
    """The unfused connection, one kernel per step; the totals are the paper's naive-HC counts.

    coefficients (read x, write the n² + 2n maps), pre (read x and H_pre, write h), post (read f
    and H_post, write H_post ⊗ f), res (read x and H_res, write H_res·x), and the residual merge
    (read both nC results, write x_next).
    """
    _check_nc(n, C)
    k = n * n + 2 * n
    return [
        Traffic("coefficients", act_read=n * C, coef_write=k),
        Traffic("pre: H_pre·x", act_read=n * C, coef_read=n, act_write=C),
        Traffic("post: H_post ⊗ f", act_read=C, coef_read=n, act_write=n * C),
        Traffic("res: H_res·x", act_read=n * C, coef_read=n * n, act_write=n * C),
        Traffic("merge: res + post", act_read=2 * n * C, act_write=n * C),
    ]


def naive_hc_traffic(n: int, C: int) -> Traffic:
    """Naive HC per token: reads (5n+1)C + n² + 2n, writes (3n+1)C + n² + 2n."""
    return total(naive_hc_steps(n, C), "naive HC")


def fused_post_res_traffic(n: int, C: int) -> Traffic:
    """post, res and the merge in one kernel: reads x (nC), f (C) and H_post, H_res; writes nC."""
    _check_nc(n, C)
    return Traffic("fused post+res", act_read=(n + 1) * C, coef_read=n * n + n, act_write=n * C)


def fused_forward_steps(n: int, C: int) -> list[Traffic]:
    """The fused forward at its minimum, activations only (coefficients are O(n²) floats per token)."""
    _check_nc(n, C)
    return [
        Traffic("coefficients + pre", act_read=n * C, act_write=C),
        Traffic("post + res", act_read=(n + 1) * C, act_write=n * C),
    ]


def fused_backward_steps(n: int, C: int) -> list[Traffic]:
    """The fused backward at its minimum, activations only: read g, x (nC each), f, dh; write dx, df."""
    _check_nc(n, C)
    return [
        Traffic("read g, x, f, dh", act_read=(2 * n + 2) * C),
        Traffic("write dx, df", act_write=(n + 1) * C),
    ]


def fused_forward_traffic(n: int, C: int) -> Traffic:
    """Fused forward minimum: (3n+2)·C activations per token."""
    return total(fused_forward_steps(n, C), "fused forward")


def fused_forward_backward_traffic(n: int, C: int) -> Traffic:
    """Fused forward+backward minimum: (6n+5)·C activations per token."""
    return total(fused_forward_steps(n, C) + fused_backward_steps(n, C), "fused forward+backward")


def kernel_pass_steps(n: int, C: int, chained: bool = False) -> list[Traffic]:
    """The passes ``mhc_course.kernels.mhc_connection`` makes, activations only: (10n+6)·C per token,
    or (9n+6)·C with ``chained``.

    Forward (4n+2)·C: the coefficients kernel reads x twice (H_pre, and so h = H_pre·x, is known
    only once the projection has read the whole row) and writes h; post+res is at its minimum.
    Backward (6n+4)·C: the dF pass reads g and writes dF before the sublayer's backward; after it
    the token pass reads g, x, f and dh for the per-token reductions, and the channel pass reads
    g, x and dh again to write dx. Against the minimum, (6n+5)·C, x is read once more in the
    forward, and in the backward g twice more and x and dh once more: (4n+1)·C in all.

    ``chained``: a connection between two others, as in a model (``kernels/chain.py``, n ≤ 4).
    The next connection's channel pass writes this one's dF, so its dF pass is gone, and its own
    channel pass writes the previous connection's dF: n·C less, backward (5n+4)·C.
    """
    _check_nc(n, C)
    backward = [Traffic("dF pass", act_read=n * C, act_write=C)] if not chained else []
    backward += [
        Traffic("token pass", act_read=(2 * n + 2) * C),
        Traffic("channel pass" + (" (+ the previous dF)" if chained else ""), act_read=(2 * n + 1) * C,
                act_write=(n + 1 if chained else n) * C),
    ]
    return [
        Traffic("coefficients + pre", act_read=2 * n * C, act_write=C),
        Traffic("post + res", act_read=(n + 1) * C, act_write=n * C),
        *backward,
    ]


def kernel_pass_traffic(n: int, C: int, chained: bool = False) -> Traffic:
    """What our kernels move for forward+backward: (10n+6)·C activations per token, (9n+6)·C chained."""
    return total(kernel_pass_steps(n, C, chained), "our kernels' passes" + (", chained" if chained else ""))


def connection_flops(n: int, C: int, iters: int = 20) -> dict[str, dict[str, int]]:
    """FLOPs per token of one mHC connection, by part: ``{"forward": {...}, "backward": {...}}``.

    A multiply-add counts 2 and an exp, σ or division 1. The backward counts both products of
    the projection (dx and dφ), and Sinkhorn–Knopp's backward as our kernels run it: for each
    of the ``iters`` steps in reverse, the forward iterations before it are recomputed
    (iters·(iters−1)/2 of them, 4n² each) and the step is differentiated (12n²).
    """
    _check_nc(n, C)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1, got {iters!r}")
    nc, k = n * C, n * n + 2 * n
    forward = {
        "RMS: sum of squares": 2 * nc,
        "projection v·φ": 2 * nc * k,
        "gates, σ, Sinkhorn": 3 * k + n * n + 4 * n * n * iters,
        "pre: H_pre·x": 2 * nc,
        "post+res": 2 * n * nc + 2 * nc,
    }
    backward = {
        "RMS backward": 4 * nc,
        "projection backward (dx, dφ)": 4 * nc * k,
        "gates, σ, Sinkhorn backward": 6 * k + 4 * n * n * iters * (iters - 1) // 2 + 12 * n * n * iters,
        "pre backward": 4 * nc,
        "post+res backward": 4 * n * nc + 4 * nc,
    }
    return {"forward": forward, "backward": backward}


def flops_per_token(n: int, C: int, iters: int = 20, backward: bool = False) -> int:
    """Total of ``connection_flops``: the forward, or forward + backward with ``backward=True``."""
    parts = connection_flops(n, C, iters)
    return sum(parts["forward"].values()) + (sum(parts["backward"].values()) if backward else 0)


def residual_flops(C: int) -> int:
    """A plain residual adds two vectors: C FLOPs per token."""
    _check_nc(1, C)
    return C


def arithmetic_intensity(flops: float, nbytes: float) -> float:
    """FLOPs per byte moved."""
    if nbytes <= 0:
        raise ValueError(f"nbytes must be > 0, got {nbytes!r}")
    return flops / nbytes


def attainable_flops(intensity: float, bandwidth_gbs: float, peak_tflops: float | None = None) -> float:
    """The roofline in FLOP/s: min(peak, intensity × bandwidth); only the bandwidth roof if peak is None."""
    roof = intensity * bandwidth_gbs * 1e9
    return roof if peak_tflops is None else min(roof, peak_tflops * 1e12)


def ridge_point(bandwidth_gbs: float, peak_tflops: float) -> float:
    """The intensity (FLOP/byte) where the bandwidth roof meets the compute roof."""
    return peak_tflops * 1e12 / (bandwidth_gbs * 1e9)


def floor_ms(bytes_per_token: float, tokens: int, bandwidth_gbs: float) -> float:
    """Time to move ``bytes_per_token × tokens`` bytes at ``bandwidth_gbs`` (read + write) GB/s, in ms."""
    if bandwidth_gbs <= 0:
        raise ValueError(f"bandwidth_gbs must be > 0, got {bandwidth_gbs!r}")
    return bytes_per_token * tokens / (bandwidth_gbs * 1e9) * 1e3


def _median_ms(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    if device.type == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=10, rep=max(reps, 20), return_mode="median")
    fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure_copy_bandwidth(device: str | torch.device = "cpu", mib: int = 64, reps: int = 5) -> float:
    """GB/s read + written by a device-local copy of a ``mib`` MiB float32 tensor (median of ``reps``)."""
    device = torch.device(device)
    src = torch.randn(mib * 2**20 // 4, device=device)
    dst = torch.empty_like(src)
    ms = _median_ms(lambda: dst.copy_(src), device, reps)
    return 2 * src.numel() * 4 / (ms * 1e-3) / 1e9


def measure_matmul_tflops(device: str | torch.device = "cpu", size: int = 1024,
                          dtype: torch.dtype = torch.float32, reps: int = 3) -> float:
    """TFLOP/s of a ``size``³ matrix product in ``dtype`` (2·size³ FLOPs, median of ``reps``)."""
    device = torch.device(device)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    ms = _median_ms(lambda: a @ b, device, reps)
    return 2 * size**3 / (ms * 1e-3) / 1e12


def connection_inputs(T: int, n: int, C: int, dtype: torch.dtype = torch.bfloat16,
                      device: str | torch.device = "cuda", seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Leaves (x, φ, b, α) requiring grad for timing one connection over T tokens: x (T, n, C) in
    ``dtype``, φ (n·C, n²+2n) scaled by 1/√(nC), b random, α = 0.5; float32 parameters."""
    _check_nc(n, C)
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    k = n * n + 2 * n
    x = torch.randn(T, n, C, device=device, generator=g).to(dtype).requires_grad_()
    phi = (torch.randn(n * C, k, device=device, generator=g) / (n * C) ** 0.5).requires_grad_()
    bias = torch.randn(k, device=device, generator=g).requires_grad_()
    alpha = torch.full((3,), 0.5, device=device).requires_grad_()
    return x, phi, bias, alpha


def time_connection(T: int, n: int, C: int, dtype: torch.dtype = torch.bfloat16, device: str | torch.device = "cuda",
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Median ms (``triton.testing.do_bench``) of one connection around an identity sublayer, as
    benchmarks/bench_connection.py times it: ``{"ours": {...}, "eager reference": {...}}``, each with
    ``fwd_ms`` and ``fwd_bwd_ms``. Ours is ``mhc_course.kernels.mhc_connection``. CUDA only."""
    device = torch.device(device)
    if device.type != "cuda":
        raise ValueError(f"time_connection needs a CUDA device, got {device}")
    _check_nc(n, C)
    from triton.testing import do_bench

    from . import kernels
    from . import mhc as reference

    leaves = list(connection_inputs(T, n, C, dtype, device, seed))
    x, phi, bias, alpha = leaves
    grad = torch.randn_like(x)

    def eager() -> torch.Tensor:
        h_pre, h_post, h_res = reference.mhc_coefficients(x, phi, bias, alpha)
        return reference.mhc_post_res(x, reference.mhc_pre(x, h_pre), h_post, h_res)

    def ours() -> torch.Tensor:
        return kernels.mhc_connection(x, phi, bias, alpha, lambda h: h)[0]

    out = {}
    for name, fn in (("ours", ours), ("eager reference", eager)):
        fwd = do_bench(fn, warmup=10, rep=50, return_mode="median")
        both = do_bench(lambda: fn().backward(grad), warmup=10, rep=50, grad_to_none=leaves,  # noqa: B023
                        return_mode="median")
        out[name] = {"fwd_ms": fwd, "fwd_bwd_ms": both}
    return out
