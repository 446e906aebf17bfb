"""Which number format each part of the mHC coefficients uses (§4.3), and what other choices would cost.

The paper keeps the streams x in bf16 (they are the large tensors: n·C per token and layer),
computes the projection with φ in tf32 (the tensor cores' fp32-range format with a 10-bit
mantissa), and keeps α, b and the coefficients in fp32. It also moves the RMSNorm division
after the matmul:

    r = ‖v‖ / sqrt(n·C),    H̃ = (1/r) · α ⊙ (v φ) + b

which equals α ⊙ (RMSNorm(v) φ) + b because r is one scalar per token, and which scales n²+2n
numbers per token instead of n·C, never writes (or saves for the backward) the normalised
token, and lets one pass over v feed both the matmul and the sum of squares.

``coefficients_in_precision`` reproduces five choices of formats on the same bf16 streams so
their errors can be compared with a float64 reference. TF32 is emulated on any device by
rounding the matmul inputs to 10 mantissa bits and multiplying in fp32 (``round_to_tf32``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .mhc import check_coefficient_params
from .sinkhorn import sinkhorn_error, sinkhorn_knopp, sinkhorn_knopp_in_dtype

MODES = {
    "fp64": "everything in float64 (the reference)",
    "fp32": "projection and coefficients in fp32",
    "paper": "projection in tf32 (φ and v rounded to 10 mantissa bits), α, b, coefficients in fp32",
    "bf16 projection": "φ in bf16, projection output rounded to bf16; α, b, coefficients in fp32",
    "all bf16": "projection, α, b, σ and Sinkhorn–Knopp all in bf16",
}


def round_to_tf32(t: Tensor) -> Tensor:
    """fp32 values rounded to TF32's 10-bit mantissa (nearest, ties away from zero), returned as fp32.

    TF32 keeps fp32's 8-bit exponent and 10 of its 23 mantissa bits: the 13 low bits are rounded off.
    """
    if t.dtype != torch.float32:
        raise ValueError(f"round_to_tf32 takes a float32 tensor, got dtype {t.dtype} (shape {tuple(t.shape)})")
    bits = t.contiguous().view(torch.int32)
    rounded = (bits + 0x1000) & ~0x1FFF  # add half of the dropped part to the magnitude, then clear it
    return torch.where(torch.isfinite(t), rounded.view(torch.float32), t)


def spacing(value: float, dtype: torch.dtype) -> float:
    """The gap between |value| and the next representable number of ``dtype`` above it."""
    if not dtype.is_floating_point:
        raise ValueError(f"spacing needs a floating dtype, got {dtype}")
    v = torch.tensor(abs(value), dtype=dtype)
    return (torch.nextafter(v, torch.tensor(float("inf"), dtype=dtype)) - v).item()


def gated_term_in_bf16(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, column: int,
                       eps: float = 1e-6) -> dict[str, float]:
    """What happens to one logit's token-dependent part α·z when the logit α·z + b is rounded to bf16.

    Args:
        x: (..., n, C) tokens; phi, bias, alpha: the connection's parameters.
        column: which of the n²+2n logits (2n + i·n + i is H_res's i-th diagonal entry).

    Returns:
        ``bias`` (b at that column), ``bf16_spacing`` and ``fp32_spacing`` near it, ``mean_gated``
        (mean |α·z| over tokens) and ``lost`` (share of tokens whose bf16 logit equals bf16(b)).
    """
    n, _ = check_coefficient_params(x, phi, bias, alpha)
    logits = logits_norm_first(x.float(), phi.float(), bias.float(), alpha.float(), eps)[..., column]
    b = bias[column].float()
    gated = logits - b
    lost = (logits.bfloat16() == b.bfloat16()).float().mean().item()
    return {"bias": b.item(), "bf16_spacing": spacing(b.item(), torch.bfloat16),
            "fp32_spacing": spacing(b.item(), torch.float32), "mean_gated": gated.abs().mean().item(), "lost": lost}


def norm_saved_values(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor) -> dict[str, float]:
    """Values per token autograd keeps for the logits (x (..., n, C) included), norm first vs norm after.

    x and φ require gradients, as in training; φ itself is left out of the count.
    """
    from .memory import SavedTensors  # measuring tool; imported here to keep this module's imports light

    out = {}
    phi = phi.detach().requires_grad_(True)
    for name, fn in (("norm first", logits_norm_first), ("norm after", logits_norm_after)):
        xr = x.detach().clone().requires_grad_(True)
        with SavedTensors(exclude=[phi]) as saved:
            logits = fn(xr, phi, bias.detach(), alpha.detach())
        out[name] = saved.nbytes / (xr[..., 0, 0].numel() * xr.element_size())
        del logits
    return out


def logits_norm_first(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, eps: float = 1e-6) -> Tensor:
    """H̃ (..., n²+2n) as Eqs. 7–8 write it: RMSNorm the flattened token, then project."""
    n, _ = check_coefficient_params(x, phi, bias, alpha)
    v = x.flatten(-2)
    z = (v * torch.rsqrt(v.square().mean(dim=-1, keepdim=True) + eps)) @ phi
    return _gate(z, bias, alpha, n)


def logits_norm_after(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, eps: float = 1e-6) -> Tensor:
    """H̃ (..., n²+2n) as the kernels compute it: project the raw token, then divide the n²+2n results by r."""
    n, _ = check_coefficient_params(x, phi, bias, alpha)
    v = x.flatten(-2)
    r = torch.sqrt(v.square().mean(dim=-1, keepdim=True) + eps)
    return _gate((v @ phi) / r, bias, alpha, n)


def _gate(z: Tensor, bias: Tensor, alpha: Tensor, n: int) -> Tensor:
    gates = torch.cat([alpha[0].expand(n), alpha[1].expand(n), alpha[2].expand(n * n)])
    return gates * z + bias


def normalisation_work(n: int, C: int) -> dict[str, int]:
    """Per token: values scaled by 1/r, and extra values written, with the norm before or after the matmul."""
    if n < 1 or C < 1:
        raise ValueError(f"n and C must be >= 1, got n={n}, C={C}")
    return {"scaled_before": n * C, "scaled_after": n * n + 2 * n, "written_before": n * C, "written_after": 0}


def _projection(v: Tensor, phi: Tensor, mode: str) -> Tensor:
    if mode == "fp64":
        return v.double() @ phi.double()
    if mode == "fp32":
        return v.float() @ phi.float()
    if mode == "paper":
        return round_to_tf32(v.float()) @ round_to_tf32(phi.float())
    return (v.bfloat16() @ phi.bfloat16()).float()  # bf16 inputs, fp32 accumulation, bf16 output


def coefficients_in_precision(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, mode: str, iters: int = 20,
                              eps: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """(H_pre (..., n), H_post (..., n), H_res (..., n, n)) computed with the formats of ``mode``, as float64.

    The sum of squares for r is accumulated in fp32 (fp64 for "fp64") in every mode, as a kernel
    would; the norm is applied after the matmul.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {tuple(MODES)}, got {mode!r}")
    n, _ = check_coefficient_params(x, phi, bias, alpha)
    acc = torch.float64 if mode == "fp64" else torch.float32
    v = x.flatten(-2)
    r = torch.sqrt(v.to(acc).square().mean(dim=-1, keepdim=True) + eps)
    z = _projection(v, phi, mode).to(acc) / r
    if mode == "all bf16":
        low = torch.bfloat16
        logits = _gate(z.to(low), bias.to(low), alpha.to(low), n)
        h_pre, h_post = torch.sigmoid(logits[..., :n]), 2 * torch.sigmoid(logits[..., n : 2 * n])
        h_res = sinkhorn_knopp_in_dtype(logits[..., 2 * n :].unflatten(-1, (n, n)), iters, low)
    else:
        logits = _gate(z, bias.to(acc), alpha.to(acc), n)
        h_pre, h_post = torch.sigmoid(logits[..., :n]), 2 * torch.sigmoid(logits[..., n : 2 * n])
        h_res = sinkhorn_knopp(logits[..., 2 * n :].unflatten(-1, (n, n)), iters)
    return h_pre.double(), h_post.double(), h_res.double()


def precision_errors(x: Tensor, phi: Tensor, bias: Tensor, alpha: Tensor, iters: int = 20
                     ) -> dict[str, dict[str, float]]:
    """For every mode: the largest error of H_pre, H_post, H_res against "fp64" on the same bf16-rounded x,
    and H_res's largest row and column sum errors.

    Args:
        x: (..., n, C) streams; they are first rounded to bf16, as the paper stores them.
        phi, bias, alpha: the connection's parameters (any float dtype).

    Returns:
        {mode: {"h_pre", "h_post", "h_res", "row_sum", "col_sum"}} of Python floats.
    """
    x = x.bfloat16()
    ref = coefficients_in_precision(x, phi, bias, alpha, "fp64", iters)
    out = {}
    for mode in MODES:
        got = coefficients_in_precision(x, phi, bias, alpha, mode, iters)
        row, col = sinkhorn_error(got[2])
        out[mode] = {name: (g - w).abs().max().item() for name, g, w in zip(("h_pre", "h_post", "h_res"), got, ref,
                                                                             strict=True)}
        out[mode].update(row_sum=row.max().item(), col_sum=col.max().item())
    return out
