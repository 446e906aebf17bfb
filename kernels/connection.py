"""The whole mHC connection around a sublayer, fused for the fewest passes over memory.

Forward: one kernel computes the coefficients and h = H_pre·x; the sublayer runs on h
(under its own autograd graph); one kernel writes x_next = H_res·x + H_post ⊗ F(h).

Backward, given g = dL/dx_next:
1. one pass over g writes dF = Σ_i H_post[i]·g[i], all the sublayer's backward needs, unless
   the next connection's channel pass already wrote it (``chain.py``);
2. the sublayer's backward runs (``mhc_course.sublayer``: its graph kept from the forward),
   accumulating its parameter gradients as reentrant checkpointing does, and gives dh;
3. a token pass reduces dH_res, dH_post, dH_pre over C and back-propagates σ, 2σ and
   Sinkhorn–Knopp in registers;
4. a channel pass writes dx = H_resᵀ·g + H_pre·dh + (the coefficient path) and dφ, and, when x
   was written by another fused connection, that connection's dF from dx.

Deferring dH_res and dH_post to step 3 means g and x are read in that pass anyway, and no
intermediate (H_resᵀ·g) is written. Because the sublayer runs inside this Function, its
inputs other than h must not require gradients from outside it (true for attention and MLP
sublayers that only hold parameters).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd import Function

from mhc_course.mhc import check_coefficient_params
from mhc_course.sublayer import run_sublayer

from .chain import Link, attach, hand_back, take_df, upstream
from .layout import as_tokens, check_kernel_streams, coefficient_params, grad_dtype_like
from .ops import coefficients_backward, coefficients_forward, mhc_post_res
from .stream_kernels import launch_post_res_bwd, launch_post_res_fwd
from .tuning import blocks


def _forward_kernels(x3, phi, bias, alpha, iters, eps):
    params = coefficient_params(phi, alpha, bias)
    z, r, pre, post, res, h = coefficients_forward(x3, *params, iters, eps, with_pre=True)
    return params, (z, r, pre, post, res), h


def _post_res(x3, f2, post, res):
    out = torch.empty_like(x3)
    launch_post_res_fwd(x3, f2, post, res, out, blocks("post_res_fwd", x3.shape[1], x3.shape[2]))
    return out


class _Connection(Function):
    @staticmethod
    def forward(ctx, x, phi, bias, alpha, layer, iters, eps, link):
        lead, (n, C) = x.shape[:-2], x.shape[-2:]
        x3 = as_tokens(x, 2)
        padded, (z, r, pre, post, res), h = _forward_kernels(x3, phi, bias, alpha, iters, eps)
        sub = run_sublayer(layer, h.view(*lead, C))
        f2 = as_tokens(sub.f.detach().to(x.dtype), 1)
        out = _post_res(x3, f2, post, res)
        ctx.save_for_backward(x3, f2, *padded, z, r, pre, post, res)
        ctx.sub, ctx.iters = sub, iters
        link.post = post  # for the connection that reads out next
        ctx.link, ctx.upstream = link, upstream(x)
        ctx.dtypes = (x.dtype, phi.dtype, bias.dtype, alpha.dtype)
        ctx.mark_non_differentiable(res)
        return out.view(*lead, n, C), res.view(*lead, n, n)

    @staticmethod
    def backward(ctx, g, _unused_res_grad):
        x3, f2, phi_c, alpha_c, bias_c, z, r, pre, post, res = ctx.saved_tensors
        T, n, C = x3.shape
        g3 = grad_dtype_like(g, x3).view(T, n, C)
        df = take_df(ctx.link, g3)
        if df is None:
            df = torch.empty_like(f2)
            launch_post_res_bwd(g3, x3, f2, post, res, df, None, blocks("post_res_bwd", n, C))
        dh2 = grad_dtype_like(ctx.sub.backward(df.view(ctx.sub.f.shape)), x3).view(T, C)
        up = ctx.upstream
        prev = None if up is None else (up.post, torch.empty(T, C, device=x3.device, dtype=x3.dtype))
        dx, dphi, db, dalpha = coefficients_backward(
            x3, phi_c, alpha_c, bias_c, z, r, ctx.iters, fused_from=(g3, f2, dh2, pre, res), prev=prev
        )
        ctx.sub = ctx.link = ctx.upstream = None
        xd, pd, bd, ad = ctx.dtypes
        dx = dx.view(g.shape).to(xd)
        if prev is not None:
            hand_back(up, dx, prev[1])
        return dx, dphi.to(pd), db.to(bd), dalpha.to(ad), None, None, None, None


def mhc_connection(
    x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, layer: Callable[[Tensor], Tensor], iters: int = 20,
    eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """x_next = H_res·x + H_post ⊗ layer(H_pre·x) on fused kernels.

    Args:
        x: (..., n, C) streams; phi, bias, alpha: as for ``mhc_coefficients``.
        layer: maps (..., C) → (..., C); its parameters receive gradients in the backward.

    Returns:
        x_next (..., n, C) in x's dtype, and H_res (..., n, n) float32 (detached, for metrics).
    """
    check_coefficient_params(x, phi, bias, alpha)
    check_kernel_streams(x)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1 for the kernels, got {iters!r}")
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, phi, bias, alpha)):
        link = Link()
        out, res = _Connection.apply(x, phi, bias, alpha, layer, iters, eps, link)
        attach(out, link)
        return out, res
    lead, (n, C) = x.shape[:-2], x.shape[-2:]
    x3 = as_tokens(x, 2)
    with torch.no_grad():
        _, (_, _, _, post, res), h = _forward_kernels(x3, phi, bias, alpha, iters, eps)
    f = layer(h.view(*lead, C))
    res = res.view(*lead, n, n)
    if torch.is_grad_enabled() and f.requires_grad:  # only the sublayer trains: its gradient flows through f
        return mhc_post_res(x, f, post.view(*lead, n), res), res
    return _post_res(x3, as_tokens(f.to(x.dtype), 1), post, res.view(-1, n, n)).view(*lead, n, C), res
