"""Bad input fails with a ValueError naming the argument and the shapes."""

import pytest
import torch

from mhc_course import amax_gain, composite, mhc_coefficients, mhc_post_res, mhc_pre


def good(n=4, c=8):
    k = n * n + 2 * n
    return torch.randn(2, n, c), torch.randn(n * c, k), torch.randn(k), torch.randn(3)


def test_coefficients_bad_input():
    x, phi, bias, alpha = good()
    cases = [
        ((torch.randn(8), phi, bias, alpha), r"x must have at least 2 dimensions, got shape \(8,\)"),
        ((x, phi[:-1], bias, alpha), r"phi must have shape \(32, 24\) .*got \(31, 24\)"),
        ((torch.randn(2, 4, 9), phi, bias, alpha), r"phi must have shape \(36, 24\).*x of shape \(2, 4, 9\)"),
        ((torch.randn(2, 2, 16), phi, bias, alpha), r"phi must have shape \(32, 8\)"),
        ((x, phi, bias[:-1], alpha), r"bias must have shape \(24,\) \(n²\+2n for n=4\), got \(23,\)"),
        ((x, phi, bias, alpha[:2]), r"alpha must have shape \(3,\)"),
        ((x.long(), phi, bias, alpha), r"x must be a floating-point tensor, got dtype torch.int64"),
        ((x, phi.to("meta"), bias, alpha), r"arguments must be on one device, got x on cpu .* phi on meta"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            mhc_coefficients(*args)


def test_pre_bad_input():
    x = torch.randn(2, 4, 8)
    with pytest.raises(ValueError, match=r"h_pre must end in \(4,\) to match x, got shape \(2, 3\)"):
        mhc_pre(x, torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"h_pre's leading dims \(3,\) must broadcast to x's leading dims \(2,\)"):
        mhc_pre(x, torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"h_pre must be a floating-point tensor"):
        mhc_pre(x, torch.ones(2, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"x on cpu.*h_pre on meta"):
        mhc_pre(x, torch.randn(2, 4, device="meta"))


def test_post_res_bad_input():
    x, f, hp, hr = torch.randn(2, 4, 8), torch.randn(2, 8), torch.randn(2, 4), torch.randn(2, 4, 4)
    cases = [
        ((x, torch.randn(2, 7), hp, hr), r"f must end in \(8,\) to match x, got shape \(2, 7\)"),
        ((x, f, torch.randn(2, 3), hr), r"h_post must end in \(4,\)"),
        ((x, f, hp, torch.randn(2, 4, 3)), r"h_res must end in \(4, 4\) to match x, got shape \(2, 4, 3\)"),
        ((x, torch.randn(5, 8), hp, hr), r"f's leading dims \(5,\) must broadcast to x's leading dims \(2,\)"),
        ((x, f, hp, hr.to("meta")), r"h_res on meta"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            mhc_post_res(*args)


def test_metric_bad_input():
    with pytest.raises(ValueError, match=r"m must be \(\.\.\., n, n\), got shape \(2, 3\)"):
        amax_gain(torch.randn(2, 3))
    with pytest.raises(ValueError, match="at least one matrix"):
        composite([])
    with pytest.raises(ValueError, match=r"mats\[1\] has shape \(3, 3\) but mats\[0\] has \(2, 2\)"):
        composite([torch.eye(2), torch.eye(3)])
