"""Deep-stack propagation: branches, stacks by placement, forward RMS and backward gradient RMS."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mhc_course.metrics import rms
from mhc_course.propagation import (
    PLACEMENTS,
    NoSkip,
    RandomBranch,
    build_stack,
    identity_path_weight,
    make_block,
    propagate,
    propagation_profile,
    single_thread,
)
from mhc_course.residual import PostNormResidual, PreNormResidual


class Scale(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, h):
        return self.c * h


def test_rms_by_hand_and_bad_input():
    assert rms(torch.tensor([3.0, -4.0])).item() == pytest.approx(math.sqrt(12.5))
    with pytest.raises(ValueError, match="t must be a floating-point tensor"):
        rms(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"at least one entry, got shape \(0,\)"):
        rms(torch.empty(0))


@pytest.mark.parametrize("kind", ["mlp", "linear"])
@pytest.mark.parametrize("gain", [0.3, 1.0, 2.5])
def test_branch_multiplies_rms_by_about_gain(kind, gain):
    g = torch.Generator().manual_seed(int(torch.randint(0, 2**31 - 1, ())))
    f = RandomBranch(256, gain, kind, generator=g)
    x = torch.randn(128, 256, generator=g, dtype=torch.float64)
    assert rms(f(x)).item() / rms(x).item() == pytest.approx(gain, rel=0.15)


def test_set_gain_rescales_the_output_projection():
    a = RandomBranch(16, 1.0, generator=torch.Generator().manual_seed(3))
    b = RandomBranch(16, 0.7, generator=torch.Generator().manual_seed(3))
    a.set_gain(0.7)
    torch.testing.assert_close(a.w_out, b.w_out)
    torch.testing.assert_close(a.w_in, b.w_in)
    x = torch.randn(4, 16, dtype=torch.float64)
    torch.testing.assert_close(a(x), b(x))


def test_stack_weights_depend_only_on_seed_and_layer():
    short = build_stack("none", 3, 8, 1.0, seed=5)
    long = build_stack("pre-norm", 7, 8, 2.0, seed=5)
    for k in range(3):
        torch.testing.assert_close(2 * short[k].sublayer.w_out, long[k].sublayer.w_out)
        torch.testing.assert_close(short[k].sublayer.w_in, long[k].sublayer.w_in)
    other = build_stack("none", 3, 8, 1.0, seed=6)
    assert not torch.allclose(short[0].sublayer.w_out, other[0].sublayer.w_out)


def test_blocks_by_placement():
    f = RandomBranch(8, 1.0)
    assert isinstance(make_block("none", f, 8), NoSkip)
    assert isinstance(make_block("post-norm", f, 8), PostNormResidual)
    assert isinstance(make_block("pre-norm", f, 8), PreNormResidual)
    for p in PLACEMENTS:
        stack = build_stack(p, 4, 8, 1.0, dtype=torch.float32)
        assert len(stack) == 4 and all(t.dtype == torch.float32 for t in stack.parameters())


@settings(max_examples=25, deadline=None)
@given(c=st.floats(0.3, 3.0), depth=st.integers(0, 12))
def test_propagate_on_a_stack_of_scalings_is_exact(c, depth):
    """h_l = c^l·x and ∂loss/∂h_l = c^(L-l)·r with RMS(r) = 1."""
    x = torch.randn(5, 6, dtype=torch.float64) + 0.1
    out = propagate([Scale(c) for _ in range(depth)], x, torch.randn(5, 6, dtype=torch.float64))
    powers = torch.arange(depth + 1, dtype=torch.float64)
    torch.testing.assert_close(out["act_rms"], rms(x) * c**powers)
    torch.testing.assert_close(out["grad_rms"], c ** (depth - powers))


def test_propagate_matches_retain_grad():
    blocks = build_stack("pre-norm", 6, 12, 1.4, seed=int(torch.randint(0, 1000, ())))
    x = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    r = torch.randn(3, 12, dtype=torch.float64)
    hs = [x]
    for b in blocks:
        hs.append(b(hs[-1]))
        hs[-1].retain_grad()
    (hs[-1] * r / rms(r)).sum().backward()
    out = propagate(blocks, x, r)
    torch.testing.assert_close(out["act_rms"], torch.stack([rms(h.detach()) for h in hs]))
    torch.testing.assert_close(out["grad_rms"], torch.stack([rms(h.grad) for h in hs]))
    assert out["grad_rms"][-1].item() == pytest.approx(1.0)


def test_what_the_lesson_shows():
    depth = 48
    vanish = propagation_profile("none", depth, 0.5, C=32, batch=8)
    explode = propagation_profile("none", depth, 2.0, C=32, batch=8)
    assert vanish["act_rms"][-1] < 1e-9 and vanish["grad_rms"][0] < 1e-9  # about 0.5^48
    assert explode["act_rms"][-1] > 1e9 and explode["grad_rms"][0] > 1e9
    post = propagation_profile("post-norm", depth, 2.0, C=32, batch=8)
    torch.testing.assert_close(post["act_rms"][1:], torch.ones(depth, dtype=torch.float64), rtol=1e-5, atol=0)
    pre = propagation_profile("pre-norm", depth, 1.0, C=32, batch=8)
    # each layer adds a branch output of RMS ≈ gain, nearly orthogonal to h: RMS² ≈ 1 + l·gain²
    assert pre["act_rms"][-1].item() == pytest.approx(math.sqrt(1 + depth), rel=0.25)
    assert 1 < pre["grad_rms"][0] < 2 * math.sqrt(1 + depth)


def test_profile_cache_gives_the_fresh_stack():
    for gain in (1.7, 0.6, 1.7):
        for depth in (5, 300):
            got = propagation_profile("post-norm", depth, gain, C=8, batch=3, kind="linear", seed=11)
            g = torch.Generator().manual_seed(12)
            x = torch.randn(3, 8, generator=g, dtype=torch.float64)
            r = torch.randn(3, 8, generator=g, dtype=torch.float64)
            want = propagate(build_stack("post-norm", depth, 8, gain, kind="linear", seed=11), x, r)
            torch.testing.assert_close(got["act_rms"], want["act_rms"])
            torch.testing.assert_close(got["grad_rms"], want["grad_rms"])


def test_identity_path_weight():
    x = torch.randn(4, 16, dtype=torch.float64)
    assert (identity_path_weight(build_stack("pre-norm", 5, 16, 1.0), x) == 1).all()
    w_none = identity_path_weight(build_stack("none", 5, 16, 1.0), x)
    assert w_none[0] == 1 and (w_none[1:] == 0).all()
    post = build_stack("post-norm", 5, 16, 1.0, kind="linear")
    want, h, weight = [1.0], x, torch.ones(4, dtype=torch.float64)
    for block in post:  # h + W h divided by its RMS; the norm's weight is 1 at initialisation
        y = h + block.sublayer(h)
        weight = weight / torch.sqrt(y.square().mean(-1) + 1e-6)
        want.append(weight.mean().item())
        h = block(h)
    got = identity_path_weight(post, x)
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64))
    assert (got.diff() < 0).all()


def test_single_thread_restores_the_setting():
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_bad_input():
    with pytest.raises(ValueError, match="placement must be one of"):
        build_stack("sandwich", 3, 8, 1.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        RandomBranch(8, 1.0, "attention")
    with pytest.raises(ValueError, match="gain must be a finite number > 0, got -1"):
        build_stack("none", 3, 8, -1.0)
    with pytest.raises(ValueError, match="depth must be an int >= 1, got 0"):
        propagation_profile("none", 0, 1.0)
    x = torch.randn(2, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"readout must have x's shape \(2, 8\), got \(2, 9\)"):
        propagate(build_stack("none", 2, 8, 1.0), x, torch.randn(2, 9))
    with pytest.raises(ValueError, match=r"blocks\[0\] maps shape \(2, 8\) to \(2, 4\)"):
        propagate([nn.Linear(8, 4).double()], x)
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        propagate([Scale(2.0)], torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"blocks\[0\] must be NoSkip, PostNormResidual or PreNormResidual"):
        identity_path_weight([Scale(2.0)], x)
