"""Selective recomputation: same values and gradients as the plain stack, and only x_l0 and f_l kept."""

import copy
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from mhc_course import MHC, Residual
from mhc_course.memory import SavedTensors, mlp_sublayer
from mhc_course.memory_model import saved_elements
from mhc_course.recompute import (
    MHCStack,
    default_group_size,
    gradient_gap,
    group_bounds,
    paper_group_size,
    recompute_group,
    recompute_streams,
    run_recomputed,
    run_stored,
)

F64 = torch.float64


def drifted_stack(depth, n, C, seed, dtype=F64):
    """A stack whose every parameter moved away from its initialisation, so no gradient is trivially zero."""
    gen = torch.Generator().manual_seed(seed)
    stack = MHCStack([mlp_sublayer(C, 2 * C) for _ in range(depth)], n, C, recompute=False).to(dtype)
    with torch.no_grad():
        for p in stack.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=dtype))
    return stack


def run_and_grad(stack, x, w, group_size, recompute):
    stack = copy.deepcopy(stack)
    stack.recompute, stack.group_size = recompute, group_size
    xg = x.clone().requires_grad_(True)
    y = stack(xg)
    y.backward(w)
    return y.detach(), xg.grad, {name: p.grad for name, p in stack.named_parameters()}


def assert_same_grads(depth, n, C, group_size, seed, dtype=F64, tol=1e-12):
    stack = drifted_stack(depth, n, C, seed, dtype)
    gen = torch.Generator().manual_seed(seed + 100)
    x = torch.randn(2, 3, n, C, generator=gen, dtype=dtype)
    w = torch.randn(2, 3, n, C, generator=gen, dtype=dtype)
    y0, gx0, gp0 = run_and_grad(stack, x, w, None, recompute=False)
    y1, gx1, gp1 = run_and_grad(stack, x, w, group_size, recompute=True)
    torch.testing.assert_close(y1, y0, rtol=tol, atol=tol)
    torch.testing.assert_close(gx1, gx0, rtol=tol, atol=tol)
    assert gp0.keys() == gp1.keys() and len(gp0) == 8 * depth  # 3 per connection, 5 per MLP sublayer
    for name in gp0:
        assert gp0[name] is not None and gp1[name] is not None, name
        assert gp0[name].abs().max() > 0, name
        torch.testing.assert_close(gp1[name], gp0[name], rtol=tol, atol=tol, msg=name)


@pytest.mark.parametrize(("depth", "group_size"), [(1, 1), (4, 1), (4, 4), (5, 2), (6, 3), (7, 3), (8, None)])
def test_gradients_match_the_plain_stack(depth, group_size):
    assert_same_grads(depth, n=4, C=6, group_size=group_size, seed=depth)


@settings(max_examples=8, deadline=None)
@given(depth=st.integers(1, 6), n=st.integers(1, 4), C=st.integers(1, 5), data=st.data())
def test_gradients_match_for_random_shapes(depth, n, C, data):
    group_size = data.draw(st.integers(1, depth))
    assert_same_grads(depth, n, C, group_size, seed=data.draw(st.integers(0, 10_000)))


def test_float32_matches_to_rounding():
    assert_same_grads(6, 4, 16, 3, seed=3, dtype=torch.float32, tol=1e-5)


def test_functional_api_and_input_without_grad():
    """run_recomputed on plain lists; with x not requiring grad the parameters still get theirs."""
    stack = drifted_stack(5, 3, 4, seed=1)
    conns, layers = list(stack.conns), list(stack.layers)
    x = torch.randn(4, 3, 4, dtype=F64)
    y = run_recomputed(x, conns, layers, 2)
    torch.testing.assert_close(y, run_stored(x, conns, layers), rtol=0, atol=0)
    y.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in stack.parameters())


def test_saved_bytes_are_x_l0_and_f():
    """Autograd keeps exactly ceil(L/L_r) group inputs, L sublayer outputs and the sublayers' own tensors."""
    depth, n, C, tokens = 7, 4, 8, 5
    stack = drifted_stack(depth, n, C, seed=2)
    sub_saved = SavedTensors(exclude=stack.layers[0].parameters())
    with sub_saved:
        out = stack.layers[0](torch.randn(tokens, C, dtype=F64, requires_grad=True))
    sub = sub_saved.nbytes // (tokens * 8)
    del out
    x = torch.randn(tokens, n, C, dtype=F64, requires_grad=True)
    measured = {}
    for g in range(1, depth + 1):
        with SavedTensors(exclude=stack.parameters()) as saved:
            y = run_recomputed(x, list(stack.conns), list(stack.layers), g)
        measured[g] = saved.nbytes
        want = saved_elements("recompute", depth=depth, n=n, C=C, sublayer=sub, group_size=g) * tokens * 8
        assert measured[g] == want, g
        del y
    assert measured[1] - measured[depth] == (depth - 1) * n * C * tokens * 8
    with SavedTensors(exclude=stack.parameters()) as saved:
        y = run_stored(x, list(stack.conns), list(stack.layers))
    assert y.requires_grad  # the graph, and what it saved, is alive while y is
    assert saved.nbytes > measured[1] + depth * n * C * tokens * 8  # the plain stack keeps every x_l and more


def test_recompute_streams_reproduce_the_forward_pass():
    stack = drifted_stack(4, 4, 5, seed=4)
    x = torch.randn(3, 4, 5, dtype=F64)
    xs, fs = [x], []
    with torch.no_grad():
        for conn, layer in zip(stack.conns, stack.layers, strict=True):
            h_pre = conn.coefficients(xs[-1])[0]
            fs.append(layer(conn.pre(xs[-1], h_pre)))
            xs.append(conn(xs[-1], layer))
    got = recompute_streams(x, fs, list(stack.conns))
    assert len(got) == 5
    for a, b in zip(got, xs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="same length"):
        recompute_streams(x, fs[:2], list(stack.conns))


def test_record_keeps_h_res():
    stack = drifted_stack(3, 4, 5, seed=5)
    for conn in stack.conns:
        conn.record = True
    x = torch.randn(2, 4, 5, dtype=F64)
    run_stored(x, list(stack.conns), list(stack.layers))
    plain = [conn.last_h_res.clone() for conn in stack.conns]
    run_recomputed(x, list(stack.conns), list(stack.layers), 2)
    for conn, want in zip(stack.conns, plain, strict=True):
        torch.testing.assert_close(conn.last_h_res, want, rtol=0, atol=0)


def test_group_sizes():
    assert paper_group_size(4, 30) == pytest.approx(math.sqrt(20))
    assert default_group_size(4, 30) == 4 and default_group_size(4, 1) == 1 and default_group_size(1, 2) == 1
    assert default_group_size(4, 64) == round(math.sqrt(4 * 64 / 6))
    assert group_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert group_bounds(4, 4) == [(0, 4)] and group_bounds(3, 1) == [(0, 1), (1, 2), (2, 3)]
    for bad in ({"depth": 4, "group_size": 5}, {"depth": 4, "group_size": 0}, {"depth": 0, "group_size": 1}):
        with pytest.raises(ValueError, match="must be"):
            group_bounds(**bad)
    with pytest.raises(ValueError, match="n must be an int"):
        paper_group_size(0, 4)


def test_bad_input_is_named():
    stack = drifted_stack(2, 4, 5, seed=6)
    conns, layers = list(stack.conns), list(stack.layers)
    x = torch.randn(3, 4, 5, dtype=F64)
    with pytest.raises(ValueError, match="same length"):
        run_recomputed(x, conns, layers[:1])
    with pytest.raises(ValueError, match=r"conns\[0\] has n=4, C=5 but x has shape \(3, 3, 5\)"):
        run_recomputed(torch.randn(3, 3, 5, dtype=F64), conns, layers)
    with pytest.raises(ValueError, match=r"conns\[1\] must be an mhc_course.MHC, got Residual"):
        recompute_group(x, [conns[0], Residual()], layers)
    with pytest.raises(ValueError, match="group_size must be <= depth"):
        run_recomputed(x, conns, layers, 3)
    with pytest.raises(ValueError, match=r"layer must map \(..., C\) to \(..., C\)"):
        recompute_group(x, conns[:1], [nn.Linear(5, 2).double()])
    with pytest.raises(ValueError, match="x must be a floating-point tensor"):
        run_recomputed(torch.ones(3, 4, 5, dtype=torch.int64), conns, layers)
    with pytest.raises(ValueError, match="sublayers must hold"):
        MHCStack([], 4, 5)
    with pytest.raises(ValueError, match="group_size must be <= depth"):
        MHCStack([mlp_sublayer(5, 5)], 4, 5, group_size=2)


def test_module_defaults_and_repr():
    stack = MHCStack([mlp_sublayer(8, 8) for _ in range(6)], 4, 8)
    assert stack.group_size is None and stack.recompute
    assert "depth=6" in repr(stack) and isinstance(stack.conns[0], MHC)
    y = stack(torch.randn(2, 4, 8))
    assert y.shape == (2, 4, 8)


def test_gradients_accumulate_like_plain_autograd():
    """Two backward passes add up in .grad, as they do without recomputation."""
    stack = drifted_stack(4, 3, 5, seed=8)
    stack.recompute, stack.group_size = True, 2
    x = torch.randn(2, 3, 5, dtype=F64)
    stack(x).sum().backward()
    once = [p.grad.clone() for p in stack.parameters()]
    stack(x).sum().backward()
    for p, g in zip(stack.parameters(), once, strict=True):
        torch.testing.assert_close(p.grad, 2 * g, rtol=1e-12, atol=1e-12)


def test_gradient_gap_reports_differences_and_leaves_the_stack_alone():
    stack = drifted_stack(5, 4, 6, seed=9)
    before = [p.detach().clone() for p in stack.parameters()]
    x = torch.randn(3, 4, 6, dtype=F64)
    gap = gradient_gap(stack, x, torch.randn_like(x), group_size=2)
    assert gap["parameters"] == 40 and max(gap["output"], gap["input_grad"], gap["parameter_grads"]) < 1e-12
    assert all(p.grad is None for p in stack.parameters()) and not stack.recompute
    for p, b in zip(stack.parameters(), before, strict=True):
        assert torch.equal(p, b)
