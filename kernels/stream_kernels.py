"""Kernels that move the n·C activations: pre (h = H_pre·x) and post+res (x_next), with backwards.

Each program owns BT tokens and, in the forward kernels, BC channels; the backward kernels
loop over C so that the per-token reductions (dH_pre, dH_post, dH_res) finish inside one
program with no atomics. All arithmetic is fp32; activations keep their dtype in memory.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .layout import cdiv


@triton.jit
def pre_fwd_kernel(x_ptr, pre_ptr, h_ptr, T, C, N: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr):
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    tmask, cmask = t < T, c < C
    t64 = t.to(tl.int64)
    s = tl.arange(0, N)
    x3 = tl.load(x_ptr + t64[:, None, None] * (N * C) + s[None, :, None] * C + c[None, None, :],
                 mask=tmask[:, None, None] & cmask[None, None, :], other=0.0).to(tl.float32)
    hp = tl.load(pre_ptr + t64[:, None] * N + s[None, :], mask=tmask[:, None], other=0.0)
    h = tl.sum(hp[:, :, None] * x3, axis=1)
    tl.store(h_ptr + t64[:, None] * C + c[None, :], h.to(h_ptr.dtype.element_ty), mask=tmask[:, None] & cmask[None, :])


@triton.jit
def pre_bwd_kernel(x_ptr, pre_ptr, dh_ptr, dx_ptr, dpre_ptr, T, C, N: tl.constexpr, BT: tl.constexpr,
                   BC: tl.constexpr):
    """dx[i] = H_pre[i]·dh; dH_pre[i] = Σ_c dh·x[i]."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    s = tl.arange(0, N)
    hp = tl.load(pre_ptr + t64[:, None] * N + s[None, :], mask=tmask[:, None], other=0.0)
    dpre = tl.zeros((BT, N), dtype=tl.float32)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        m3 = tmask[:, None, None] & (c < C)[None, None, :]
        off3 = t64[:, None, None] * (N * C) + s[None, :, None] * C + c[None, None, :]
        x3 = tl.load(x_ptr + off3, mask=m3, other=0.0).to(tl.float32)
        dh = tl.load(dh_ptr + t64[:, None] * C + c[None, :], mask=tmask[:, None] & (c < C)[None, :],
                     other=0.0).to(tl.float32)
        tl.store(dx_ptr + off3, (hp[:, :, None] * dh[:, None, :]).to(dx_ptr.dtype.element_ty), mask=m3)
        dpre += tl.sum(x3 * dh[:, None, :], axis=2)
    tl.store(dpre_ptr + t64[:, None] * N + s[None, :], dpre, mask=tmask[:, None])


@triton.jit
def post_res_fwd_kernel(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, T, C, N: tl.constexpr, BT: tl.constexpr,
                        BC: tl.constexpr):
    """out[i] = Σ_j H_res[i, j]·x[j] + H_post[i]·f."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    tmask, cmask = t < T, c < C
    t64 = t.to(tl.int64)
    s = tl.arange(0, N)
    m2 = tmask[:, None] & cmask[None, :]
    f = tl.load(f_ptr + t64[:, None] * C + c[None, :], mask=m2, other=0.0).to(tl.float32)
    hpost = tl.load(post_ptr + t64[:, None] * N + s[None, :], mask=tmask[:, None], other=0.0)
    acc = hpost[:, :, None] * f[:, None, :]
    for j in tl.static_range(N):
        xj = tl.load(x_ptr + t64[:, None] * (N * C) + j * C + c[None, :], mask=m2, other=0.0).to(tl.float32)
        hres_col = tl.load(res_ptr + t64[:, None] * (N * N) + s[None, :] * N + j, mask=tmask[:, None], other=0.0)
        acc += hres_col[:, :, None] * xj[:, None, :]
    off3 = t64[:, None, None] * (N * C) + s[None, :, None] * C + c[None, None, :]
    tl.store(out_ptr + off3, acc.to(out_ptr.dtype.element_ty), mask=tmask[:, None, None] & cmask[None, None, :])


@triton.jit
def post_res_bwd_kernel(g_ptr, x_ptr, f_ptr, post_ptr, res_ptr, dx_ptr, df_ptr, dpost_ptr, dres_ptr, T, C,
                        N: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, ONLY_DF: tl.constexpr):
    """df = Σ_i H_post[i]·g[i]; unless ONLY_DF also dx[j] = Σ_i H_res[i, j]·g[i],
    dH_post[i] = Σ_c g[i]·f and dH_res[i, j] = Σ_c g[i]·x[j]."""
    t = tl.program_id(0) * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    s = tl.arange(0, N)
    hpost = tl.load(post_ptr + t64[:, None] * N + s[None, :], mask=tmask[:, None], other=0.0)
    dpost = tl.zeros((BT, N), dtype=tl.float32)
    dres = tl.zeros((BT, N, N), dtype=tl.float32)
    for c0 in range(0, C, BC):
        c = c0 + tl.arange(0, BC)
        cm = c < C
        m2 = tmask[:, None] & cm[None, :]
        off3 = t64[:, None, None] * (N * C) + s[None, :, None] * C + c[None, None, :]
        g3 = tl.load(g_ptr + off3, mask=tmask[:, None, None] & cm[None, None, :], other=0.0).to(tl.float32)
        df = tl.sum(hpost[:, :, None] * g3, axis=1)
        tl.store(df_ptr + t64[:, None] * C + c[None, :], df.to(df_ptr.dtype.element_ty), mask=m2)
        if not ONLY_DF:
            f = tl.load(f_ptr + t64[:, None] * C + c[None, :], mask=m2, other=0.0).to(tl.float32)
            dpost += tl.sum(g3 * f[:, None, :], axis=2)
            for j in tl.static_range(N):
                offj = t64[:, None] * (N * C) + j * C + c[None, :]
                xj = tl.load(x_ptr + offj, mask=m2, other=0.0).to(tl.float32)
                dres += tl.where(s[None, None, :] == j, tl.sum(g3 * xj[:, None, :], axis=2)[:, :, None], 0.0)
                hres_col = tl.load(res_ptr + t64[:, None] * (N * N) + s[None, :] * N + j, mask=tmask[:, None],
                                   other=0.0)
                dxj = tl.sum(hres_col[:, :, None] * g3, axis=1)
                tl.store(dx_ptr + offj, dxj.to(dx_ptr.dtype.element_ty), mask=m2)
    if not ONLY_DF:
        ij = s[:, None] * N + s[None, :]
        tl.store(dpost_ptr + t64[:, None] * N + s[None, :], dpost, mask=tmask[:, None])
        tl.store(dres_ptr + t64[:, None, None] * (N * N) + ij[None, :, :], dres, mask=tmask[:, None, None])


def launch_pre_fwd(x3, pre, h, blocks):
    T, n, C = x3.shape
    bt, bc, warps = blocks
    pre_fwd_kernel[(cdiv(T, bt), cdiv(C, bc))](x3, pre, h, T, C, N=n, BT=bt, BC=bc, num_warps=warps)


def launch_pre_bwd(x3, pre, dh, dx, dpre, blocks):
    T, n, C = x3.shape
    bt, bc, warps = blocks
    pre_bwd_kernel[(cdiv(T, bt),)](x3, pre, dh, dx, dpre, T, C, N=n, BT=bt, BC=bc, num_warps=warps)


def launch_post_res_fwd(x3, f, post, res, out, blocks):
    T, n, C = x3.shape
    bt, bc, warps = blocks
    post_res_fwd_kernel[(cdiv(T, bt), cdiv(C, bc))](
        x3, f, post, res, out, T, C, N=n, BT=bt, BC=bc, num_warps=warps
    )


def launch_post_res_bwd(g3, x3, f, post, res, df, full_outs, blocks):
    """full_outs = (dx, dpost, dres) for the full backward, or None for df only."""
    T, n, C = g3.shape
    bt, bc, warps = blocks
    dx, dpost, dres = full_outs if full_outs is not None else (g3, post, res)
    post_res_bwd_kernel[(cdiv(T, bt),)](
        g3, x3, f, post, res, dx, df, dpost, dres, T, C, N=n, BT=bt, BC=bc, ONLY_DF=full_outs is None,
        num_warps=warps,
    )
