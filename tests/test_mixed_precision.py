"""Number formats of the coefficients: TF32 emulation, norm after the matmul, and the error of each choice."""

import pytest
import torch

from mhc_course import MHC, mhc_coefficients
from mhc_course.mixed_precision import (
    MODES,
    coefficients_in_precision,
    gated_term_in_bf16,
    logits_norm_after,
    logits_norm_first,
    norm_saved_values,
    normalisation_work,
    precision_errors,
    round_to_tf32,
    spacing,
)

F64 = torch.float64


def test_round_to_tf32_keeps_ten_mantissa_bits():
    t = torch.randn(10_000) * torch.logspace(-20, 20, 10_000)
    r = round_to_tf32(t)
    rel = ((r - t).abs() / t.abs()).max().item()
    assert 0 < rel <= 2.0**-11  # round to nearest: at most half a step of 2^-10
    assert (r.view(torch.int32) & 0x1FFF).eq(0).all()  # the 13 low mantissa bits are cleared
    b = torch.randn(1000).bfloat16().float()  # bf16 has 7 mantissa bits: already representable
    assert torch.equal(round_to_tf32(b), b)
    assert round_to_tf32(torch.tensor([1 + 2.0**-11])).item() == 1 + 2.0**-10  # a tie goes away from zero
    assert round_to_tf32(torch.tensor([-(1 + 2.0**-11)])).item() == -(1 + 2.0**-10)
    special = torch.tensor([float("inf"), float("-inf"), 0.0])
    assert torch.equal(round_to_tf32(special), special)
    assert round_to_tf32(torch.tensor([float("nan")])).isnan().all()
    with pytest.raises(ValueError, match="float32 tensor, got dtype torch.float64"):
        round_to_tf32(torch.randn(3, dtype=F64))


def test_norm_after_the_matmul_gives_the_same_logits():
    n, C = 4, 32
    conn = MHC(n, C).double()
    x = torch.randn(5, 3, n, C, dtype=F64) * 3
    args = (x, conn.phi.detach(), conn.bias.detach(), conn.alpha.detach() + torch.rand(3, dtype=F64))
    first, after = logits_norm_first(*args), logits_norm_after(*args)
    assert first.shape == (5, 3, n * n + 2 * n)
    torch.testing.assert_close(after, first, rtol=1e-12, atol=1e-12)
    work = normalisation_work(4, 2560)
    assert work == {"scaled_before": 10240, "scaled_after": 24, "written_before": 10240, "written_after": 0}
    with pytest.raises(ValueError, match="must be >= 1"):
        normalisation_work(0, 8)


def test_fp64_mode_is_the_reference_and_modes_are_ordered():
    n, C = 4, 256
    torch.manual_seed(0)
    conn = MHC(n, C)
    with torch.no_grad():
        conn.alpha.fill_(1.0)
    x = torch.randn(128, n, C)
    ref = mhc_coefficients(x.bfloat16().double(), conn.phi.double(), conn.bias.double(), conn.alpha.double())
    got = coefficients_in_precision(x.bfloat16(), conn.phi, conn.bias, conn.alpha, "fp64")
    for g, w in zip(got, ref, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    errors = precision_errors(x, conn.phi.detach(), conn.bias.detach(), conn.alpha.detach())
    assert list(errors) == list(MODES)
    worst = {mode: max(e["h_pre"], e["h_post"], e["h_res"]) for mode, e in errors.items()}
    assert worst["fp64"] == 0
    assert worst["fp32"] < worst["paper"] < worst["bf16 projection"] < worst["all bf16"]
    assert worst["paper"] < 1e-3 and worst["all bf16"] > 1e-3
    # rows of H_res stay exact to fp32 rounding unless Sinkhorn itself runs in bf16
    assert errors["paper"]["row_sum"] < 1e-6 < errors["all bf16"]["row_sum"]
    with pytest.raises(ValueError, match="mode must be one of"):
        coefficients_in_precision(x, conn.phi, conn.bias, conn.alpha, "fp8")


def test_spacing():
    assert spacing(1.0, torch.bfloat16) == 2.0**-7
    assert spacing(4.04, torch.bfloat16) == 2.0**-5
    assert spacing(-4.04, torch.float32) == 2.0**-21
    assert 0 < spacing(0.0, torch.float32) < 1e-40  # the smallest subnormal
    with pytest.raises(ValueError, match="floating dtype"):
        spacing(1.0, torch.int32)


def test_gated_term_is_lost_in_bf16_at_initialisation():
    n, C = 4, 32
    torch.manual_seed(3)
    conn = MHC(n, C)
    x = torch.randn(512, n, C)
    params = (conn.phi.detach(), conn.bias.detach(), conn.alpha.detach())
    t = gated_term_in_bf16(x, *params, column=2 * n)  # H_res's first diagonal logit: β ≈ 4
    assert t["bias"] == pytest.approx(conn.bias[2 * n].item())
    assert t["bf16_spacing"] == 2.0**-5 and t["mean_gated"] < t["bf16_spacing"] / 2
    assert 0.5 < t["lost"] <= 1
    t0 = gated_term_in_bf16(x, *params, column=2 * n + 1)  # an off-diagonal logit: bias 0, nothing is lost
    assert t0["lost"] == 0 and t0["bf16_spacing"] < 1e-30


def test_norm_after_keeps_no_normalised_copy():
    n, C, tokens = 4, 16, 8
    conn = MHC(n, C)
    kept = norm_saved_values(torch.randn(tokens, n, C), conn.phi, conn.bias, conn.alpha)
    assert kept["norm first"] - kept["norm after"] == pytest.approx(n * C - (n * n + 2 * n) - 1, abs=1)
    assert kept["norm after"] > n * C  # x itself is kept for dφ
