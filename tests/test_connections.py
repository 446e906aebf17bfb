import pytest
import torch
from torch import nn

from mhc_course import MHC, HyperConnection, Residual, make_connection
from mhc_course.connections import CONNECTIONS


class Sublayer(nn.Module):
    """A pre-norm MLP branch F(h) = W2·gelu(W1·norm(h)), random weights."""

    def __init__(self, c):
        super().__init__()
        self.norm = nn.RMSNorm(c, eps=1e-6)
        self.w1, self.w2 = nn.Linear(c, 2 * c), nn.Linear(2 * c, c)

    def forward(self, h):
        return self.w2(torch.nn.functional.gelu(self.w1(self.norm(h))))


def stack(c, depth, seed=0):
    torch.manual_seed(seed)
    return [Sublayer(c).double() for _ in range(depth)]


def prenorm_residual(h, layers):
    for f in layers:
        h = h + f(h)
    return h


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("n", [1, 2, 4])
def test_hc_at_init_is_prenorm_residual(n, dynamic):
    c, depth = 16, 6
    layers = stack(c, depth)
    h0 = torch.randn(3, 5, c, dtype=torch.float64)
    conns = [HyperConnection(n, c, layer_index=k, dynamic=dynamic).double() for k in range(depth)]
    x = conns[0].expand(h0)
    for conn, f in zip(conns, layers, strict=True):
        x = conn(x, f)
    want = prenorm_residual(h0, layers)
    for i in range(n):  # every stream is the residual stream
        torch.testing.assert_close(x[..., i, :], want, rtol=1e-12, atol=1e-12)
    final = nn.RMSNorm(c, eps=0.0).double()
    torch.testing.assert_close(final(conns[0].collapse(x)), final(want), rtol=1e-12, atol=1e-12)


def test_hc_coefficients_follow_zhu_et_al():
    hc = HyperConnection(4, 8, layer_index=5, dynamic=False)
    h_pre, h_post, h_res = hc.coefficients(torch.randn(2, 4, 8))
    torch.testing.assert_close(h_pre, torch.tensor([0.0, 1.0, 0.0, 0.0]))  # A_m = e_{5 mod 4}
    torch.testing.assert_close(h_post, torch.ones(4))
    with torch.no_grad():
        hc.A_r.copy_(torch.arange(16.0).view(4, 4))
    torch.testing.assert_close(hc.coefficients(torch.randn(4, 8))[2], hc.A_r.T)  # h_res = A_rᵀ


def test_dynamic_hc_moves_with_the_input():
    hc = HyperConnection(4, 8)
    with torch.no_grad():
        for w in (hc.W_m, hc.W_r, hc.W_beta):
            w.normal_()
    x = torch.randn(3, 4, 8)
    a = hc.coefficients(x)
    b = hc.coefficients(x * torch.tensor([1.0, -1.0, 2.0, 0.5]).view(4, 1))
    assert a[2].shape == (3, 4, 4) and not torch.allclose(a[2], b[2])
    assert (a[2] - hc.A_r.T).abs().max() <= hc.s_alpha.item() + 1e-7  # |s·tanh| ≤ s


def test_mhc_n1_is_a_residual_connection():
    mhc = MHC(1, 8).double()
    x, layer = torch.randn(4, 1, 8, dtype=torch.float64), stack(8, 1)[0]
    h_pre, h_post, h_res = mhc.coefficients(x)
    assert (h_res == 1).all()  # the identity path is exact: Sinkhorn of a 1×1 matrix is [[1]]
    want = x + h_post.unsqueeze(-1) * layer(h_pre.unsqueeze(-1) * x)
    torch.testing.assert_close(mhc(x, layer), want)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_mhc_initialisation(n):
    mhc = MHC(n, 16, layer_index=3)
    x = mhc.expand(torch.randn(10, 16))
    h_pre, h_post, h_res = mhc.coefficients(x)
    assert h_pre.argmax(-1).eq(3 % n).all()
    torch.testing.assert_close(h_pre.sum(-1), torch.ones(10), atol=0.02, rtol=0)
    torch.testing.assert_close(h_post, torch.ones(10, n), atol=0.02, rtol=0)  # 2σ(α·z) with α = 0.01
    diag = h_res.diagonal(dim1=-2, dim2=-1)
    assert ((diag - 0.95).abs() < 0.02).all()
    torch.testing.assert_close(h_res.sum(-1), torch.ones(10, n))
    torch.testing.assert_close(mhc.alpha.detach(), torch.full((3,), 0.01))


def test_mhc_at_init_is_close_to_residual():
    c, depth = 16, 6
    layers = stack(c, depth, seed=1)
    h0 = torch.randn(4, c, dtype=torch.float64)
    conns = [MHC(4, c, layer_index=k).double() for k in range(depth)]
    x = conns[0].expand(h0)
    for conn, f in zip(conns, layers, strict=True):
        x = conn(x, f)
    want = prenorm_residual(h0, layers)
    rel = (x.mean(-2) - want).norm() / want.norm()
    assert rel < 0.05


def test_factory_and_interface():
    for name in CONNECTIONS:
        n = 1 if name == "residual" else 4
        conn = make_connection(name, n, 8, layer_index=2)
        x = conn.expand(torch.randn(3, 8))
        assert x.shape == (3, n, 8)
        y = conn(x, torch.tanh)
        assert y.shape == x.shape
        assert conn.collapse(y).shape == (3, 8)
    assert isinstance(make_connection("residual", 1, 8), Residual)
    with pytest.raises(ValueError, match="connection must be one of"):
        make_connection("dense", 4, 8)
    with pytest.raises(ValueError, match="one stream, got n=4"):
        make_connection("residual", 4, 8)
    with pytest.raises(ValueError, match=r"x has 2 streams but this connection has n=4 \(x shape \(3, 2, 8\)\)"):
        make_connection("mhc", 4, 8)(torch.randn(3, 2, 8), torch.tanh)
    with pytest.raises(ValueError, match="backend must be one of"):
        MHC(4, 8, backend="cuda")


@pytest.mark.parametrize("n", [1, 3, 4])
def test_expand_and_collapse_values_and_gradients(n):
    conn = make_connection("residual" if n == 1 else "hc", n, 6)
    h = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    x = conn.expand(h)
    torch.testing.assert_close(x, h.detach().unsqueeze(-2).expand(2, 5, n, 6), rtol=0, atol=0)
    assert x.is_contiguous()
    w = torch.randn(2, 5, n, 6, dtype=torch.float64)
    (gh,) = torch.autograd.grad((x * w).sum(), h)
    torch.testing.assert_close(gh, w.sum(-2))
    xs = torch.randn(2, 5, n, 6, dtype=torch.float64, requires_grad=True)
    y = conn.collapse(xs)
    torch.testing.assert_close(y, xs.detach().sum(-2))
    v = torch.randn(2, 5, 6, dtype=torch.float64)
    (gx,) = torch.autograd.grad((y * v).sum(), xs)
    torch.testing.assert_close(gx, v.unsqueeze(-2).expand(2, 5, n, 6), rtol=0, atol=0)
    assert gx.is_contiguous()  # written out, not a broadcast view the next backward would copy
    assert torch.autograd.gradcheck(conn.expand, (h,)) and torch.autograd.gradcheck(conn.collapse, (xs,))


def test_one_stream_plumbing_is_views_forward_and_backward():
    """The residual baseline's connection adds no copies: pre, expand and collapse are views for one
    stream, and so are the gradients they pass back (a copy there cost the residual step 0.4-0.8 ms on
    an H100, benchmarks/NOTES.md)."""
    conn = make_connection("residual", 1, 6)
    h = torch.randn(2, 5, 6, requires_grad=True)
    x = conn.expand(h)
    assert x.data_ptr() == h.data_ptr()
    hp, _, _ = conn.coefficients(x)
    inner = conn.pre(x, hp)
    assert inner.data_ptr() == x.data_ptr()
    y = conn.collapse(x)
    assert y.data_ptr() == x.data_ptr()
    g = torch.randn(2, 5, 6)
    for out, src in ((inner, x), (y, x), (x, h)):
        (grad,) = torch.autograd.grad(out, src, g if out.dim() == src.dim() - 1 else g.unsqueeze(-2),
                                      retain_graph=True)
        assert grad.data_ptr() == g.data_ptr()  # handed back as a view of the incoming gradient


def test_record_keeps_the_mixing_matrix():
    conn = make_connection("mhc", 4, 8)
    conn.record = True
    conn(conn.expand(torch.randn(5, 8)), torch.tanh)
    assert conn.last_h_res.shape == (5, 4, 4) and not conn.last_h_res.requires_grad
