"""n-stream connections around pre-norm blocks: HC at initialisation is the pre-norm residual stack."""

import pytest
import torch
from torch import nn

from mhc_course import HyperConnection, Residual
from mhc_course.propagation import build_stack
from mhc_course.stream_stack import prenorm_branch, run_streams


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("n", [1, 3, 4])
def test_hc_at_init_is_the_prenorm_stack(n, dynamic):
    depth, c = 7, 12
    blocks = build_stack("pre-norm", depth, c, 1.3, seed=int(torch.randint(0, 1000, ())))
    h = torch.randn(2, 5, c, dtype=torch.float64)
    conns = [HyperConnection(n, c, layer_index=k, dynamic=dynamic).double() for k in range(depth)]
    x = run_streams(conns, blocks, h)
    assert x.shape == (2, 5, n, c)
    torch.testing.assert_close(x, blocks(h).unsqueeze(-2).expand_as(x), rtol=1e-12, atol=1e-12)


def test_residual_connection_and_branch():
    blocks = build_stack("pre-norm", 4, 8, 0.9)
    h = torch.randn(3, 8, dtype=torch.float64)
    x = run_streams([Residual() for _ in blocks], blocks, h)
    torch.testing.assert_close(x[..., 0, :], blocks(h))
    torch.testing.assert_close(h + prenorm_branch(blocks[0])(h), blocks[0](h))


def test_drifted_hc_leaves_the_residual_stack():
    depth, c, n = 5, 8, 4
    blocks = build_stack("pre-norm", depth, c, 1.0)
    h = torch.randn(3, c, dtype=torch.float64)
    conns = [HyperConnection(n, c, layer_index=k, dynamic=False).double() for k in range(depth)]
    with torch.no_grad():
        for conn in conns:
            conn.A_r.add_(0.1 * torch.randn(n, n, dtype=torch.float64))
    x = run_streams(conns, blocks, h)
    assert (x - blocks(h).unsqueeze(-2)).abs().max() > 1e-3


def test_bad_input():
    blocks = build_stack("pre-norm", 2, 8, 1.0)
    conns = [HyperConnection(2, 8).double() for _ in range(3)]
    with pytest.raises(ValueError, match="same length >= 1, got 3 and 2"):
        run_streams(conns, blocks, torch.randn(8, dtype=torch.float64))
    with pytest.raises(ValueError, match="block must be a PreNormResidual, got Linear"):
        prenorm_branch(nn.Linear(8, 8))
    with pytest.raises(ValueError, match="h must be a floating-point tensor"):
        run_streams(conns[:2], blocks, torch.ones(8, dtype=torch.long))
