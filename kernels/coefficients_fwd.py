"""Forward: RMSNorm + projection + gates + σ/2σ + Sinkhorn, and optionally h = H_pre·x, fused.

One program owns BT tokens. First scan over the token's n·C values: the sum of squares and
the projection x·φ on the matrix units, fp32 accumulate. The RMSNorm division comes after
the matmul (z = r·(xφ)), as the paper does. The gates, σ, 2σ and the Sinkhorn iterations run
in registers. With ``WITH_PRE`` a second scan over the same tokens writes h = Σ_i H_pre[i]·x[i];
it runs backwards over the channels, so it starts with those the first scan read last, the
likeliest to be still in L2.

``DOT`` picks how x·φ uses the matrix units: "ieee" (fp32 inputs, exact fp32), "tf32" (the
paper's choice) or "bf16x2" for bf16 x: φ is split in registers into bf16 hi + lo parts and
both products accumulate in fp32, so x needs no conversion and φ keeps 16 mantissa bits,
more than tf32's 10.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .layout import cdiv
from .tile_ops import coefficient_maps, contract_columns, load_gates
from .tuning import one_wave


@triton.jit
def coefficients_fwd_kernel(
    x_ptr, phi_ptr, alpha_ptr, bias_ptr,  # x (T, N·C); φ (N·C, N²+2N) in the contract's order; α (3,); b (N²+2N,)
    z_ptr, r_ptr, pre_ptr, post_ptr, res_ptr, h_ptr,  # z (T, NZ), r (T,), H_pre/post (T, N), H_res (T, N, N), h (T, C)
    T, C, eps,
    N: tl.constexpr, NZ: tl.constexpr, ITERS: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BC: tl.constexpr,
    WITH_PRE: tl.constexpr, DOT: tl.constexpr,
):
    pid = tl.program_id(0)
    t = pid * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    K = N * C
    KC = N * N + 2 * N
    src, valid, _ = contract_columns(N, NZ)

    acc = tl.zeros((BT, NZ), dtype=tl.float32)
    squares = tl.zeros((BT, BK), dtype=tl.float32)
    for k0 in range(0, K, BK):
        k = k0 + tl.arange(0, BK)
        kmask = k < K
        xk = tl.load(x_ptr + t64[:, None] * K + k[None, :], mask=tmask[:, None] & kmask[None, :], other=0.0)
        xf = xk.to(tl.float32)
        squares += xf * xf
        ph = tl.load(phi_ptr + k[:, None] * KC + src[None, :], mask=kmask[:, None] & valid[None, :], other=0.0)
        ph = ph.to(tl.float32)
        if DOT == "bf16x2":
            hi = ph.to(tl.bfloat16)
            lo = (ph - hi.to(tl.float32)).to(tl.bfloat16)
            acc = tl.dot(xk, hi, acc)
            acc = tl.dot(xk, lo, acc)
        else:
            acc = tl.dot(xf, ph, acc, input_precision=DOT)

    r = tl.rsqrt(tl.sum(squares, axis=1) / K + eps)
    z = acc * r[:, None]
    cols = tl.arange(0, NZ)
    tl.store(z_ptr + t64[:, None] * NZ + cols[None, :], z, mask=tmask[:, None])
    tl.store(r_ptr + t, r, mask=tmask)

    alpha_cols, bias_cols = load_gates(alpha_ptr, bias_ptr, N, NZ)
    h_pre, h_post, h_res = coefficient_maps(z, alpha_cols, bias_cols, BT, N, NZ, ITERS)

    s = tl.arange(0, N)
    tl.store(pre_ptr + t64[:, None] * N + s[None, :], h_pre, mask=tmask[:, None])
    tl.store(post_ptr + t64[:, None] * N + s[None, :], h_post, mask=tmask[:, None])
    ij = s[:, None] * N + s[None, :]
    tl.store(res_ptr + t64[:, None, None] * (N * N) + ij[None, :, :], h_res, mask=tmask[:, None, None])

    if WITH_PRE:  # (BT, BC) tiles one stream at a time: a (BT, N, BC) tile spills registers
        nb = tl.cdiv(C, BC)
        for b in range(nb):
            c = (nb - 1 - b) * BC + tl.arange(0, BC)
            m2 = tmask[:, None] & (c < C)[None, :]
            h = tl.zeros((BT, BC), dtype=tl.float32)
            for i in tl.static_range(N):
                xi = tl.load(x_ptr + t64[:, None] * K + i * C + c[None, :], mask=m2, other=0.0)
                pre_i = tl.sum(tl.where(s[None, :] == i, h_pre, 0.0), axis=1)
                h += pre_i[:, None] * xi.to(tl.float32)
            tl.store(h_ptr + t64[:, None] * C + c[None, :], h.to(h_ptr.dtype.element_ty), mask=m2)


def dot_mode(dtype: torch.dtype) -> str:
    """How x·φ uses the matrix units for activations of this dtype."""
    return {torch.float32: "ieee", torch.bfloat16: "bf16x2"}.get(dtype, "tf32")


def projection_stages(itemsize: int, n: int, programs: int) -> int:
    """Pipeline depth of the projection loop. Five stages of x and φ where there is at most one
    program per multiprocessor, so nothing else on it could hide memory latency (T = 8192, C = 2048
    on an H100: 0.130 against 0.137 ms at three; benchmarks/NOTES.md, seventh session); with more
    programs five stages leave room for one block per multiprocessor instead of two, which was
    slower. Triton's default three for n = 8, whose five stages did not fit in shared memory (φ
    padded to 128 columns), and for 4-byte activations, not measured with five."""
    return 5 if itemsize == 2 and n <= 4 and one_wave(programs) else 3


def launch_coefficients_fwd(x2, phi, alpha, bias, outs, n, iters, eps, *, with_pre, blocks, dot=None):
    """x2 (T, n·C), φ (n·C, n²+2n), α (3,), b (n²+2n,), all contiguous; outs = (z, r, pre, post, res, h or None)."""
    z, r, pre, post, res, h = outs
    T, K = x2.shape
    bt, bk, bc, warps = blocks
    coefficients_fwd_kernel[(cdiv(T, bt),)](
        x2, phi, alpha, bias, z, r, pre, post, res, h if with_pre else z,
        T, K // n, eps,
        N=n, NZ=z.shape[1], ITERS=iters, BT=bt, BK=bk, BC=bc,
        WITH_PRE=with_pre, DOT=dot or dot_mode(x2.dtype), num_warps=warps,
        num_stages=projection_stages(x2.dtype.itemsize, n, cdiv(T, bt)),
    )
