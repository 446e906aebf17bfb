"""The contract's three functions on Triton kernels, differentiable via torch.autograd.Function.

Same signatures, shapes and validation as ``mhc_course.mhc``: ``mhc_coefficients``,
``mhc_pre``, ``mhc_post_res``. Activations stay in x's dtype (bf16, fp16 or fp32);
coefficients are float32. Non-contiguous inputs are copied to contiguous ones.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd import Function

from mhc_course.mhc import check_coefficient_params, check_post_res_args, check_pre_args

from .coefficients_bwd import channel_streams, launch_channel_pass, launch_token_pass
from .coefficients_fwd import launch_coefficients_fwd
from .layout import as_tokens, cdiv, check_kernel_streams, coefficient_params, grad_dtype_like, padded_width
from .partial_sums import sum_partials
from .stream_kernels import launch_post_res_bwd, launch_post_res_fwd, launch_pre_bwd, launch_pre_fwd
from .tuning import blocks


def coefficients_forward(x3: Tensor, phi: Tensor, alpha: Tensor, bias: Tensor, iters: int, eps: float,
                         with_pre: bool) -> tuple[Tensor, ...]:
    """x3 (T, n, C) → z (T, NZ), r (T,), H_pre (T, n), H_post (T, n), H_res (T, n, n), h (T, C) or None."""
    T, n, C = x3.shape
    f32 = dict(device=x3.device, dtype=torch.float32)
    z, r = torch.empty(T, padded_width(n), **f32), torch.empty(T, **f32)
    pre, post, res = torch.empty(T, n, **f32), torch.empty(T, n, **f32), torch.empty(T, n, n, **f32)
    h = torch.empty(T, C, device=x3.device, dtype=x3.dtype) if with_pre else None
    launch_coefficients_fwd(x3.view(T, n * C), phi, alpha, bias, (z, r, pre, post, res, h), n, iters, eps,
                            with_pre=with_pre, blocks=blocks("coefficients_fwd", n, C, tokens=T))
    return z, r, pre, post, res, h


def coefficients_backward(x3, phi, alpha, bias, z, r, iters, *, given=None, fused_from=None, prev=None):
    """dx (T, n, C), dφ (n·C, n²+2n), db (n²+2n,), dα (3,) from either the given coefficient
    gradients (dH_pre, dH_post, dH_res) or, in the fused connection, fused_from = (g, f, dh, H_pre, H_res).
    prev = (H_post (T, n), dF (T, C)) of the connection that wrote x: dF is filled from dx as well."""
    T, n, C = x3.shape
    kc = phi.shape[1]
    bt, bc, warps = blocks("coefficients_bwd_token", n, C)
    dy, s = torch.empty_like(z), torch.empty_like(r)
    parts = torch.empty(kc + 3, cdiv(T, bt), device=z.device, dtype=torch.float32)
    reduce_from = None if fused_from is None else (fused_from[0], x3, fused_from[1], fused_from[2])
    launch_token_pass(z, r, alpha, bias, given, reduce_from, (dy, s, parts), n, C, iters, (bt, bc, warps))
    spp = n if prev is not None else channel_streams(n)
    bt, bc, warps, splits = blocks("coefficients_bwd_channel_all" if spp > 2 else "coefficients_bwd_channel",
                                   n, C, tokens=T)
    dx = torch.empty_like(x3)
    dphi_parts = torch.empty(splits, n * C, kc, device=x3.device, dtype=torch.float32)
    channel_from = None if fused_from is None else (fused_from[0], fused_from[2], fused_from[3], fused_from[4])
    launch_channel_pass(x3, phi, dy, s, channel_from, dx, dphi_parts, n, (bt, bc, warps), streams_per_program=spp,
                        prev=prev)
    dphi, sums = sum_partials(dphi_parts, parts)
    return dx, dphi, sums[:kc], sums[kc:]


def _reshape_out(t: Tensor, lead: torch.Size, *tail: int) -> Tensor:
    return t.view(*lead, *tail)


class _Coefficients(Function):
    @staticmethod
    def forward(ctx, x, phi, bias, alpha, iters, eps):
        n = x.shape[-2]
        x3, params = as_tokens(x, 2), coefficient_params(phi, alpha, bias)
        z, r, pre, post, res, _ = coefficients_forward(x3, *params, iters, eps, with_pre=False)
        ctx.save_for_backward(x3, *params, z, r)
        lead = x.shape[:-2]
        ctx.iters, ctx.lead, ctx.dtypes = iters, lead, (x.dtype, phi.dtype, bias.dtype, alpha.dtype)
        return _reshape_out(pre, lead, n), _reshape_out(post, lead, n), _reshape_out(res, lead, n, n)

    @staticmethod
    def backward(ctx, dpre, dpost, dres):
        x3, phi, alpha, bias, z, r = ctx.saved_tensors
        T, n, _ = x3.shape

        def given(g, *tail):
            return torch.zeros(T, *tail, device=z.device) if g is None else g.reshape(T, *tail).float().contiguous()

        dx, dphi, db, dalpha = coefficients_backward(
            x3, phi, alpha, bias, z, r, ctx.iters, given=(given(dpre, n), given(dpost, n), given(dres, n, n))
        )
        xd, pd, bd, ad = ctx.dtypes
        return dx.view(*ctx.lead, *x3.shape[1:]).to(xd), dphi.to(pd), db.to(bd), dalpha.to(ad), None, None


class _Pre(Function):
    @staticmethod
    def forward(ctx, x, h_pre):
        n, C = x.shape[-2], x.shape[-1]
        lead = x.shape[:-2]
        x3 = as_tokens(x, 2)
        pre = as_tokens(h_pre.float().expand(*lead, n), 1)
        h = torch.empty(x3.shape[0], C, device=x.device, dtype=x.dtype)
        launch_pre_fwd(x3, pre, h, blocks("pre_fwd", n, C))
        ctx.save_for_backward(x3, pre)
        ctx.lead, ctx.pre_shape, ctx.pre_dtype = lead, h_pre.shape, h_pre.dtype
        return h.view(*lead, C)

    @staticmethod
    def backward(ctx, dh):
        x3, pre = ctx.saved_tensors
        T, n, C = x3.shape
        dx, dpre = torch.empty_like(x3), torch.empty(T, n, device=x3.device, dtype=torch.float32)
        launch_pre_bwd(x3, pre, grad_dtype_like(dh, x3).view(T, C), dx, dpre, blocks("pre_bwd", n, C))
        dpre = dpre.view(*ctx.lead, n).sum_to_size(ctx.pre_shape).to(ctx.pre_dtype)
        return dx.view(*ctx.lead, n, C), dpre


class _PostRes(Function):
    @staticmethod
    def forward(ctx, x, f, h_post, h_res):
        n, C = x.shape[-2], x.shape[-1]
        lead = x.shape[:-2]
        x3 = as_tokens(x, 2)
        f2 = as_tokens(f.expand(*lead, C), 1)
        post = as_tokens(h_post.float().expand(*lead, n), 1)
        res = as_tokens(h_res.float().expand(*lead, n, n), 2)
        out = torch.empty_like(x3)
        launch_post_res_fwd(x3, f2, post, res, out, blocks("post_res_fwd", n, C))
        ctx.save_for_backward(x3, f2, post, res)
        ctx.lead, ctx.shapes = lead, (f.shape, f.dtype, h_post.shape, h_post.dtype, h_res.shape, h_res.dtype)
        return out.view(*lead, n, C)

    @staticmethod
    def backward(ctx, g):
        x3, f2, post, res = ctx.saved_tensors
        T, n, C = x3.shape
        g3 = grad_dtype_like(g, x3).view(T, n, C)
        dx, df = torch.empty_like(x3), torch.empty_like(f2)
        dpost, dres = torch.empty_like(post), torch.empty_like(res)
        launch_post_res_bwd(g3, x3, f2, post, res, df, (dx, dpost, dres), blocks("post_res_bwd", n, C))
        f_shape, f_dtype, p_shape, p_dtype, r_shape, r_dtype = ctx.shapes
        lead = ctx.lead
        return (
            dx.view(*lead, n, C),
            df.view(*lead, C).sum_to_size(f_shape).to(f_dtype),
            dpost.view(*lead, n).sum_to_size(p_shape).to(p_dtype),
            dres.view(*lead, n, n).sum_to_size(r_shape).to(r_dtype),
        )


def mhc_coefficients(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, iters: int = 20,
                     eps: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """Triton twin of ``mhc_course.mhc_coefficients``: (h_pre (..., n), h_post (..., n), h_res (..., n, n)), float32."""
    check_coefficient_params(x, phi, bias, alpha)
    check_kernel_streams(x)
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f"iters must be an int >= 1 for the kernels, got {iters!r}")
    return _Coefficients.apply(x, phi, bias, alpha, iters, eps)


def mhc_pre(x: Tensor, h_pre: Tensor) -> Tensor:
    """Triton twin of ``mhc_course.mhc_pre``: Σ_i h_pre[i]·x[i] → (..., C) in x's dtype."""
    check_pre_args(x, h_pre)
    check_kernel_streams(x)
    return _Pre.apply(x, h_pre)


def mhc_post_res(x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
    """Triton twin of ``mhc_course.mhc_post_res``: h_res·x + h_post ⊗ f → (..., n, C) in x's dtype."""
    check_post_res_args(x, f, h_post, h_res)
    check_kernel_streams(x)
    return _PostRes.apply(x, f, h_post, h_res)
