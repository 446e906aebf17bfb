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
When x was written by another fused connection, one program can hold all n ≤ 4 streams and
also write that connection's dF = Σ_i H_post[i]·dx[i] (``kernels/chain.py``), which then skips
its own pass over its gradient.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .layout import cdiv
from .tile_ops import contract_columns, load_gates, put_chunk, sinkhorn_tile_backward, take_chunk

STREAMS_PER_PROGRAM = (1, 2, 4)  # what the channel pass can hold in one program


@triton.jit
def coefficients_bwd_token_kernel(
    z_ptr, r_ptr, alpha_ptr, bias_ptr,
    dpre_ptr, dpost_ptr, dres_ptr,  # given gradients (T, N), (T, N), (T, N, N) when not REDUCE
    g_ptr, x_ptr, f_ptr, dh_ptr,  # g, x (T, N, C); f, dh (T, C) when REDUCE
    dy_ptr, s_ptr, part_ptr,  # outputs: dy (T, NZ) f32; s (T,) f32; per program a column of [db (N²+2N) | dα (3)]
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
    programs = tl.num_programs(0).to(tl.int64)  # parts are (KC + 3, programs): one contiguous row per sum
    part = part_ptr + pid.to(tl.int64)
    tl.store(part + src * programs, tl.sum(da, axis=0), mask=valid)
    dagz = tl.sum(da * z, axis=0)
    for gi in tl.static_range(3):
        tl.store(part + (KC + gi) * programs, tl.sum(tl.where(valid & (gate == gi), dagz, 0.0), axis=0))


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
def _phi_rows(phi_ptr, j, c, cmask, C, N: tl.constexpr, NZ: tl.constexpr):
    """The (BC, NZ) rows of φ for stream j, channels c, in the padded column order."""
    src, valid, _ = contract_columns(N, NZ)
    k = j * C + c
    return tl.load(phi_ptr + k[:, None] * (N * N + 2 * N) + src[None, :], mask=cmask[:, None] & valid[None, :],
                   other=0.0).to(tl.float32)


@triton.jit
def _load_stream(x_ptr, j, row, c, m2, C):
    """x[j] on one (BT, BC) block, as float32; only this program reads it (evict first)."""
    return tl.load(x_ptr + row + (j * C + c)[None, :], mask=m2, other=0.0, eviction_policy="evict_first").to(tl.float32)


@triton.jit
def _store_dx(acc, dy, phi_j, dx_ptr, j, row, m2, c, C, DOT: tl.constexpr):
    """dx[j] = acc + dy·φ_jᵀ on one (BT, BC) block, written and returned as stored."""
    dx = tl.dot(dy, tl.trans(phi_j), acc, input_precision=DOT).to(dx_ptr.dtype.element_ty)
    tl.store(dx_ptr + row + (j * C + c)[None, :], dx, mask=m2, eviction_policy="evict_first")
    return dx


@triton.jit
def _accumulate_dphi(dphi, xj, dy, DOT: tl.constexpr):
    return tl.dot(tl.trans(xj), dy, dphi, input_precision=DOT)


@triton.jit
def _store_dphi(dphi_ptr, dphi, base, j, c, cmask, C, N: tl.constexpr, NZ: tl.constexpr):
    KC = N * N + 2 * N
    src, valid, _ = contract_columns(N, NZ)
    k = j * C + c
    tl.store(dphi_ptr + base + k[:, None] * KC + src[None, :], dphi, mask=cmask[:, None] & valid[None, :])


@triton.jit
def coefficients_bwd_channel_kernel(
    x_ptr, phi_ptr, dy_ptr, s_ptr,  # x (T, N, C); φ (N·C, N²+2N) contract order; dy (T, NZ) f32; s (T,)
    g_ptr, dh_ptr, pre_ptr, res_ptr,  # FUSED: g (T, N, C), dh (T, C), H_pre (T, N), H_res (T, N, N)
    dx_ptr, dphi_ptr,  # dx (T, N, C) in x's dtype; dφ partials (SPLITS, N·C, N²+2N) f32
    prev_post_ptr, prev_df_ptr,  # PREV_DF: H_post (T, N) of the connection that wrote x; its dF (T, C)
    T, C, tokens_per_split,
    N: tl.constexpr, NZ: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, SPP: tl.constexpr,
    FUSED: tl.constexpr, PREV_DF: tl.constexpr, DOT: tl.constexpr, SHARED: tl.constexpr,
    STAGES: tl.constexpr,
):
    # SPP streams per program (1, 2 or 4; streams a..d): the program reads all n streams of g
    # through L2 once for its SPP streams. With SPP = N it holds every stream of dx, so it can also
    # write dF = Σ_i H_post_prev[i]·dx[i] for the connection before, whose gradient dx is (PREV_DF).
    tl.static_assert((SPP == 1) | (SPP == 2) | (SPP == 4), "SPP must be 1, 2 or 4")
    ja = tl.program_id(0) * SPP
    c = tl.program_id(1) * BC + tl.arange(0, BC)
    split = tl.program_id(2)
    cmask = c < C
    K = N * C
    cols = tl.arange(0, NZ)
    s_idx = tl.arange(0, N)
    phi_a = _phi_rows(phi_ptr, ja, c, cmask, C, N, NZ)  # kept in registers for the whole token loop
    phi_b = phi_a
    phi_c = phi_a
    phi_d = phi_a
    if SPP > 1:
        phi_b = _phi_rows(phi_ptr, ja + 1, c, cmask, C, N, NZ)
    if SPP > 2:
        phi_c = _phi_rows(phi_ptr, ja + 2, c, cmask, C, N, NZ)
        phi_d = _phi_rows(phi_ptr, ja + 3, c, cmask, C, N, NZ)
    dphi_a = tl.zeros((BC, NZ), dtype=tl.float32)
    dphi_b = dphi_a
    dphi_c = dphi_a
    dphi_d = dphi_a

    t_start = split * tokens_per_split
    t_end = tl.minimum(t_start + tokens_per_split, T)
    # STAGES set on the loop itself (not only on the launch) makes Triton prefetch every load in it,
    # g and dh too, which feed no product; None leaves it to prefetch only x and dy (``loop_stages``)
    for t0 in tl.range(t_start, t_end, BT, num_stages=STAGES):
        t = t0 + tl.arange(0, BT)
        tmask = t < t_end
        t64 = t.to(tl.int64)
        row = t64[:, None] * K
        m2 = tmask[:, None] & cmask[None, :]
        xa = _load_stream(x_ptr, ja, row, c, m2, C)
        xb = xa
        xc = xa
        xd = xa
        if SPP > 1:
            xb = _load_stream(x_ptr, ja + 1, row, c, m2, C)
        if SPP > 2:
            xc = _load_stream(x_ptr, ja + 2, row, c, m2, C)
            xd = _load_stream(x_ptr, ja + 3, row, c, m2, C)
        # dy is read by every program of this channel block's token range, and g and dh by the
        # n / SPP programs of this channel block (SHARED: evict last, or evict first when SPP = N).
        dy = tl.load(dy_ptr + t64[:, None] * NZ + cols[None, :], mask=tmask[:, None], other=0.0,
                     eviction_policy="evict_last")
        s = tl.load(s_ptr + t, mask=tmask, other=0.0)
        g3 = s  # g and dh are read only when FUSED
        dh = s
        if FUSED:
            g3 = tl.load(g_ptr + row[:, :, None] + s_idx[None, :, None] * C + c[None, None, :],
                         mask=tmask[:, None, None] & cmask[None, None, :], other=0.0,
                         eviction_policy=SHARED).to(tl.float32)
            dh = tl.load(dh_ptr + t64[:, None] * C + c[None, :], mask=m2, other=0.0,
                         eviction_policy=SHARED).to(tl.float32)
        # All element-wise terms first, then the products and stores, then dφ: the order the
        # fastest versions measured had (benchmarks/NOTES.md).
        acc_a = _channel_terms(xa, res_ptr, pre_ptr, ja, t64, tmask, s, g3, dh, N, FUSED)
        acc_b = acc_a
        acc_c = acc_a
        acc_d = acc_a
        if SPP > 1:
            acc_b = _channel_terms(xb, res_ptr, pre_ptr, ja + 1, t64, tmask, s, g3, dh, N, FUSED)
        if SPP > 2:
            acc_c = _channel_terms(xc, res_ptr, pre_ptr, ja + 2, t64, tmask, s, g3, dh, N, FUSED)
            acc_d = _channel_terms(xd, res_ptr, pre_ptr, ja + 3, t64, tmask, s, g3, dh, N, FUSED)
        dxa = _store_dx(acc_a, dy, phi_a, dx_ptr, ja, row, m2, c, C, DOT)
        if SPP > 1:
            dxb = _store_dx(acc_b, dy, phi_b, dx_ptr, ja + 1, row, m2, c, C, DOT)
        if SPP > 2:
            dxc = _store_dx(acc_c, dy, phi_c, dx_ptr, ja + 2, row, m2, c, C, DOT)
            dxd = _store_dx(acc_d, dy, phi_d, dx_ptr, ja + 3, row, m2, c, C, DOT)
        if PREV_DF:
            df = tl.load(prev_post_ptr + t64 * N + ja, mask=tmask, other=0.0)[:, None] * dxa.to(tl.float32)
            if SPP > 1:
                df += tl.load(prev_post_ptr + t64 * N + ja + 1, mask=tmask, other=0.0)[:, None] * dxb.to(tl.float32)
            if SPP > 2:
                df += tl.load(prev_post_ptr + t64 * N + ja + 2, mask=tmask, other=0.0)[:, None] * dxc.to(tl.float32)
                df += tl.load(prev_post_ptr + t64 * N + ja + 3, mask=tmask, other=0.0)[:, None] * dxd.to(tl.float32)
            tl.store(prev_df_ptr + t64[:, None] * C + c[None, :], df.to(prev_df_ptr.dtype.element_ty), mask=m2)
        dphi_a = _accumulate_dphi(dphi_a, xa, dy, DOT)
        if SPP > 1:
            dphi_b = _accumulate_dphi(dphi_b, xb, dy, DOT)
        if SPP > 2:
            dphi_c = _accumulate_dphi(dphi_c, xc, dy, DOT)
            dphi_d = _accumulate_dphi(dphi_d, xd, dy, DOT)

    base = split.to(tl.int64) * K * (N * N + 2 * N)
    _store_dphi(dphi_ptr, dphi_a, base, ja, c, cmask, C, N, NZ)
    if SPP > 1:
        _store_dphi(dphi_ptr, dphi_b, base, ja + 1, c, cmask, C, N, NZ)
    if SPP > 2:
        _store_dphi(dphi_ptr, dphi_c, base, ja + 2, c, cmask, C, N, NZ)
        _store_dphi(dphi_ptr, dphi_d, base, ja + 3, c, cmask, C, N, NZ)


def launch_token_pass(z, r, alpha, bias, given, reduce_from, outs, n, C, iters, blocks):
    """given = (dpre, dpost, dres) or None; reduce_from = (g, x, f, dh) or None;
    outs = (dy, s, parts) with parts (n²+2n+3, cdiv(T, BT)), one column per program."""
    T, nz = z.shape
    bt, bc, warps = blocks
    dy, s, parts = outs
    dpre, dpost, dres = given if given is not None else (z, z, z)
    g, x, f, dh = reduce_from if reduce_from is not None else (z, z, z, z)
    coefficients_bwd_token_kernel[(cdiv(T, bt),)](
        z, r, alpha, bias, dpre, dpost, dres, g, x, f, dh, dy, s, parts,
        T, C, N=n, NZ=nz, ITERS=iters, BT=bt, BC=bc, REDUCE=reduce_from is not None, num_warps=warps,
    )


def launch_channel_pass(x, phi, dy, s, fused_from, dx, dphi_parts, n, blocks, *, streams_per_program=None,
                        prev=None):
    """x (T, n, C); φ (n·C, n²+2n); fused_from = (g, dh, H_pre, H_res) or None; dphi_parts (splits, n·C, n²+2n);
    streams_per_program 1, 2 or 4 (default ``channel_streams(n)``); prev = (H_post_prev (T, n), dF_prev (T, C))
    to write the previous connection's dF, which needs streams_per_program = n."""
    T, _, C = x.shape
    bt, bc, warps = blocks
    spp = streams_per_program or channel_streams(n)
    if spp not in STREAMS_PER_PROGRAM or n % spp:
        raise ValueError(f"streams_per_program must be one of {STREAMS_PER_PROGRAM} and divide n, "
                         f"got streams_per_program={spp}, n={n} (x shape {tuple(x.shape)})")
    if prev is not None and spp != n:
        raise ValueError(f"prev needs every stream in one program: streams_per_program={spp}, n={n}")
    splits = dphi_parts.shape[0]
    per_split = cdiv(cdiv(T, splits), bt) * bt
    g, dh, pre, res = fused_from if fused_from is not None else (x, x, s, s)
    prev_post, prev_df = prev if prev is not None else (s, s)
    coefficients_bwd_channel_kernel[(n // spp, cdiv(C, bc), splits)](
        x, phi, dy, s, g, dh, pre, res, dx, dphi_parts, prev_post, prev_df,
        T, C, per_split,
        N=n, NZ=dy.shape[1], BT=bt, BC=bc, SPP=spp, FUSED=fused_from is not None, PREV_DF=prev is not None,
        DOT="ieee" if x.dtype.itemsize == 4 else "tf32", SHARED="evict_last" if spp < n else "evict_first",
        STAGES=loop_stages(x.dtype.itemsize, n), num_warps=warps,
    )


def loop_stages(itemsize: int, n: int) -> int | None:
    """The channel pass's token loop is pipelined three deep for 2-byte activations and n <= 4, where
    that was measured faster on an H100 (benchmarks/NOTES.md, seventh session). Otherwise None,
    Triton's default, which prefetches only the loads that feed a product: with three stages
    everywhere the GPU check failed to launch a kernel asking for 291,584 bytes of shared memory
    (4-byte tiles are twice the size of 2-byte ones), and n = 8 was not measured."""
    return 3 if itemsize == 2 and n <= 4 else None


def channel_streams(n: int) -> int:
    """Streams per channel-pass program when the previous dF is not wanted: two (one when n = 1)."""
    return min(n, 2)
