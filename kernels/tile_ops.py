"""Triton device functions on register tiles of BT tokens: coefficient groups and Sinkhorn.

A token block's coefficients are a (BT, NZ) tile in the padded order of ``layout.py``;
``contract_columns`` maps that order to the columns of the contract's φ and b.
Sinkhorn–Knopp runs on a (BT, n, n) tile entirely in registers; its backward recomputes the
forward iterations it needs instead of storing any of them (t_max² / 2 small iterations per
token: cheap next to reading the token's n·C activations).
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
def sinkhorn_tile(logits, ITERS: tl.constexpr):
    """(BT, n, n) logits → Sinkhorn–Knopp: exp(· − max), then ITERS × (columns, rows)."""
    mx = tl.max(tl.max(logits, axis=2), axis=1)
    m = tl.exp(logits - mx[:, None, None])
    for _ in range(ITERS):
        m = m / tl.sum(m, axis=1)[:, None, :]
        m = m / tl.sum(m, axis=2)[:, :, None]
    return m


@triton.jit
def sinkhorn_tile_backward(logits, grad, ITERS: tl.constexpr):
    """Gradient w.r.t. the logits of ``sinkhorn_tile``, given the gradient of its output.

    Reverse mode through the unrolled iterations. For a normalisation Y = X / s with s the sum
    over one axis, dX = (dY − Σ_axis dY⊙Y) / s. Iteration t needs M_{t−1}, recomputed from M_0.
    The max subtracted before exp gets no gradient: with ITERS ≥ 1 the output does not depend
    on the overall scale of M_0.
    """
    mx = tl.max(tl.max(logits, axis=2), axis=1)
    m0 = tl.exp(logits - mx[:, None, None])
    g = grad
    for k in range(ITERS):
        m = m0
        for _ in range(ITERS - 1 - k):
            m = m / tl.sum(m, axis=1)[:, None, :]
            m = m / tl.sum(m, axis=2)[:, :, None]
        col = tl.sum(m, axis=1)[:, None, :]
        a = m / col
        row = tl.sum(a, axis=2)[:, :, None]
        out = a / row
        da = (g - tl.sum(g * out, axis=2)[:, :, None]) / row
        g = (da - tl.sum(da * a, axis=1)[:, None, :]) / col
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
