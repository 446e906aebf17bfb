import torch

from mhc_course import amax_gain, composite, composite_prefixes, gain_profile, sinkhorn_knopp


def test_amax_gain_by_hand():
    m = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
    fwd, bwd = amax_gain(m)
    assert fwd.item() == 3.0  # |1| + |-2|
    assert bwd.item() == 2.25  # |-2| + |0.25|


def test_amax_gain_keeps_leading_dims():
    m = torch.randn(3, 5, 4, 4)
    fwd, bwd = amax_gain(m)
    assert fwd.shape == bwd.shape == (3, 5)
    torch.testing.assert_close(bwd, amax_gain(m.transpose(-1, -2))[0])


def test_composite_order_later_on_the_left():
    mats = [torch.randn(3, 3, dtype=torch.float64) for _ in range(4)]
    torch.testing.assert_close(composite(mats), mats[3] @ mats[2] @ mats[1] @ mats[0])
    torch.testing.assert_close(composite(torch.stack(mats)), composite(mats))
    prefixes = composite_prefixes(mats)
    torch.testing.assert_close(prefixes[1], mats[1] @ mats[0])


def test_gain_profile_doubly_stochastic_vs_unconstrained():
    torch.manual_seed(0)
    depth, tokens = 32, 16
    eye = torch.eye(4)
    hc = [eye + 0.3 * torch.randn(tokens, 4, 4) for _ in range(depth)]
    mhc = [sinkhorn_knopp(torch.log(h.abs() + 1e-3), 20) for h in hc]
    p_hc, p_mhc = gain_profile(hc), gain_profile(mhc)
    assert p_hc["composite_fwd"].shape == (depth,)
    assert p_hc["composite_fwd"][-1] > 50  # unconstrained products grow with depth
    assert (p_mhc["composite_fwd"] - 1).abs().max() < 1e-5  # rows exact, products stay ≈ 1
    assert (p_mhc["composite_bwd"] < 1.1).all()


def test_drifted_mappings():
    from mhc_course.random_mappings import hc_mappings, mhc_mappings

    g = torch.Generator().manual_seed(0)
    hc = hc_mappings(64, 4, 0.3, tokens=8, generator=g)
    mhc = mhc_mappings(64, 4, 3.0, tokens=8, generator=g)
    assert hc.shape == mhc.shape == (64, 8, 4, 4)
    assert gain_profile(hc)["composite_fwd"][-1] > 1000  # the paper's "thousands"
    torch.testing.assert_close(mhc.sum(-1), torch.ones(64, 8, 4, dtype=torch.float64))
    assert gain_profile(mhc)["composite_bwd"].max() < 1.5
    torch.testing.assert_close(mhc_mappings(1, 4, 0.0)[0, 0].diagonal(), torch.full((4,), 0.95, dtype=torch.float64))
