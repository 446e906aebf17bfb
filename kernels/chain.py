"""Handing dF from one fused connection's backward to the connection before it.

When connection l reads x_l that connection l−1 wrote, the gradient connection l−1 receives is
the dx_l that connection l's channel pass writes, and the first thing connection l−1 does with
it is one more pass over all n streams: dF = Σ_i H_post[i]·g[i]. The channel pass can write that
dF itself while dx_l is still in registers, when one program holds every stream (n ≤ 4). This
module is the bookkeeping; it never changes what is computed, only where:

1. connection l−1's forward leaves a ``Link`` (its H_post) on its output tensor;
2. connection l's forward finds it on its input x, if x is that very tensor;
3. connection l's backward writes dx_l and connection l−1's dF, and hands both over;
4. connection l−1's backward uses that dF only if the gradient it receives is that dx_l,
   untouched (no other use of x_l added to it, no hook replaced it); otherwise it runs its own
   dF pass, as it does when nothing was handed over.

dF depends on the gradient and on connection l−1's H_post only, not on the values of x_l, so
nothing done to x_l itself between the two connections can make a handed-over dF wrong. What is
not supported: changing the gradient in place behind autograd's back (through ``.data``, which
its version counter does not see). And if connection l−1's backward never runs (a backward that
stops at x_l), dx_l and the dF stay referenced from x_l until x_l is freed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor

from .coefficients_bwd import STREAMS_PER_PROGRAM

_local = threading.local()


@contextmanager
def unfolded() -> Iterator[None]:
    """Connections whose forward runs inside this block (in this thread) do not use the link on
    their input, so the connection before each runs its own dF pass, as a lone connection does
    (for comparing the two, in checks and benchmarks)."""
    before, _local.fold = getattr(_local, "fold", True), False
    try:
        yield
    finally:
        _local.fold = before


class Link:
    """What a fused connection leaves on its output for the connection that reads it next."""

    __slots__ = ("post", "dx", "dx_version", "df")

    def __init__(self) -> None:
        self.post: Tensor | None = None  # H_post (T, n) float32 of the connection that wrote the output
        self.dx: Tensor | None = None
        self.dx_version: int | None = None
        self.df: Tensor | None = None


def attach(out: Tensor, link: Link) -> None:
    """Leave ``link`` on a connection's output (after autograd has wrapped it)."""
    out._mhc_link = link


def upstream(x: Tensor) -> Link | None:
    """The link on x when a fused connection wrote x and its n can fold."""
    link = getattr(x, "_mhc_link", None)
    # the channel pass must hold every stream of dx in one program
    return link if link is not None and getattr(_local, "fold", True) and x.shape[-2] in STREAMS_PER_PROGRAM else None


def hand_back(link: Link, dx: Tensor, df: Tensor) -> None:
    """Connection l's backward: dx is the gradient it returns for x_l, df is connection l−1's dF."""
    link.dx, link.dx_version, link.df = dx, dx._version, df


def take_df(link: Link | None, g: Tensor) -> Tensor | None:
    """Connection l−1's backward: the handed-over dF if g is exactly the dx it was computed from."""
    if link is None or link.df is None:
        return None
    dx, df = link.dx, link.df
    link.dx = link.df = None
    same = (g.data_ptr() == dx.data_ptr() and g.dtype == dx.dtype and g.numel() == dx.numel()
            and g.is_contiguous() and dx.is_contiguous() and dx._version == link.dx_version)
    return df if same else None
