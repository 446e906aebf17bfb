"""The small GPT: shapes, where streams are expanded and collapsed, switching connections, gradients,
and HC's initialisation reproducing the residual model."""

import pytest
import torch

from mhc_course import mhc as mhc_module
from mhc_course.hyper_connections import HyperConnection
from mhc_course.mhc import MHC
from mhc_course.model import GPT, GPTConfig
from mhc_course.residual import Residual
from mhc_course.stream_connection import StreamConnection

SMALL = dict(seq_len=16, depth=3, width=32, heads=4)


def tokens(batch: int = 2, length: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("connection", ["residual", "hc", "hc-static", "mhc"])
def test_shapes_and_loss(connection):
    torch.manual_seed(1)
    model = GPT(GPTConfig(connection=connection, **SMALL))
    idx = tokens(3, 11)
    logits, loss = model(idx, tokens(3, 11, seed=1))
    assert logits.shape == (3, 11, 256)
    assert loss.shape == () and torch.isfinite(loss)
    # at initialisation the prediction is close to uniform over 256 bytes
    assert abs(loss.item() - torch.log(torch.tensor(256.0)).item()) < 0.5
    assert model(idx)[1] is None


def test_streams_expanded_once_and_collapsed_once(monkeypatch):
    calls = {"expand": 0, "collapse": 0}
    shapes = []
    for name in calls:
        original = getattr(StreamConnection, name)

        def counted(self, t, _name=name, _original=original):
            calls[_name] += 1
            return _original(self, t)

        monkeypatch.setattr(StreamConnection, name, counted)
    model = GPT(GPTConfig(connection="mhc", n=3, **SMALL))
    for block in model.blocks:
        block.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape)))
    model(tokens(2, 7))
    assert calls == {"expand": 1, "collapse": 1}
    assert shapes == [(2, 7, 3, 32)] * SMALL["depth"]  # every block sees all n streams


@pytest.mark.parametrize(
    "connection, cls, n", [("residual", Residual, 1), ("hc", HyperConnection, 4), ("hc-static", HyperConnection, 4),
                           ("mhc", MHC, 4)]
)
def test_connection_switch(connection, cls, n):
    model = GPT(GPTConfig(connection=connection, **SMALL))
    conns = model.connections()
    assert len(conns) == 2 * SMALL["depth"]
    assert all(type(c) is cls and c.n == n for c in conns)
    if cls is HyperConnection:
        assert all(c.dynamic == (connection == "hc") for c in conns)
        # sublayer k reads stream k mod n at initialisation
        assert [int(c.A_m.argmax()) for c in conns] == [k % n for k in range(len(conns))]


def test_backend_reaches_every_mhc_connection(monkeypatch):
    monkeypatch.setattr(mhc_module, "BACKENDS", ("torch", "other"))
    model = GPT(GPTConfig(connection="mhc", backend="other", **SMALL))
    assert [c.backend for c in model.connections()] == ["other"] * (2 * SMALL["depth"])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(width=30, heads=4), "divisible by heads"),
        (dict(connection="residual", n=4), "one stream"),
        (dict(connection="dense"), "connection must be one of"),
        (dict(connection="hc", backend="triton"), "applies to connection='mhc' only"),
        (dict(depth=0), "depth must be an int >= 1"),
        (dict(dropout=1.5), "dropout"),
        (dict(stream_dtype="float16"), "stream_dtype must be None or one of"),
    ],
)
def test_config_errors(kwargs, words):
    with pytest.raises(ValueError, match=words):
        GPTConfig(**{**SMALL, **kwargs})


@pytest.mark.parametrize("connection", ["residual", "hc", "mhc"])
def test_streams_stay_in_their_dtype(connection):
    """bf16 streams enter every block as bf16 and come out of it as bf16 (every connection keeps
    x's dtype), also under autocast; the default keeps the embedding's float32."""
    for stream_dtype, want in ((None, torch.float32), ("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        torch.manual_seed(0)
        model = GPT(GPTConfig(connection=connection, stream_dtype=stream_dtype, **SMALL))
        seen = []
        for block in model.blocks:
            block.register_forward_hook(lambda mod, args, out, seen=seen: seen.append((args[0].dtype, out.dtype)))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=stream_dtype == "bfloat16"):
            _, loss = model(tokens(2, 16), tokens(2, 16, seed=1))
        assert seen == [(want, want)] * SMALL["depth"]
        assert torch.isfinite(loss)


def test_unknown_backend_is_refused_by_mhc():
    with pytest.raises(ValueError, match="backend must be one of"):
        GPT(GPTConfig(connection="mhc", backend="no-such-backend", **SMALL))


def test_input_errors():
    model = GPT(GPTConfig(connection="hc", **SMALL))
    with pytest.raises(ValueError, match="seq_len is 16"):
        model(tokens(1, 17))
    with pytest.raises(ValueError, match="int64"):
        model(tokens(1, 8).float())
    with pytest.raises(ValueError, match="targets must have"):
        model(tokens(2, 8), tokens(2, 7))


@pytest.mark.parametrize("connection", ["hc", "mhc"])
def test_gradient_reaches_every_part(connection):
    torch.manual_seed(2)
    model = GPT(GPTConfig(connection=connection, **SMALL))
    _, loss = model(tokens(2, 16), tokens(2, 16, seed=3))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    nonzero = lambda p: p.grad.abs().sum().item() > 0  # noqa: E731
    first, last = model.blocks[0], model.blocks[-1]
    assert nonzero(model.tok_emb.weight) and nonzero(model.pos_emb.weight)
    assert nonzero(first.attn.body.qkv.weight) and nonzero(last.mlp.body.fc.weight)
    for conn in (first.attn_conn, last.mlp_conn):
        if connection == "mhc":
            assert nonzero(conn.phi) and nonzero(conn.bias) and nonzero(conn.alpha)
        else:
            assert nonzero(conn.A_r) and nonzero(conn.W_r) and nonzero(conn.B)


def test_hc_at_init_is_the_residual_model():
    """HC's init (A_m = e_k, A_r = I, B = 1) keeps n equal copies of the residual stream; the final
    RMSNorm removes the factor n of the sum. With the same sublayer weights the logits agree."""
    torch.manual_seed(4)
    cfg = dict(SMALL, norm_eps=1e-12)  # the eps is the only thing that sees the factor n
    residual = GPT(GPTConfig(connection="residual", **cfg)).double()
    idx = tokens(2, 16, seed=5)
    ref, _ = residual(idx)
    for connection in ("hc", "hc-static", "mhc"):
        model = GPT(GPTConfig(connection=connection, **cfg)).double()
        missing, unexpected = model.load_state_dict(residual.state_dict(), strict=False)
        assert not unexpected and all("conn" in k for k in missing)
        rel = ((model(idx)[0] - ref).abs().max() / ref.abs().max()).item()
        if connection == "mhc":  # H_res ≈ I but α·z perturbs H_pre and H_post by about 1%
            assert 1e-6 < rel < 1e-2
        else:
            assert rel < 1e-8


def test_h_res_maps():
    model = GPT(GPTConfig(connection="mhc", **SMALL))
    with pytest.raises(ValueError, match="record_h_res"):
        model.h_res_maps()
    model.record_h_res(True)
    model(tokens(2, 5))
    maps = model.h_res_maps()
    assert len(maps) == 2 * SMALL["depth"]
    assert all(m.shape == (2, 5, 4, 4) and not m.requires_grad for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(2, 5, 4))  # rows of Sinkhorn's output sum to 1
    model.record_h_res(False)
    with pytest.raises(ValueError):
        model.h_res_maps()
