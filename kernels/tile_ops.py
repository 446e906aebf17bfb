"""Triton device functions on register tiles of BT tokens: coefficient groups and Sinkhorn.

A token block's coefficients are a (BT, NZ) tile in the padded order of ``layout.py``;
``contract_columns`` maps that order to the columns of the contract's φ and b.
Sinkhorn–Knopp runs on a (BT, n, n) tile entirely in registers; its backward recomputes the
forward iterations it needs from three checkpoints instead of storing any of them.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def contract_columns(N: tl.constexpr, NZ: tl.constexpr):
    """For each padded column: its column in the contract's [pre | post | res] order, whether it
    is a real column (not padding), and which gate scales it (0 pre, 1 post, 2 res)."""
    c = tl.arange(0, NZ)
    src = tl.where(c < N * N, c + 2 * N, c - N * N)
    valid = c < N * N + 2 * N
    gate = tl.where(c < N * N, 2, tl.where(c < N * N + N, 0, 1))
    return src, valid, gate


@triton.jit
def load_gates(alpha_ptr, bias_ptr, N: tl.constexpr, NZ: tl.constexpr):
    """α and b for every padded column, as (NZ,) float32 (0 on padding)."""
    src, valid, gate = contract_columns(N, NZ)
    alpha_cols = tl.where(valid, tl.load(alpha_ptr + gate).to(tl.float32), 0.0)
    bias_cols = tl.load(bias_ptr + src, mask=valid, other=0.0).to(tl.float32)
    return alpha_cols, bias_cols


@triton.jit
def take_chunk(z, BT: tl.constexpr, NZ: tl.constexpr, W: tl.constexpr, IDX: tl.constexpr):
    """Columns [IDX·W, (IDX+1)·W) of a (BT, NZ) tile, as (BT, W)."""
    zz = tl.reshape(z, (BT, NZ // W, W))
    sel = tl.arange(0, NZ // W)[None, :, None] == IDX
    return tl.sum(tl.where(sel, zz, 0.0), axis=1)


@triton.jit
def put_chunk(v, BT: tl.constexpr, NZ: tl.constexpr, W: tl.constexpr, IDX: tl.constexpr):
    """A (BT, NZ) tile holding v (BT, W) in columns [IDX·W, (IDX+1)·W) and zeros elsewhere."""
    sel = tl.arange(0, NZ // W)[None, :, None] == IDX
    vv = tl.where(sel, tl.broadcast_to(v[:, None, :], (BT, NZ // W, W)), 0.0)
    return tl.reshape(vv, (BT, NZ))


@triton.jit
def sinkhorn_iterate(m, STEPS):
    """STEPS Sinkhorn–Knopp iterations on a (BT, n, n) tile: normalise columns, then rows."""
    for _ in range(STEPS):
        m = m / tl.sum(m, axis=1)[:, None, :]
        m = m / tl.sum(m, axis=2)[:, :, None]
    return m


@triton.jit
def sinkhorn_tile(logits, ITERS: tl.constexpr):
    """(BT, n, n) logits → Sinkhorn–Knopp: exp(· − max), then ITERS × (columns, rows)."""
    mx = tl.max(tl.max(logits, axis=2), axis=1)
    return sinkhorn_iterate(tl.exp(logits - mx[:, None, None]), ITERS)


@triton.jit
def _sinkhorn_segment_backward(start, g, STEPS):
    """Reverse mode through STEPS iterations that begin at ``start``; each iteration's input is
    recomputed from ``start``. For a normalisation Y = X / s with s the sum over one axis,
    dX = (dY − Σ_axis dY⊙Y) / s."""
    for k in range(STEPS):
        m = sinkhorn_iterate(start, STEPS - 1 - k)
        col = tl.sum(m, axis=1)[:, None, :]
        a = m / col
        row = tl.sum(a, axis=2)[:, :, None]
        out = a / row
        da = (g - tl.sum(g * out, axis=2)[:, :, None]) / row
        g = (da - tl.sum(da * a, axis=1)[:, None, :]) / col
    return g


@triton.jit
def sinkhorn_tile_backward(logits, grad, ITERS: tl.constexpr):
    """Gradient w.r.t. the logits of ``sinkhorn_tile``, given the gradient of its output.

    Reverse mode through the unrolled iterations with no stored history: the forward is rerun
    once to keep three checkpoints (after ITERS//4, 2·ITERS//4 and 3·ITERS//4 iterations), and
    each quarter is reversed from its checkpoint, recomputing inside it (the last quarter takes
    the remainder). At ITERS = 20 that is 55 recomputed iterations instead of the 190 of
    recomputing every input from M_0. The max subtracted before exp gets no gradient: with
    ITERS ≥ 1 the output does not depend on the overall scale of M_0.
    """
    SEG: tl.constexpr = ITERS // 4
    mx = tl.max(tl.max(logits, axis=2), axis=1)
    m0 = tl.exp(logits - mx[:, None, None])
    m1 = sinkhorn_iterate(m0, SEG)
    m2 = sinkhorn_iterate(m1, SEG)
    m3 = sinkhorn_iterate(m2, SEG)
    g = _sinkhorn_segment_backward(m3, grad, ITERS - 3 * SEG)
    g = _sinkhorn_segment_backward(m2, g, SEG)
    g = _sinkhorn_segment_backward(m1, g, SEG)
    g = _sinkhorn_segment_backward(m0, g, SEG)
    return g * m0


@triton.jit
def coefficient_maps(z, alpha_cols, bias_cols, BT: tl.constexpr, N: tl.constexpr, NZ: tl.constexpr,
                     ITERS: tl.constexpr):
    """From normalised projections z (BT, NZ) to (H_pre (BT, N), H_post (BT, N), H_res (BT, N, N))."""
    a = alpha_cols[None, :] * z + bias_cols[None, :]
    h_pre = tl.sigmoid(take_chunk(a, BT, NZ, N, N))
    h_post = 2.0 * tl.sigmoid(take_chunk(a, BT, NZ, N, N + 1))
    res_logits = tl.reshape(take_chunk(a, BT, NZ, N * N, 0), (BT, N, N))
    return h_pre, h_post, sinkhorn_tile(res_logits, ITERS)
