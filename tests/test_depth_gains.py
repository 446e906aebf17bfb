"""Stacks of drifted connection modules: recorded h_res and their gains over depth."""

import pytest
import torch

from mhc_course import MHC, HyperConnection, gain_profile
from mhc_course.depth_gains import (
    connection_stack,
    drift_parameters,
    gain_table,
    mapping_profile,
    random_branches,
    recorded_h_res,
    stack_profile,
)

F64 = torch.float64


@pytest.mark.parametrize("kind, cls", [("hc", HyperConnection), ("mhc", MHC)])
def test_stack_at_zero_drift_is_the_initialisation(kind, cls):
    conns = connection_stack(kind, 5, 4, 8, drift=0.0, seed=3)
    fresh = [cls(4, 8, layer_index=k).double() for k in range(5)]
    for conn, ref, k in zip(conns, fresh, range(5), strict=True):
        assert isinstance(conn, cls) and conn.n == 4
        for (name, p), (_, q) in zip(conn.named_parameters(), ref.named_parameters(), strict=True):
            if name != "phi":  # φ is random; everything else is fixed by the initialisation
                torch.testing.assert_close(p, q, msg=f"layer {k} {name}")
    assert all(p.dtype == F64 for p in conns[1].parameters())
    if kind == "hc":
        assert conns[1].dynamic


def test_drift_moves_every_parameter_by_about_the_drift():
    conn = HyperConnection(4, 64).double()
    before = {k: v.clone() for k, v in conn.named_parameters()}
    drift_parameters(conn, 0.5, torch.Generator().manual_seed(0))
    for name, p in conn.named_parameters():
        delta = (p - before[name]).detach()
        assert delta.abs().max() > 0, name
        want = 0.5 / 8 if name in ("W_m", "W_r", "W_beta") else 0.5  # projections scaled by 1/√C
        if delta.numel() >= 64:
            assert 0.7 * want < delta.std() < 1.3 * want, (name, delta.std())
    with pytest.raises(ValueError, match="drift must be a finite number >= 0"):
        drift_parameters(conn, -0.1, torch.Generator())


def test_same_seed_same_stack_different_seed_different():
    a, b = connection_stack("mhc", 3, 4, 8, 0.2, seed=1), connection_stack("mhc", 3, 4, 8, 0.2, seed=1)
    c = connection_stack("mhc", 3, 4, 8, 0.2, seed=2)
    torch.testing.assert_close(a[2].phi, b[2].phi)
    torch.testing.assert_close(a[2].bias, b[2].bias)
    assert not torch.allclose(a[2].bias, c[2].bias)


def test_recorded_h_res_are_the_matrices_the_layers_used():
    depth, n, c = 4, 3, 8
    conns = connection_stack("hc", depth, n, c, 0.3, seed=0)
    branches = random_branches(depth, c)
    h0 = torch.randn(2, 5, c, dtype=F64)
    mats = recorded_h_res(conns, branches, h0)
    assert mats.shape == (depth, 2, 5, n, n)
    x = conns[0].expand(h0)  # replay by hand: x_next = h_res·x + h_post ⊗ F(h_pre·x)
    with torch.no_grad():
        for k, (conn, f) in enumerate(zip(conns, branches, strict=True)):
            h_pre, h_post, h_res = conn.coefficients(x)
            torch.testing.assert_close(mats[k], h_res)
            x = h_res @ x + h_post.unsqueeze(-1) * f((h_pre.unsqueeze(-2) @ x).squeeze(-2)).unsqueeze(-2)
    with pytest.raises(ValueError, match="one branch per connection"):
        recorded_h_res(conns, branches[:-1], h0)


def test_zero_drift_gains_are_one():
    for kind in ("hc", "mhc"):
        p = stack_profile(kind, 0.0, depth=8, n=4, C=8, batch=2, seq=3)
        for key, curve in p.items():
            assert curve.shape == (8,)
            torch.testing.assert_close(curve, torch.ones(8, dtype=F64), rtol=0, atol=1e-3 if "bwd" in key else 1e-12)


def test_drifted_hc_explodes_and_mhc_stays_bounded():
    hc = stack_profile("hc", 0.3, depth=64, n=4, C=16, batch=2, seq=4)
    mhc = stack_profile("mhc", 0.3, depth=64, n=4, C=16, batch=2, seq=4)
    assert hc["composite_fwd"][-1] > 100 and hc["layer_fwd"].mean() > 1.5
    torch.testing.assert_close(mhc["layer_fwd"], torch.ones(64, dtype=F64), rtol=0, atol=1e-12)  # rows exact
    torch.testing.assert_close(mhc["composite_fwd"], torch.ones(64, dtype=F64), rtol=0, atol=1e-10)
    assert (mhc["composite_bwd"] > 1).all() and mhc["composite_bwd"].max() < 1.1


def test_mapping_profile_uses_the_drifted_mappings():
    from mhc_course.random_mappings import hc_mappings

    p = mapping_profile("hc", 0.2, depth=10, n=3, tokens=4, seed=7)
    want = gain_profile(hc_mappings(10, 3, 0.2, tokens=4, generator=torch.Generator().manual_seed(7)))
    for key in want:
        torch.testing.assert_close(p[key], want[key])
    assert mapping_profile("mhc", 1.0, depth=10, n=3)["composite_fwd"].sub(1).abs().max() < 1e-12


def test_gain_table_rows_hold_the_profile_numbers():
    table = gain_table(mapping_profile, (0.2, 1.0), depth=6, n=3, tokens=5)
    lines = table.splitlines()
    assert len(lines) == 1 + 2 * 2 and "comp fwd" in lines[0]
    p = mapping_profile("mhc", 1.0, depth=6, n=3, tokens=5)
    cells = lines[4].replace("|", " ").split()
    assert cells[:2] == ["1.0", "mhc"]
    assert float(cells[3]) == pytest.approx(p["layer_bwd"].mean().item(), abs=1e-4)
    assert float(cells[5]) == pytest.approx(p["composite_bwd"][-1].item(), rel=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind must be one of"):
        stack_profile("residual", 0.1)
    with pytest.raises(ValueError, match="depth and n must be >= 1"):
        mapping_profile("hc", 0.1, depth=0)
    with pytest.raises(ValueError, match="drift must be a finite number"):
        connection_stack("mhc", 2, 4, 8, float("nan"))
    with pytest.raises(ValueError, match="C, batch and seq must be >= 1"):
        stack_profile("mhc", 0.1, seq=0)
