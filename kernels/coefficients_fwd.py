"""Forward: RMSNorm + projection + gates + σ/2σ + Sinkhorn, and optionally h = H_pre·x, fused.

One program owns BT tokens. First scan over the token's n·C values: the sum of squares and
the projection x·φ on the matrix units (``tl.dot``, fp32 accumulate; tf32 for half inputs as
in the paper, exact fp32 for fp32 inputs). The RMSNorm division comes after the matmul
(z = r·(xφ)), as the paper does. The gates, σ, 2σ and 20 Sinkhorn iterations run in
registers. With ``WITH_PRE`` a second scan over the same tokens writes h = Σ_i H_pre[i]·x[i].
"""

from __future__ import annotations

import triton
import triton.language as tl

from .tile_ops import coefficient_maps


@triton.jit
def coefficients_fwd_kernel(
    x_ptr, phi_ptr, alpha_ptr, bias_ptr,  # x (T, N·C); φ (N·C, NZ) f32; α, b (NZ,) f32
    z_ptr, r_ptr, pre_ptr, post_ptr, res_ptr, h_ptr,  # z (T, NZ), r (T,), H_pre/post (T, N), H_res (T, N, N), h (T, C)
    T, C, eps,
    N: tl.constexpr, NZ: tl.constexpr, ITERS: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BC: tl.constexpr,
    WITH_PRE: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    t = pid * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    K = N * C
    cols = tl.arange(0, NZ)

    acc = tl.zeros((BT, NZ), dtype=tl.float32)
    sumsq = tl.zeros((BT,), dtype=tl.float32)
    for k0 in range(0, K, BK):
        k = k0 + tl.arange(0, BK)
        kmask = k < K
        xk = tl.load(x_ptr + t64[:, None] * K + k[None, :], mask=tmask[:, None] & kmask[None, :], other=0.0)
        xk = xk.to(tl.float32)
        sumsq += tl.sum(xk * xk, axis=1)
        ph = tl.load(phi_ptr + k[:, None] * NZ + cols[None, :], mask=kmask[:, None], other=0.0)
        acc = tl.dot(xk, ph, acc, input_precision=DOT_PRECISION)

    r = tl.rsqrt(sumsq / K + eps)
    z = acc * r[:, None]
    tl.store(z_ptr + t64[:, None] * NZ + cols[None, :], z, mask=tmask[:, None])
    tl.store(r_ptr + t, r, mask=tmask)

    alpha_cols = tl.load(alpha_ptr + cols)
    bias_cols = tl.load(bias_ptr + cols)
    h_pre, h_post, h_res, _ = coefficient_maps(z, alpha_cols, bias_cols, BT, N, NZ, ITERS)

    s = tl.arange(0, N)
    tl.store(pre_ptr + t64[:, None] * N + s[None, :], h_pre, mask=tmask[:, None])
    tl.store(post_ptr + t64[:, None] * N + s[None, :], h_post, mask=tmask[:, None])
    ij = s[:, None] * N + s[None, :]
    tl.store(res_ptr + t64[:, None, None] * (N * N) + ij[None, :, :], h_res, mask=tmask[:, None, None])

    if WITH_PRE:
        for c0 in range(0, C, BC):
            c = c0 + tl.arange(0, BC)
            m3 = tmask[:, None, None] & (c < C)[None, None, :]
            x3 = tl.load(x_ptr + t64[:, None, None] * K + s[None, :, None] * C + c[None, None, :], mask=m3, other=0.0)
            h = tl.sum(h_pre[:, :, None] * x3.to(tl.float32), axis=1)
            tl.store(h_ptr + t64[:, None] * C + c[None, :], h.to(h_ptr.dtype.element_ty),
                     mask=tmask[:, None] & (c < C)[None, :])


def launch_coefficients_fwd(x2, phi_p, alpha_p, bias_p, outs, n, iters, eps, *, with_pre, blocks):
    """x2 (T, n·C) contiguous; outs = (z, r, pre, post, res, h or None)."""
    z, r, pre, post, res, h = outs
    T, K = x2.shape
    C = K // n
    bt, bk, bc, warps = blocks
    grid = (triton.cdiv(T, bt),)
    coefficients_fwd_kernel[grid](
        x2, phi_p, alpha_p, bias_p, z, r, pre, post, res, h if with_pre else z,
        T, C, eps,
        N=n, NZ=phi_p.shape[1], ITERS=iters, BT=bt, BK=bk, BC=bc,
        WITH_PRE=with_pre, DOT_PRECISION="ieee" if x2.dtype.itemsize == 4 else "tf32",
        num_warps=warps,
    )
