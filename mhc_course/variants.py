"""The mHC layer as DeepSeek's released code computes it, re-derived from its description.

This module is NOT the paper's formulation (that is ``mhc_course.mhc``). It re-implements,
from the description in the course's notes (no code copied), the choices the public release
makes where the paper is silent or differs, so that a lesson can measure whether they matter:

1. One packed projection ``fn`` of shape (n²+2n, n·C), rows ordered [pre | post | res], with
   the RMSNorm weight folded in (``fn · diag(w)``): a reparameterisation of the paper's φ.
2. ``pre = σ(·) + pre_eps`` instead of σ(·).
3. Sinkhorn starts from a row softmax plus eps, then a column step, then ``iters - 1`` times a
   row step and a column step, every step dividing by (sum + eps). It ends on a column step.
4. The result ``comb`` is applied transposed: ``x_next[j] = Σ_i comb[i, j]·x[i] + post[j]·f``,
   so the matrix that acts on the streams (the paper's H_res) is ``combᵀ``.

``to_released`` converts the paper's (φ, b, α) into this layout so that both compute the same
layer; with every eps set to 0 they agree to rounding (the tests check it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .mhc import coefficient_count, mhc_post_res
from .sinkhorn import sinkhorn_knopp
from .validation import check_same_device, check_shape, check_square, check_streams, check_tensor, compute_dtype


def _check_eps(**values: float) -> None:
    for name, v in values.items():
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0, got {v}")


def released_sinkhorn(logits: Tensor, iters: int = 20, eps: float = 1e-6, floor: float | None = None) -> Tensor:
    """The release's normalisation of (..., n, n) logits into ``comb`` (..., n, n).

    Row softmax + ``floor``, column step, then ``iters - 1`` × (row step, column step); each
    step divides by (sum + ``eps``). The release uses one eps for both (``floor=None`` means
    floor = eps); they are separate here so that a lesson can measure each. Columns come last,
    so column sums are exact up to eps and row sums carry the remaining error. ``iters``
    counts column steps (≥ 1). At least float32.
    """
    logits = check_square("logits", logits)
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 1:
        raise ValueError(f"iters must be an int >= 1 (one column step at least), got {iters!r}")
    floor = eps if floor is None else floor
    _check_eps(eps=eps, floor=floor)
    m = torch.softmax(logits.to(compute_dtype(logits)), dim=-1) + floor
    m = m / (m.sum(dim=-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        m = m / (m.sum(dim=-1, keepdim=True) + eps)
        m = m / (m.sum(dim=-2, keepdim=True) + eps)
    return m


def released_coefficients(
    x: Tensor, fn: Tensor, scale: Tensor, base: Tensor, *, norm_weight: Tensor | None = None, iters: int = 20,
    norm_eps: float = 1e-6, pre_eps: float = 1e-6, sinkhorn_eps: float = 1e-6, post_mult: float = 2.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """(pre (..., n), post (..., n), comb (..., n, n)) the way the release computes them.

    Args:
        x: (..., n, C) streams.
        fn: (n²+2n, n·C) packed projection, rows [pre | post | res (comb, row-major)].
        scale: (3,) gates for the three groups (the paper's α).
        base: (n²+2n,) biases (the paper's b), same order as fn's rows.
        norm_weight: optional (n·C,) RMSNorm weight, folded into fn as fn·diag(w).
        iters, norm_eps, pre_eps, sinkhorn_eps: Sinkhorn column steps and the three eps.
        post_mult: post = post_mult·σ(·) (2, as in the paper).
    """
    n, c = check_streams("x", x)
    k = coefficient_count(n)
    for name, t in (("fn", fn), ("scale", scale), ("base", base)):
        check_tensor(name, t)
    check_shape("fn", fn, (k, n * c), f"(n²+2n) × n·C for x of shape {tuple(x.shape)}")
    check_shape("scale", scale, (3,), "one gate per group: pre, post, res")
    check_shape("base", base, (k,), f"n²+2n for n={n}")
    _check_eps(norm_eps=norm_eps, pre_eps=pre_eps)
    dt = compute_dtype(x, fn, scale, base)
    w = fn.to(dt)
    if norm_weight is not None:
        check_tensor("norm_weight", norm_weight)
        check_shape("norm_weight", norm_weight, (n * c,), f"n·C for x of shape {tuple(x.shape)}")
        check_same_device(x=x, norm_weight=norm_weight)
        w = w * norm_weight.to(dt)
    check_same_device(x=x, fn=fn, scale=scale, base=base)
    v = x.to(dt).flatten(-2)
    mixes = (v @ w.T) * torch.rsqrt(v.square().mean(dim=-1, keepdim=True) + norm_eps)
    gates = torch.cat([scale[0].expand(n), scale[1].expand(n), scale[2].expand(n * n)]).to(dt)
    mixes = mixes * gates + base.to(dt)
    pre = torch.sigmoid(mixes[..., :n]) + pre_eps
    post = post_mult * torch.sigmoid(mixes[..., n : 2 * n])
    comb = released_sinkhorn(mixes[..., 2 * n :].unflatten(-1, (n, n)), iters, sinkhorn_eps)
    return pre, post, comb


def released_post_res(x: Tensor, f: Tensor, post: Tensor, comb: Tensor) -> Tensor:
    """x_next[j] = Σ_i comb[i, j]·x[i] + post[j]·f: the release applies combᵀ to the streams.

    Shapes as ``mhc_post_res``: x (..., n, C), f (..., C), post (..., n), comb (..., n, n).
    """
    check_tensor("comb", comb, min_dim=2)
    return mhc_post_res(x, f, post, comb.transpose(-1, -2))


def to_released(phi: Tensor, bias: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The paper's (φ (n·C, n²+2n), b (n²+2n,), α (3,)) as the release's (fn, scale, base).

    fn is φᵀ with the n² res rows reordered so that comb's logits are the transpose of the
    paper's H_res logits: then ``released_coefficients`` + ``released_post_res`` compute the
    paper's layer, up to the eps terms.
    """
    for name, t in (("phi", phi), ("bias", bias), ("alpha", alpha)):
        check_tensor(name, t)
    k = phi.shape[-1] if phi.dim() == 2 else -1
    n = round((k + 1) ** 0.5) - 1 if k > 0 else 0
    if n < 1 or coefficient_count(n) != k:
        raise ValueError(f"phi must be (n·C, n²+2n), got shape {tuple(phi.shape)}")
    check_shape("bias", bias, (k,), f"n²+2n for n={n}")
    check_shape("alpha", alpha, (3,), "(α_pre, α_post, α_res)")
    # paper column 2n + i·n + j holds H_res[i, j]; the release's row 2n + j·n + i holds comb[j, i] = H_res[i, j]
    order = torch.cat([torch.arange(2 * n), 2 * n + torch.arange(n * n).view(n, n).T.flatten()])
    return phi.T[order].contiguous(), alpha.clone(), bias[order].clone()


def acting_matrices(logits: Tensor, iters: int = 20, eps: float = 1e-6) -> dict[str, Tensor]:
    """The matrix that multiplies the streams, from the same H_res logits, three ways.

    Args:
        logits: (..., n, n) H_res logits in the paper's orientation (entry [i, j] weighs
            stream j into stream i).

    Returns:
        dict of (..., n, n): ``"paper"`` = Sinkhorn–Knopp(logits); ``"released"`` = the
        release's Sinkhorn of its comb logits (logitsᵀ), applied transposed; ``"released, not
        transposed"`` = the release's Sinkhorn of the logits used directly as H_res, as a
        replication that copies the normalisation but not the transpose would do.
    """
    logits = check_square("logits", logits)
    return {
        "paper": sinkhorn_knopp(logits, iters),
        "released": released_sinkhorn(logits.transpose(-1, -2), iters, eps).transpose(-1, -2),
        "released, not transposed": released_sinkhorn(logits, iters, eps),
    }
