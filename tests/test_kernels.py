"""The Triton kernels against the PyTorch reference: forward and every gradient.

On a CPU these run in Triton's interpreter (float32); on a CUDA machine the same tests run
compiled kernels. Inputs are fresh random tensors, never zeros.
"""

import pytest
import torch

import mhc_course as ref
from mhc_course import MHC
from mhc_course import kernels as tk

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [(4, 7, (3, 5)), (1, 5, (17,)), (2, 33, (2, 9)), (8, 3, (20,)), (4, 64, (40,))]


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, device=DEVICE) * scale).requires_grad_()


def params(n, c):
    k = n * n + 2 * n
    return rnd(n * c, k, scale=(n * c) ** -0.5), rnd(k), (torch.rand(3, device=DEVICE) + 0.2).requires_grad_()


def clone_leaves(ts):
    return [t.detach().clone().requires_grad_() for t in ts]


def assert_grads_close(ours, theirs, tol=5e-5):
    """Max abs difference relative to the largest reference gradient entry (fp32)."""
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a.grad is not None, f"input {i} got no gradient"
        err = ((a.grad - b.grad).abs().max() / b.grad.abs().max()).item()
        assert err < tol, f"input {i}: relative gradient error {err:.2e}"


def assert_output_and_grads_close(ours, theirs, ins, ins_ref, atol=1e-6):
    """Outputs agree, and so do the gradients of the inputs under one random weighting of the outputs."""
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=atol)
    w = torch.randn_like(theirs)
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    assert_grads_close(ins, ins_ref)


@pytest.mark.parametrize("n, c, lead", SHAPES)
def test_coefficients(n, c, lead):
    x = rnd(*lead, n, c)
    ins = [x, *params(n, c)]
    ins_ref = clone_leaves(ins)
    ours, theirs = tk.mhc_coefficients(*ins), ref.mhc_coefficients(*ins_ref)
    w = [torch.randn_like(t) for t in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    sum((a * u).sum() for a, u in zip(ours, w, strict=True)).backward()
    sum((b * u).sum() for b, u in zip(theirs, w, strict=True)).backward()
    assert_grads_close(ins, ins_ref)


@pytest.mark.parametrize("iters", [1, 3, 4, 7, 9, 22])
def test_sinkhorn_backward_any_iteration_count(iters):
    """The kernels' Sinkhorn backward reverses the iterations in four checkpointed quarters of
    iters // 4 (the last takes the remainder): counts that do and do not divide by four."""
    n, c = 4, 6
    ins = [rnd(3, 5, n, c), *params(n, c)]
    ins_ref = clone_leaves(ins)
    ours = tk.mhc_coefficients(*ins, iters=iters)[2]
    theirs = ref.mhc_coefficients(*ins_ref, iters=iters)[2]
    assert_output_and_grads_close(ours, theirs, ins, ins_ref)


@pytest.mark.parametrize("n, c, lead", SHAPES)
def test_pre(n, c, lead):
    ins = [rnd(*lead, n, c), torch.rand(*lead, n, device=DEVICE).requires_grad_()]
    ins_ref = clone_leaves(ins)
    assert_output_and_grads_close(tk.mhc_pre(*ins), ref.mhc_pre(*ins_ref), ins, ins_ref)


@pytest.mark.parametrize("n, c, lead", SHAPES)
def test_post_res(n, c, lead):
    ins = [rnd(*lead, n, c), rnd(*lead, c), rnd(*lead, n), rnd(*lead, n, n)]
    ins_ref = clone_leaves(ins)
    assert_output_and_grads_close(tk.mhc_post_res(*ins), ref.mhc_post_res(*ins_ref), ins, ins_ref)


def test_broadcast_and_non_contiguous():
    n, c = 4, 9
    x = torch.randn(6, c, n, device=DEVICE).transpose(-1, -2).requires_grad_()  # non-contiguous
    h_post, h_res = rnd(n), rnd(n, n)  # static: broadcast over tokens
    f = rnd(6, c)
    ins = [x, f, h_post, h_res]
    ins_ref = clone_leaves(ins)
    a, b = tk.mhc_post_res(*ins), ref.mhc_post_res(*ins_ref)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    a.sum().backward()
    b.sum().backward()
    assert_grads_close(ins, ins_ref)
    h_pre = rnd(n)
    torch.testing.assert_close(tk.mhc_pre(x, h_pre), ref.mhc_pre(x, h_pre), rtol=1e-5, atol=1e-6)


class MLP(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm, self.lin = torch.nn.RMSNorm(c), torch.nn.Linear(c, c)

    def forward(self, h):
        return torch.tanh(self.lin(self.norm(h)))


def assert_connection_matches_reference(ins, layer, layer_ref=None):
    """mhc_connection(*ins, layer) against post_res(x, layer_ref(pre(x, H_pre)), H_post, H_res) of the
    reference on clones of ins (layer_ref defaults to layer): output, H_res and every input's gradient."""
    ins_ref = clone_leaves(ins)
    out, h_res = tk.mhc_connection(*ins, layer)
    hp, hq, hr = ref.mhc_coefficients(*ins_ref)
    want = ref.mhc_post_res(ins_ref[0], (layer_ref or layer)(ref.mhc_pre(ins_ref[0], hp)), hq, hr)
    torch.testing.assert_close(h_res, hr.detach(), rtol=1e-5, atol=1e-6)
    assert_output_and_grads_close(out, want, ins, ins_ref, atol=1e-5)


@pytest.mark.parametrize("n, c, lead", [(4, 24, (2, 7)), (2, 13, (9,)), (8, 8, (18,)), (1, 6, (5,))])
def test_fused_connection(n, c, lead):
    """mhc_connection = post_res(x, layer(pre(x, H_pre)), H_post, H_res), gradients included."""
    torch.manual_seed(0)
    layer = MLP(c).to(DEVICE)
    layer_ref = MLP(c).to(DEVICE)
    layer_ref.load_state_dict(layer.state_dict())
    assert_connection_matches_reference([rnd(*lead, n, c), *params(n, c)], layer, layer_ref)
    assert_grads_close(list(layer.parameters()), list(layer_ref.parameters()))


@pytest.mark.parametrize("splits", [2, 3])
def test_fused_connection_over_token_splits(monkeypatch, splits):
    """The channel pass's token splits (each writes its own dφ partial sum, summed after): 37
    tokens in blocks of 16, split 2 or 3 ways, so the last split is short."""
    monkeypatch.setenv("MHC_COURSE_KERNEL_BLOCKS", f'{{"coefficients_bwd_channel": [16, 32, 1, {splits}]}}')
    n, c = 4, 40
    torch.manual_seed(3)
    assert_connection_matches_reference([rnd(37, n, c), *params(n, c)], MLP(c).to(DEVICE))


@pytest.mark.parametrize("kind", ["identity", "ignores h"])
def test_fused_connection_sublayer_gradient_paths(kind):
    """dh reaches the kernels when the sublayer returns h itself (its gradient is the one handed to
    the sublayer's backward), and is zero when the sublayer does not use h."""
    n, c = 4, 12
    torch.manual_seed(5)
    w = torch.nn.Parameter(torch.randn(c, device=DEVICE))
    layer = (lambda h: h) if kind == "identity" else (lambda h: w.expand_as(h))
    assert_connection_matches_reference([rnd(6, n, c), *params(n, c)], layer)


def test_fused_connection_without_grad_and_frozen_connection():
    n, c = 4, 16
    layer = MLP(c).to(DEVICE)
    x, phi, bias, alpha = (t.detach() for t in (rnd(3, n, c), *params(n, c)))
    with torch.no_grad():
        out, _ = tk.mhc_connection(x, phi, bias, alpha, layer)
    hp, hq, hr = ref.mhc_coefficients(x, phi, bias, alpha)
    want = ref.mhc_post_res(x, layer(ref.mhc_pre(x, hp)), hq, hr)
    torch.testing.assert_close(out, want.detach(), rtol=1e-5, atol=1e-5)
    out, _ = tk.mhc_connection(x, phi, bias, alpha, layer)  # only the sublayer trains
    out.sum().backward()
    ours = [p.detach().clone().requires_grad_() for p in layer.parameters()]
    for o, p in zip(ours, layer.parameters(), strict=True):
        o.grad, p.grad = p.grad, None
    want.sum().backward()
    assert_grads_close(ours, list(layer.parameters()))


def test_mhc_module_backends_agree():
    torch.manual_seed(1)
    a = MHC(4, 32, layer_index=2).to(DEVICE)
    b = MHC(4, 32, layer_index=2, backend="triton").to(DEVICE)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():  # move away from the initialisation so every path matters
        for m in (a, b):
            m.alpha.fill_(0.7)
    layer = MLP(32).to(DEVICE)
    x = torch.randn(2, 5, 4, 32, device=DEVICE)
    b.record = True
    ya, yb = a(x, layer), b(x, layer)
    torch.testing.assert_close(yb, ya, rtol=1e-5, atol=1e-5)
    assert b.last_h_res.shape == (2, 5, 4, 4)
    ya.square().sum().backward()
    yb.square().sum().backward()
    assert_grads_close(list(b.parameters()), list(a.parameters()))


def test_kernel_bad_input():
    n, c = 3, 8
    k = n * n + 2 * n

    def r(*shape):
        return torch.randn(*shape, device=DEVICE)

    with pytest.raises(ValueError, match=r"support n in \(1, 2, 4, 8\), got n=3"):
        tk.mhc_coefficients(r(2, n, c), r(n * c, k), r(k), r(3))
    with pytest.raises(ValueError, match="iters must be an int >= 1"):
        tk.mhc_coefficients(r(2, 4, 8), r(32, 24), r(24), r(3), iters=0)
    with pytest.raises(ValueError, match=r"h_res must end in \(4, 4\)"):
        tk.mhc_post_res(r(2, 4, 8), r(2, 8), r(2, 4), r(2, 4, 3))
    if DEVICE == "cpu":
        with pytest.raises(ValueError, match="interpreter on the CPU runs float32 only"):
            tk.mhc_pre(torch.randn(2, 4, 8, dtype=torch.bfloat16), torch.rand(2, 4))
