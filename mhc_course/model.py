"""A small decoder-only GPT whose residual connections are pluggable: residual, HC or mHC.

One file, nanoGPT style: a config dataclass, causal self-attention (torch's
``scaled_dot_product_attention``), an MLP, pre-norm RMSNorm. The only change from a plain GPT
is how each sublayer is wired back into the residual stream: every block holds two
connections (``mhc_course.connections.make_connection``), one around attention and one around
the MLP, and each connection carries n streams of width C past its sublayer:

    x (B, T, n, C)  →  h_res·x + h_post ⊗ F(h_pre·x)

The token embedding is expanded into n streams once, after the embedding, and the streams are
summed once, before the final norm. Inside the blocks the streams stay apart, so the H_res
matrices of successive layers multiply: the composite mapping whose gains the paper tracks
(``GPT.h_res_maps`` returns them for the trainer).

With ``connection="residual"`` (n = 1) this is a plain pre-norm GPT.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .connections import CONNECTIONS, default_streams, make_connection
from .norm import RMSNorm
from .stream_connection import StreamConnection

STREAM_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass
class GPTConfig:
    """Sizes and wiring of the model.

    ``n`` None picks 1 for "residual" and the paper's 4 otherwise. ``backend`` selects mHC's
    implementation ("torch" reference or "triton" kernels) and applies to ``connection="mhc"``
    only. ``dropout`` is off by default so runs are comparable and data-parallel runs match
    single-process ones.
    """

    vocab_size: int = 256
    seq_len: int = 256
    depth: int = 12
    width: int = 256
    heads: int = 4
    mlp_ratio: int = 4
    connection: str = "mhc"
    n: int | None = None
    backend: str = "torch"
    dropout: float = 0.0
    norm_eps: float = 1e-6
    stream_dtype: str | None = None

    def __post_init__(self) -> None:
        if self.connection not in CONNECTIONS:
            raise ValueError(f"connection must be one of {CONNECTIONS}, got {self.connection!r}")
        if self.n is None:
            self.n = default_streams(self.connection)
        for name in ("vocab_size", "seq_len", "depth", "width", "heads", "mlp_ratio", "n"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.width % self.heads:
            raise ValueError(f"width must be divisible by heads, got width={self.width}, heads={self.heads}")
        if self.connection == "residual" and self.n != 1:
            raise ValueError(f"connection='residual' has one stream, got n={self.n}")
        if self.backend != "torch" and self.connection != "mhc":
            raise ValueError(f"backend={self.backend!r} applies to connection='mhc' only, got {self.connection!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")
        if self.stream_dtype is not None and self.stream_dtype not in STREAM_DTYPES:
            raise ValueError(f"stream_dtype must be None or one of {tuple(STREAM_DTYPES)}, got {self.stream_dtype!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class CausalSelfAttention(nn.Module):
    """(B, T, C) → (B, T, C): multi-head attention, each position sees itself and the past."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.heads, self.dropout = cfg.heads, cfg.dropout
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.proj = nn.Linear(cfg.width, cfg.width, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        B, T, C = h.shape
        q, k, v = self.qkv(h).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """(..., C) → (..., C): expand by ``mlp_ratio``, GELU, project back."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width, bias=False)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width, bias=False)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(h)))


class PreNorm(nn.Module):
    """The sublayer F a connection wraps: RMSNorm, then attention or MLP, then dropout. (..., C) → (..., C)."""

    def __init__(self, cfg: GPTConfig, body: nn.Module) -> None:
        super().__init__()
        self.norm = RMSNorm(cfg.width, eps=cfg.norm_eps)
        self.body = body
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, h: Tensor) -> Tensor:
        return self.drop(self.body(self.norm(h)))


class Block(nn.Module):
    """One transformer block on n streams: (B, T, n, C) → (B, T, n, C).

    Block ``i`` holds connections for sublayers ``2i`` (attention) and ``2i + 1`` (MLP); the
    sublayer index picks which stream H_pre reads at initialisation (``k mod n``).
    """

    def __init__(self, cfg: GPTConfig, index: int) -> None:
        super().__init__()
        extra = {"backend": cfg.backend} if cfg.connection == "mhc" else {}
        self.attn = PreNorm(cfg, CausalSelfAttention(cfg))
        self.mlp = PreNorm(cfg, MLP(cfg))
        self.attn_conn = make_connection(cfg.connection, cfg.n, cfg.width, layer_index=2 * index, **extra)
        self.mlp_conn = make_connection(cfg.connection, cfg.n, cfg.width, layer_index=2 * index + 1, **extra)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn_conn(x, self.attn)
        return self.mlp_conn(x, self.mlp)


class GPT(nn.Module):
    """Token ids (B, T) → logits (B, T, vocab_size), and the mean cross-entropy when targets are given."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.width)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.depth))
        self.norm = RMSNorm(cfg.width, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.width, cfg.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # tied input and output embeddings
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2's scheme for the sublayers and embeddings: N(0, 0.02), output projections
        scaled by 1/√(number of sublayers). Connection parameters keep their own initialisation."""
        for module in [self.tok_emb, self.pos_emb, *(b.attn for b in self.blocks), *(b.mlp for b in self.blocks)]:
            for sub in module.modules():
                if isinstance(sub, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(sub.weight, mean=0.0, std=0.02)
        for block in self.blocks:
            for proj in (block.attn.body.proj, block.mlp.body.proj):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.depth))

    def connections(self) -> list[StreamConnection]:
        """Every connection in layer order: attention then MLP of block 0, then block 1, …"""
        return [c for b in self.blocks for c in (b.attn_conn, b.mlp_conn)]

    def connection_parameters(self) -> list[nn.Parameter]:
        """Parameters of the connections (H_pre, H_post, H_res and their projections)."""
        return [p for c in self.connections() for p in c.parameters()]

    def num_parameters(self) -> int:
        """Trainable parameters, the tied embedding counted once."""
        return sum(p.numel() for p in self.parameters())

    def record_h_res(self, on: bool = True) -> None:
        """Switch recording of every connection's H_res on the next forward passes on or off."""
        for c in self.connections():
            c.record = on
            if not on:
                c.last_h_res = None

    def h_res_maps(self) -> list[Tensor]:
        """The H_res each connection used in the last recorded forward, in layer order.

        Each is (B, T, n, n) for dynamic connections, (n, n) for static ones (HC static,
        residual); detached. Call ``record_h_res(True)`` before the forward pass.
        """
        maps = [c.last_h_res for c in self.connections()]
        if any(m is None for m in maps):
            raise ValueError("no H_res recorded: call record_h_res(True) before the forward pass")
        return maps

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx, targets: (B, T) int64 with T <= seq_len. Returns logits (B, T, vocab_size) and the
        mean cross-entropy over all positions (None without targets)."""
        if idx.dim() != 2 or idx.dtype != torch.long:
            raise ValueError(f"idx must be a (B, T) int64 tensor, got {idx.dtype} of shape {tuple(idx.shape)}")
        T = idx.shape[1]
        if T > self.cfg.seq_len:
            raise ValueError(f"idx has T={T} positions but the model's seq_len is {self.cfg.seq_len}")
        if targets is not None and targets.shape != idx.shape:
            raise ValueError(f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}")
        conns = self.connections()
        h = self.drop(self.tok_emb(idx) + self.pos_emb(torch.arange(T, device=idx.device)))
        streams = STREAM_DTYPES.get(self.cfg.stream_dtype, h.dtype)
        x = conns[0].expand(h.to(streams))  # (B, T, n, C): every stream a copy of the embedding
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.norm(conns[-1].collapse(x.to(h.dtype))))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
        return logits, loss
