"""Pick a connection by name: the one switch a model needs to compare the three."""

from __future__ import annotations

from .hyper_connections import HyperConnection
from .mhc import MHC
from .residual import Residual
from .stream_connection import StreamConnection

CONNECTIONS = ("residual", "hc", "hc-static", "mhc")


def default_streams(name: str) -> int:
    """n used when none is given: 1 for the residual baseline, the paper's 4 otherwise."""
    return 1 if name == "residual" else 4


def make_connection(name: str, n: int, C: int, *, layer_index: int = 0, **kwargs) -> StreamConnection:
    """A connection for layer ``layer_index``: "residual" (n must be 1), "hc" (dynamic),
    "hc-static" or "mhc". Extra keyword arguments go to the class (e.g. ``backend`` for mHC)."""
    if name == "residual":
        return Residual(n)
    if name == "hc":
        return HyperConnection(n, C, layer_index=layer_index, dynamic=True, **kwargs)
    if name == "hc-static":
        return HyperConnection(n, C, layer_index=layer_index, dynamic=False, **kwargs)
    if name == "mhc":
        return MHC(n, C, layer_index=layer_index, **kwargs)
    raise ValueError(f"connection must be one of {CONNECTIONS}, got {name!r}")
