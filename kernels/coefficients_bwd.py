"""Backward of the coefficients, in two passes over the activations.

Pass A (token-major, one program per BT tokens) ends with the gradient of each token's
coefficient logits, da (BT, NZ): it needs dH_pre, dH_post and dH_res per token. Called from
``mhc_coefficients``' backward those come in as tensors; called from the fused connection it
reduces them itself over C from the upstream gradient g (of x_next), x, f and dh (of h):
dH_res[i, j] = Σ_c g[i]·x[j], dH_post[i] = Σ_c g[i]·f, dH_pre[i] = Σ_c dh·x[i], one channel
block at a time. (Two alternatives measured slower on an H100, see benchmarks/NOTES.md:
element-wise 4-D accumulators, and g·xᵀ on the matrix units over BT·n rows.) Then σ' and the Sinkhorn backward
(recomputed in registers) give da, and from it

    dz = α⊙da,  dy = r·dz (dy of y = v·φ),  s = r²·Σ_k dz_k·z_k / (n·C),

so that dv = dy·φᵀ − s·v (the second term is the RMSNorm's). Each program also writes its
share of db = Σ_t da and dα_g = Σ_t Σ_{k∈g} da_k·z_k.

Pass B (one program per two streams (one when n = 1), channel block and token split) writes
dx[j] = dy·φ_jᵀ − s·x[j] (+ Σ_i H_res[i, j]·g[i] + H_pre[j]·dh in the fused connection) and
accumulates dφ_j = Σ_t x[j]ᵀ·dy for its rows of φ, one matrix-unit product per token block.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .layout import cdiv
from .tile_ops import contract_columns, load_gates, put_chunk, sinkhorn_tile_backward, take_chunk


@triton.jit
def coefficients_bwd_token_kernel(
    z_ptr, r_ptr, alpha_ptr, bias_ptr,
    dpre_ptr, dpost_ptr, dres_ptr,  # given gradients (T, N), (T, N), (T, N, N) when not REDUCE
    g_ptr, x_ptr, f_ptr, dh_ptr,  # g, x (T, N, C); f, dh (T, C) when REDUCE
    dy_ptr, s_ptr, part_ptr,  # outputs: dy (T, NZ) f32; s (T,) f32; per-program [db (N²+2N) | dα (3)]
    T, C,
    N: tl.constexpr, NZ: tl.constexpr, ITERS: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
    REDUCE: tl.constexpr,
):
    pid = tl.program_id(0)
    t = pid * BT + tl.arange(0, BT)
    tmask = t < T
    t64 = t.to(tl.int64)
    s_idx = tl.arange(0, N)
    ij = s_idx[:, None] * N + s_idx[None, :]

    if REDUCE:  # (BT, BC) tiles one stream at a time; repeated loads of x[j] hit L1
        K = N * C
        dpre = tl.zeros((BT, N), dtype=tl.float32)
        dpost = tl.zeros((BT, N), dtype=tl.float32)
        dres = tl.zeros((BT, N, N), dtype=tl.float32)
        for c0 in range(0, C, BC):
            c = c0 + tl.arange(0, BC)
            m2 = tmask[:, None] & (c < C)[None, :]
            off = t64[:, None] * K + c[None, :]
            f = tl.load(f_ptr + t64[:, None] * C + c[None, :], mask=m2, other=0.0).to(tl.float32)
            dh = tl.load(dh_ptr + t64[:, None] * C + c[None, :], mask=m2, other=0.0).to(tl.float32)
            for i in tl.static_range(N):
                gi = tl.load(g_ptr + off + i * C, mask=m2, other=0.0).to(tl.float32)
                xi = tl.load(x_ptr + off + i * C, mask=m2, other=0.0).to(tl.float32)
                dpost += tl.where(s_idx[None, :] == i, tl.sum(gi * f, axis=1)[:, None], 0.0)
                dpre += tl.where(s_idx[None, :] == i, tl.sum(xi * dh, axis=1)[:, None], 0.0)
                for j in tl.static_range(N):
                    xj = tl.load(x_ptr + off + j * C, mask=m2, other=0.0).to(tl.float32)
                    dres += tl.where(ij[None, :, :] == i * N + j, tl.sum(gi * xj, axis=1)[:, None, None], 0.0)
    else:
        dpre = tl.load(dpre_ptr + t64[:, None] * N + s_idx[None, :], mask=tmask[:, None], other=0.0)
        dpost = tl.load(dpost_ptr + t64[:, None] * N + s_idx[None, :], mask=tmask[:, None], other=0.0)
        dres = tl.load(dres_ptr + t64[:, None, None] * (N * N) + ij[None, :, :], mask=tmask[:, None, None], other=0.0)

    cols = tl.arange(0, NZ)
    z = tl.load(z_ptr + t64[:, None] * NZ + cols[None, :], mask=tmask[:, None], other=0.0)
    r = tl.load(r_ptr + t, mask=tmask, other=0.0)
    alpha_cols, bias_cols = load_gates(alpha_ptr, bias_ptr, N, NZ)
    a = alpha_cols[None, :] * z + bias_cols[None, :]
    h_pre = tl.sigmoid(take_chunk(a, BT, NZ, N, N))
    sig_post = tl.sigmoid(take_chunk(a, BT, NZ, N, N + 1))
    res_logits = tl.reshape(take_chunk(a, BT, NZ, N * N, 0), (BT, N, N))

    da_pre = dpre * h_pre * (1.0 - h_pre)
    da_post = dpost * 2.0 * sig_post * (1.0 - sig_post)
    da_res = tl.reshape(sinkhorn_tile_backward(res_logits, dres, ITERS), (BT, N * N))
    da = put_chunk(da_res, BT, NZ, N * N, 0) + put_chunk(da_pre, BT, NZ, N, N) + put_chunk(da_post, BT, NZ, N, N + 1)
    da = tl.where(tmask[:, None], da, 0.0)

    dz = alpha_cols[None, :] * da
    tl.store(dy_ptr + t64[:, None] * NZ + cols[None, :], dz * r[:, None], mask=tmask[:, None])
    tl.store(s_ptr + t, r * r * tl.sum(dz * z, axis=1) / (N * C), mask=tmask)

    src, valid, gate = contract_columns(N, NZ)
    KC = N * N + 2 * N
    part = part_ptr + pid.to(tl.int64) * (KC + 3)
    tl.store(part + src, tl.sum(da, axis=0), mask=valid)
    dagz = tl.sum(da * z, axis=0)
    for gi in tl.static_range(3):
        tl.store(part + KC + gi, tl.sum(tl.where(valid & (gate == gi), dagz, 0.0), axis=0))


@triton.jit
def _channel_terms(xj, res_ptr, pre_ptr, j, t64, tmask, s, g3, dh, N: tl.constexpr, FUSED: tl.constexpr):
    """The element-wise terms of dx[j] on one (BT, BC) block: −s·x[j] (+ Σ_i H_res[i, j]·g[i] +
    H_pre[j]·dh when FUSED), summed first so that the matrix-unit product adds to them and the
    accumulator changes layout once instead of once per term."""
    acc = -s[:, None] * xj
    if FUSED:
        s_idx = tl.arange(0, N)
        hres_col = tl.load(res_ptr + t64[:, None] * (N * N) + s_idx[None, :] * N + j, mask=tmask[:, None],
                           other=0.0)  # H_res[:, i, j] over i
        hpre_j = tl.load(pre_ptr + t64 * N + j, mask=tmask, other=0.0)
        acc += tl.sum(hres_col[:, :, None] * g3, axis=1) + hpre_j[:, None] * dh
    return acc


@triton.jit
def coefficients_bwd_channel_kernel(
    x_ptr, phi_ptr, dy_ptr, s_ptr,  # x (T, N, C); φ (N·C, N²+2N) contract order; dy (T, NZ) f32; s (T,)
    g_ptr, dh_ptr, pre_ptr, res_ptr,  # FUSED: g (T, N, C), dh (T, C), H_pre (T, N), H_res (T, N, N)
    dx_ptr, dphi_ptr,  # dx (T, N, C) in x's dtype; dφ partials (SPLITS, N·C, N²+2N) f32
    T, C, tokens_per_split,
    N: tl.constexpr, NZ: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
    FUSED: tl.constexpr, DOT: tl.constexpr,
):
    # Two streams per program, a and b, when n ≥ 2 (PAIR): the program reads all n streams of g
    # through L2 once for both, half as often as one program per stream would.
    PAIR: tl.constexpr = N > 1
    ja = tl.program_id(0) * (2 if PAIR else 1)
    jb = ja + 1
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    split = tl.program_id(2)
    cmask = c < C
    K = N * C
    KC = N * N + 2 * N
    cols = tl.arange(0, NZ)
    s_idx = tl.arange(0, N)
    src, valid, _ = contract_columns(N, NZ)
    pmask = cmask[:, None] & valid[None, :]
    ka, kb = ja * C + c, jb * C + c  # rows of φ that belong to streams ja and jb, channels c
    phi_a = tl.load(phi_ptr + ka[:, None] * KC + src[None, :], mask=pmask, other=0.0).to(tl.float32)  # (BC, NZ)
    dphi_a = tl.zeros((BC, NZ), dtype=tl.float32)
    phi_b = phi_a
    dphi_b = dphi_a
    if PAIR:
        phi_b = tl.load(phi_ptr + kb[:, None] * KC + src[None, :], mask=pmask, other=0.0).to(tl.float32)

    t_start = split * tokens_per_split
    t_end = tl.minimum(t_start + tokens_per_split, T)
    for t0 in range(t_start, t_end, BT):
        t = t0 + tl.arange(0, BT)
        tmask = t < t_end
        t64 = t.to(tl.int64)
        row = t64[:, None] * K
        m2 = tmask[:, None] & cmask[None, :]
        # Cache hints: x[ja], x[jb] and dx are touched by this program only; g, dh and dy by the
        # other programs of this channel block too.
        xa = tl.load(x_ptr + row + ka[None, :], mask=m2, other=0.0, eviction_policy="evict_first").to(tl.float32)
        xb = xa
        if PAIR:
            xb = tl.load(x_ptr + row + kb[None, :], mask=m2, other=0.0, eviction_policy="evict_first").to(tl.float32)
        dy = tl.load(dy_ptr + t64[:, None] * NZ + cols[None, :], mask=tmask[:, None], other=0.0,
                     eviction_policy="evict_last")
        s = tl.load(s_ptr + t, mask=tmask, other=0.0)
        g3 = s  # g and dh are read only when FUSED
        dh = s
        if FUSED:
            g3 = tl.load(g_ptr + row[:, :, None] + s_idx[None, :, None] * C + c[None, None, :],
                         mask=tmask[:, None, None] & cmask[None, None, :], other=0.0,
                         eviction_policy="evict_last").to(tl.float32)
            dh = tl.load(dh_ptr + t64[:, None] * C + c[None, :], mask=m2, other=0.0,
                         eviction_policy="evict_last").to(tl.float32)
        acc_a = _channel_terms(xa, res_ptr, pre_ptr, ja, t64, tmask, s, g3, dh, N, FUSED)
        acc_b = acc_a
        if PAIR:
            acc_b = _channel_terms(xb, res_ptr, pre_ptr, jb, t64, tmask, s, g3, dh, N, FUSED)
        dx = tl.dot(dy, tl.trans(phi_a), acc_a, input_precision=DOT)
        tl.store(dx_ptr + row + ka[None, :], dx.to(dx_ptr.dtype.element_ty), mask=m2, eviction_policy="evict_first")
        if PAIR:
            dx = tl.dot(dy, tl.trans(phi_b), acc_b, input_precision=DOT)
            tl.store(dx_ptr + row + kb[None, :], dx.to(dx_ptr.dtype.element_ty), mask=m2,
                     eviction_policy="evict_first")
        dphi_a = tl.dot(tl.trans(xa), dy, dphi_a, input_precision=DOT)
        if PAIR:
            dphi_b = tl.dot(tl.trans(xb), dy, dphi_b, input_precision=DOT)

    base = split.to(tl.int64) * K * KC
    tl.store(dphi_ptr + base + ka[:, None] * KC + src[None, :], dphi_a, mask=pmask)
    if PAIR:
        tl.store(dphi_ptr + base + kb[:, None] * KC + src[None, :], dphi_b, mask=pmask)


def launch_token_pass(z, r, alpha, bias, given, reduce_from, outs, n, C, iters, blocks):
    """given = (dpre, dpost, dres) or None; reduce_from = (g, x, f, dh) or None;
    outs = (dy, s, parts) with parts (cdiv(T, BT), n²+2n+3)."""
    T, nz = z.shape
    bt, bc, warps = blocks
    dy, s, parts = outs
    dpre, dpost, dres = given if given is not None else (z, z, z)
    g, x, f, dh = reduce_from if reduce_from is not None else (z, z, z, z)
    coefficients_bwd_token_kernel[(cdiv(T, bt),)](
        z, r, alpha, bias, dpre, dpost, dres, g, x, f, dh, dy, s, parts,
        T, C, N=n, NZ=nz, ITERS=iters, BT=bt, BC=bc, REDUCE=reduce_from is not None, num_warps=warps,
    )


def launch_channel_pass(x, phi, dy, s, fused_from, dx, dphi_parts, n, blocks):
    """x (T, n, C); φ (n·C, n²+2n); fused_from = (g, dh, H_pre, H_res) or None; dphi_parts (splits, n·C, n²+2n)."""
    T, _, C = x.shape
    bt, bc, warps = blocks
    splits = dphi_parts.shape[0]
    per_split = cdiv(cdiv(T, splits), bt) * bt
    g, dh, pre, res = fused_from if fused_from is not None else (x, x, s, s)
    coefficients_bwd_channel_kernel[(max(1, n // 2), cdiv(C, bc), splits)](
        x, phi, dy, s, g, dh, pre, res, dx, dphi_parts,
        T, C, per_split,
        N=n, NZ=dy.shape[1], BT=bt, BC=bc, FUSED=fused_from is not None,
        DOT="ieee" if x.dtype.itemsize == 4 else "tf32", num_warps=warps,
    )
