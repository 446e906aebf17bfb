"""The backward's partial sums (kernels/partial_sums.py) against torch's sums, on fresh random partials.

On a CPU the kernel runs in Triton's interpreter; on a CUDA machine on the GPU.
"""

import pytest
import torch
from mhc_course.kernels.partial_sums import BLOCK, sum_partials

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize(("splits", "shape", "W", "P"), [
    (1, (5, 3), 6, 1),  # one split, one program
    (8, (2 * BLOCK + 37,), 27, 1500),  # M and P past one block each (P loops)
    (3, (40, 24), 83, 1024),
])
def test_sums_match_torch(splits, shape, W, P):
    g = torch.Generator(device=DEVICE).manual_seed(splits * 1000 + W)
    dphi_parts = torch.randn(splits, *shape, device=DEVICE, generator=g)
    parts = torch.randn(W, P, device=DEVICE, generator=g) + 0.5
    dphi, sums = sum_partials(dphi_parts, parts)
    assert dphi.shape == shape and sums.shape == (W,)
    torch.testing.assert_close(dphi, dphi_parts.sum(0), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(sums, parts.sum(1), rtol=1e-5, atol=1e-4)
    again = sum_partials(dphi_parts, parts)
    assert torch.equal(again[0], dphi) and torch.equal(again[1], sums)  # a fixed order: the same bits


def test_bad_partials_name_the_argument():
    ok = torch.zeros(2, 4, device=DEVICE)
    with pytest.raises(ValueError, match=r"parts must be .* got parts torch.float32 of shape \(3,\)"):
        sum_partials(ok, torch.zeros(3, device=DEVICE))
    with pytest.raises(ValueError, match=r"dphi_parts must be .* got dphi_parts torch.float64"):
        sum_partials(ok.double(), ok)
    with pytest.raises(ValueError, match="dphi_parts must be"):
        sum_partials(torch.zeros(4, device=DEVICE), ok)
