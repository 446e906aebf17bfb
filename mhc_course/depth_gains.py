"""Gains over depth from real connection modules whose parameters have drifted from init.

Training moves every parameter of a connection away from its initialisation. This module
imitates that without training: it builds a stack of ``depth`` connections (``MHC`` or dynamic
``HyperConnection``), adds ``drift``·N(0, 1) noise to each parameter (scaled by 1/√fan-in for
the projections, so that their outputs move by about ``drift``), runs a batch of random token
embeddings through the stack with a random branch F per layer, and records every layer's
``h_res`` (``record=True``). ``gain_profile`` then turns those matrices into the paper's Amax
Gain Magnitude, per layer and for the composite, averaged over tokens.

``mapping_profile`` gives the same four curves from drifted mappings alone
(``random_mappings``), with no modules and no signal: a quick view of the same comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .hyper_connections import HyperConnection
from .metrics import gain_profile
from .mhc import MHC
from .random_mappings import hc_mappings, mhc_mappings
from .stream_connection import StreamConnection

KINDS = ("hc", "mhc")
# Parameters that multiply a normalised input of width shape[0]: their noise is divided by √shape[0].
PROJECTIONS = ("phi", "W_m", "W_r", "W_beta")


def _check_sizes(kind: str, depth: int, n: int, drift: float) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if depth < 1 or n < 1:
        raise ValueError(f"depth and n must be >= 1, got depth={depth}, n={n}")
    if not (math.isfinite(drift) and drift >= 0):
        raise ValueError(f"drift must be a finite number >= 0, got {drift}")


def drift_parameters(conn: StreamConnection, drift: float, generator: torch.Generator) -> None:
    """Add drift·N(0, 1) to every parameter of ``conn`` in place (÷√fan-in for projections)."""
    if not (math.isfinite(drift) and drift >= 0):
        raise ValueError(f"drift must be a finite number >= 0, got {drift}")
    with torch.no_grad():
        for name, p in conn.named_parameters():
            scale = drift / math.sqrt(p.shape[0]) if name in PROJECTIONS else drift
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))


def connection_stack(kind: str, depth: int, n: int, C: int, drift: float, *, seed: int = 0,
                     dtype: torch.dtype = torch.float64) -> list[StreamConnection]:
    """``depth`` connections of one kind ("hc" = dynamic HyperConnection, "mhc" = MHC), layer k
    built with ``layer_index=k`` and then drifted. The same seed gives the same stack."""
    _check_sizes(kind, depth, n, drift)
    make = (lambda k: MHC(n, C, layer_index=k)) if kind == "mhc" else (lambda k: HyperConnection(n, C, layer_index=k))
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # MHC draws φ from the global generator: keep that reproducible
        torch.manual_seed(seed)
        conns = [make(k).to(dtype) for k in range(depth)]
    for conn in conns:
        drift_parameters(conn, drift, generator)
    return conns


def random_branches(depth: int, C: int, *, seed: int = 0, dtype: torch.dtype = torch.float64
                    ) -> list[Callable[[Tensor], Tensor]]:
    """One random branch per layer: F(h) = RMSNorm(h)·W with W ~ N(0, 1/C), so |F(h)| ≈ 1 per entry."""
    generator = torch.Generator().manual_seed(seed + 1)
    weights = [torch.randn(C, C, generator=generator, dtype=dtype) / math.sqrt(C) for _ in range(depth)]
    return [lambda h, w=w: torch.nn.functional.rms_norm(h, (C,), eps=1e-6) @ w for w in weights]


def recorded_h_res(conns: list[StreamConnection], branches: list[Callable[[Tensor], Tensor]], h0: Tensor) -> Tensor:
    """Run embeddings h0 (..., C) through the stack; each layer's h_res stacked: (depth, ..., n, n).

    Sets ``record = True`` on every connection (each keeps its last h_res); no gradients are kept.
    """
    if len(conns) != len(branches) or not conns:
        raise ValueError(f"need one branch per connection and at least one, got {len(conns)} connections "
                         f"and {len(branches)} branches")
    x = conns[0].expand(h0)
    mats = []
    with torch.no_grad():
        for conn, f in zip(conns, branches, strict=True):
            conn.record = True
            x = conn(x, f)
            mats.append(conn.last_h_res.expand(*h0.shape[:-1], conn.n, conn.n))
    return torch.stack(mats)


def stack_profile(kind: str, drift: float, *, depth: int = 64, n: int = 4, C: int = 32, batch: int = 4,
                  seq: int = 16, seed: int = 0) -> dict[str, Tensor]:
    """Per-layer and composite gains of a drifted stack on random tokens (batch, seq, C).

    Returns ``gain_profile``'s dict of four (depth,) tensors: ``layer_fwd``, ``layer_bwd``,
    ``composite_fwd``, ``composite_bwd``, each averaged over the batch·seq tokens.
    """
    _check_sizes(kind, depth, n, drift)
    if C < 1 or batch < 1 or seq < 1:
        raise ValueError(f"C, batch and seq must be >= 1, got C={C}, batch={batch}, seq={seq}")
    conns = connection_stack(kind, depth, n, C, drift, seed=seed)
    h0 = torch.randn(batch, seq, C, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
    return gain_profile(recorded_h_res(conns, random_branches(depth, C, seed=seed), h0))


def mapping_profile(kind: str, drift: float, *, depth: int = 64, n: int = 4, tokens: int = 64,
                    seed: int = 0) -> dict[str, Tensor]:
    """The same four (depth,) gain curves from ``hc_mappings`` / ``mhc_mappings`` with this drift."""
    _check_sizes(kind, depth, n, drift)
    make = hc_mappings if kind == "hc" else mhc_mappings
    return gain_profile(make(depth, n, drift, tokens=tokens, generator=torch.Generator().manual_seed(seed)))


def gain_table(profile_fn: Callable[..., dict[str, Tensor]], drifts: Sequence[float], **kwargs) -> str:
    """A text table, one row per (drift, kind): mean per-layer gains, the last composite gains
    and the largest composite backward gain. ``profile_fn`` is ``stack_profile`` or
    ``mapping_profile``; ``kwargs`` go to it."""
    lines = [f"{'drift':>6} {'conn':>4} | {'layer fwd':>9} {'layer bwd':>9} | {'comp fwd':>10} {'comp bwd':>10} | "
             f"{'max comp bwd':>12}"]
    for drift in drifts:
        for kind in KINDS:
            p = profile_fn(kind, drift, **kwargs)
            lines.append(f"{drift:>6} {kind:>4} | {p['layer_fwd'].mean():9.4f} {p['layer_bwd'].mean():9.4f} | "
                         f"{p['composite_fwd'][-1]:10.4g} {p['composite_bwd'][-1]:10.4g} | "
                         f"{p['composite_bwd'].max():12.4g}")
    return "\n".join(lines)
