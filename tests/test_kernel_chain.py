"""Fused connections in a chain: one connection's channel pass writes the dF of the connection
before it (``kernels/chain.py``). Gradients must equal the reference's whether or not that
happens, and it must not happen when the gradient that reaches the earlier connection is not
exactly the dx it was computed from."""

import pytest
import torch
from mhc_course.kernels import connection as conn_mod
from mhc_course.kernels.chain import unfolded
from mhc_course.kernels.coefficients_bwd import launch_channel_pass
from mhc_course.kernels.layout import padded_width

import mhc_course as ref
from mhc_course import kernels as tk
from tests.test_kernels import DEVICE, MLP, assert_grads_close, clone_leaves, params, rnd


def _chain(ops, x, conns, layers, between=None):
    """Three connections; ``between(i, x)`` may touch the stream tensor after connection i."""
    extra = 0
    for i, (p, layer) in enumerate(zip(conns, layers, strict=True)):
        if ops is tk:
            x = tk.mhc_connection(x, *p, layer)[0]
        else:
            hp, hq, hr = ref.mhc_coefficients(x, *p)
            x = ref.mhc_post_res(x, layer(ref.mhc_pre(x, hp)), hq, hr)
        if between is not None and i < len(conns) - 1:
            x, e = between(i, x)
            extra = extra + e
    return x, extra


def _run_both(monkeypatch, n, c, between=None, seed=0, lead=(2, 5)):
    """The chain on the kernels and on the reference; returns the number of dF passes the kernels ran."""
    torch.manual_seed(seed)
    x = rnd(*lead, n, c)
    conns = [list(params(n, c)) for _ in range(3)]
    layers = [MLP(c).to(DEVICE) for _ in range(3)]
    layers_ref = [MLP(c).to(DEVICE) for _ in range(3)]
    for a, b in zip(layers, layers_ref, strict=True):
        b.load_state_dict(a.state_dict())
    x_ref, conns_ref = clone_leaves([x])[0], [clone_leaves(p) for p in conns]
    passes = []
    launch = conn_mod.launch_post_res_bwd
    monkeypatch.setattr(conn_mod, "launch_post_res_bwd", lambda *a: passes.append(1) or launch(*a))
    out, extra = _chain(tk, x, conns, layers, between)
    want, extra_ref = _chain(ref, x_ref, conns_ref, layers_ref, between)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    w = torch.randn_like(want)
    ((out * w).sum() + extra).backward()
    ((want * w).sum() + extra_ref).backward()
    assert_grads_close([x, *sum(conns, [])], [x_ref, *sum(conns_ref, [])])
    for a, b in zip(layers, layers_ref, strict=True):
        assert_grads_close(list(a.parameters()), list(b.parameters()))
    return len(passes)


@pytest.mark.parametrize("n, c", [(4, 24), (2, 13), (1, 6)])
def test_chain_folds_df_into_the_next_channel_pass(monkeypatch, n, c):
    """Only the last connection runs its own dF pass; the others get dF from the one after."""
    assert _run_both(monkeypatch, n, c) == 1


@pytest.mark.parametrize("splits", [2, 3])
def test_chain_over_token_splits(monkeypatch, splits):
    """The four-stream channel pass over 37 tokens in blocks of 16, split 2 or 3 ways (the last
    split short), each split writing its own dφ partial sums. (On a GPU the splits are raised to
    fill its multiprocessors, so both cases run 3.)"""
    monkeypatch.setenv("MHC_COURSE_KERNEL_BLOCKS", f'{{"coefficients_bwd_channel_all": [16, 32, 1, {splits}]}}')
    assert _run_both(monkeypatch, 4, 40, seed=4, lead=(37,)) == 1


def test_chain_with_eight_streams_runs_every_df_pass(monkeypatch):
    """n = 8 does not fit one program: every connection runs its own pass."""
    assert _run_both(monkeypatch, 8, 8) == 3


def test_chain_with_another_use_of_the_streams(monkeypatch):
    """When the loss also reads the middle streams, their gradient is dx plus that term: the
    connection that wrote them must not use the dF computed from dx alone."""
    def also_in_loss(i, x):
        return x, (x * torch.linspace(-1, 1, x.shape[-1], device=x.device)).sum() if i == 1 else 0

    assert _run_both(monkeypatch, 4, 16, also_in_loss, seed=1) == 2


def test_chain_with_a_gradient_hook(monkeypatch):
    """A hook that replaces the gradient of the first connection's output: its own dF pass runs."""
    def hooked(i, x):
        if i == 0:
            x.register_hook(lambda g: 2 * g)
        return x, 0

    assert _run_both(monkeypatch, 4, 16, hooked, seed=2) == 2


def test_unfolded_chain_runs_every_df_pass(monkeypatch):
    """``chain.unfolded()`` turns the hand-over off: every connection runs its own pass."""
    with unfolded():
        assert _run_both(monkeypatch, 4, 24) == 3


@pytest.mark.parametrize("n, spp, prev", [(8, None, True), (2, 4, False), (4, 3, False), (4, 2, True)])
def test_channel_pass_rejects_streams_it_cannot_hold(n, spp, prev):
    """The channel pass holds 1, 2 or 4 streams per program, and the previous dF needs all n."""
    T, C = 5, 8
    x = torch.randn(T, n, C, device=DEVICE)
    dy, s = torch.randn(T, padded_width(n), device=DEVICE), torch.randn(T, device=DEVICE)
    before = (torch.rand(T, n, device=DEVICE), torch.empty(T, C, device=DEVICE)) if prev else None
    with pytest.raises(ValueError, match="streams_per_program"):
        launch_channel_pass(x, torch.randn(n * C, n * n + 2 * n, device=DEVICE), dy, s, None, torch.empty_like(x),
                            torch.empty(1, n * C, n * n + 2 * n, device=DEVICE), n, (16, 32, 1),
                            streams_per_program=spp or n, prev=before)
