"""Signal and gradient propagation through a deep stack, with and without an identity path.

Three ways to stack L sublayers F_l (each maps (..., C) → (..., C)):

    "none"       h_{l+1} = F_l(h_l)                     no skip connection
    "post-norm"  h_{l+1} = RMSNorm(h_l + F_l(h_l))      the original Transformer (``PostNormResidual``)
    "pre-norm"   h_{l+1} = h_l + F_l(RMSNorm(h_l))      GPT-2 and most LLMs since (``PreNormResidual``)

``propagate`` runs a stack forward, keeps every h_l, backpropagates the loss ⟨r, h_L⟩ for a fixed
random readout r of RMS 1 and returns the RMS of each h_l and of each ∂loss/∂h_l. The branches
are ``RandomBranch`` modules whose output projection is scaled by an "init gain" g: without a
skip, one layer multiplies a random input's RMS by about g, so a stack multiplies it by about g^L.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .metrics import rms
from .residual import PostNormResidual, PreNormResidual
from .validation import check_tensor

PLACEMENTS = ("none", "post-norm", "pre-norm")
PLACEMENT_LABELS = {
    "none": "no skip: F(h)",
    "post-norm": "post-norm: norm(h + F(h))",
    "pre-norm": "pre-norm: h + F(norm(h))",
}
BRANCHES = ("mlp", "linear")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_gain(gain: float) -> None:
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not (math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a finite number > 0, got {gain!r}")


def _check_at_least_one(**sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")


class RandomBranch(nn.Module):
    """A sublayer F: (..., C) → (..., C) with random Gaussian weights and no bias.

    ``"linear"``: F(h) = W h with W ~ N(0, gain²/C).
    ``"mlp"``: F(h) = W_out·relu(W_in·h) with W_in ~ N(0, 2/C) (He initialisation: keeps the RMS
    of a random input through the ReLU) and W_out ~ N(0, gain²/hidden), hidden = 4C by default.

    Either way F multiplies the RMS of a random input by about ``gain``: gain 1 is the
    variance-preserving initialisation; GPT-2-style initialisations shrink the output projection.
    """

    def __init__(self, C: int, gain: float, kind: str = "mlp", *, hidden: int | None = None,
                 generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        _check_choice("kind", kind, BRANCHES)
        _check_gain(gain)
        hidden = 4 * C if hidden is None else hidden
        _check_at_least_one(C=C, hidden=hidden)
        self.kind, self.gain = kind, float(gain)
        # drawn in float32 (several times faster than float64 draws), then cast
        normal = lambda *shape: torch.randn(*shape, generator=generator).to(dtype)
        if kind == "mlp":
            self.w_in = nn.Parameter(normal(hidden, C) * math.sqrt(2 / C))
            fan_in = hidden
        else:
            self.register_parameter("w_in", None)
            fan_in = C
        self.w_out = nn.Parameter(normal(C, fan_in) * (gain / math.sqrt(fan_in)))

    @torch.no_grad()
    def set_gain(self, gain: float) -> None:
        """Rescale the output projection in place so that its scale is ``gain``."""
        _check_gain(gain)
        if gain != self.gain:
            self.w_out.mul_(gain / self.gain)
            self.gain = float(gain)

    def forward(self, h: Tensor) -> Tensor:
        if self.w_in is not None:
            h = F.relu(F.linear(h, self.w_in))
        return F.linear(h, self.w_out)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, gain={self.gain:g}, C={self.w_out.shape[0]}"


class NoSkip(nn.Module):
    """h → F(h) for h of shape (..., C): a plain stack, no identity path and no norm."""

    def __init__(self, sublayer: nn.Module) -> None:
        super().__init__()
        self.sublayer = sublayer

    def forward(self, h: Tensor) -> Tensor:
        return self.sublayer(h)


def make_block(placement: str, sublayer: nn.Module, C: int) -> nn.Module:
    """Wrap ``sublayer`` as one layer of a stack: ``NoSkip``, ``PostNormResidual`` or ``PreNormResidual``."""
    _check_choice("placement", placement, PLACEMENTS)
    if placement == "none":
        return NoSkip(sublayer)
    if placement == "post-norm":
        return PostNormResidual(sublayer, C)
    return PreNormResidual(sublayer, C)


def build_stack(placement: str, depth: int, C: int, gain: float, *, kind: str = "mlp", hidden: int | None = None,
                seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Sequential:
    """``depth`` blocks of one placement around ``RandomBranch`` sublayers, all in ``dtype``.

    Layer k's weights depend only on ``seed`` and k: not on the placement, not on the depth, and
    the gain only scales them. Stacks that differ in placement, depth or gain compare like for
    like. float64 is the default because a stack without a skip overflows float32 within a few
    hundred layers.
    """
    _check_choice("placement", placement, PLACEMENTS)
    _check_at_least_one(depth=depth)
    g = torch.Generator().manual_seed(seed)
    blocks = [make_block(placement, RandomBranch(C, gain, kind, hidden=hidden, generator=g, dtype=dtype), C)
              for _ in range(depth)]
    return nn.Sequential(*blocks).to(dtype)


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch ops on one CPU thread inside the block, then restore the previous setting.

    A deep stack of small (batch × C) ops is dominated by per-op overhead; splitting each op
    across threads costs more than it saves (several times slower on a busy 2-core machine).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def propagate(blocks: Sequence[nn.Module], x: Tensor, readout: Tensor | None = None) -> dict[str, Tensor]:
    """Forward ``x`` through every block, then backward from loss = Σ readout·h_L.

    Args:
        blocks: L modules, each mapping (..., C) → (..., C) (an ``nn.Sequential`` works).
        x: (..., C) the input h_0, e.g. (batch, C).
        readout: same shape as x; rescaled to RMS 1 so that ∂loss/∂h_L has RMS exactly 1.
            A fresh standard normal draw when None.

    Returns:
        ``act_rms`` (L+1,): RMS of h_0 … h_L; ``grad_rms`` (L+1,): RMS of ∂loss/∂h_0 … ∂loss/∂h_L.
        Both float64, detached.
    """
    x = check_tensor("x", x, min_dim=1)
    r = torch.randn_like(x) if readout is None else check_tensor("readout", readout)
    if r.shape != x.shape:
        raise ValueError(f"readout must have x's shape {tuple(x.shape)}, got {tuple(r.shape)}")
    r = r / rms(r)
    with torch.enable_grad(), single_thread():
        hs = [x.detach().requires_grad_(True)]
        for i, block in enumerate(blocks):
            h = block(hs[-1])
            if h.shape != x.shape:
                raise ValueError(f"blocks[{i}] maps shape {tuple(hs[-1].shape)} to {tuple(h.shape)}: "
                                 "every block must keep the shape")
            hs.append(h)
        loss = (hs[-1] * r.to(hs[-1].dtype)).sum()
        grads = torch.autograd.grad(loss, hs)
    as64 = lambda ts: torch.stack([rms(t.detach()).to(torch.float64) for t in ts])
    return {"act_rms": as64(hs), "grad_rms": as64(grads)}


@lru_cache(maxsize=12)
def _seeded_stack(placement: str, kind: str, C: int, seed: int, depth: int) -> nn.Sequential:
    return build_stack(placement, depth, C, 1.0, kind=kind, seed=seed)


def propagation_profile(placement: str, depth: int, gain: float, *, C: int = 64, batch: int = 16, kind: str = "mlp",
                        seed: int = 0) -> dict[str, Tensor]:
    """``propagate`` through ``build_stack(placement, depth, C, gain, kind=kind, seed=seed)``.

    The input x (batch, C) and the readout are standard normal draws from ``seed + 1``.
    Returns ``act_rms`` and ``grad_rms``, each (depth+1,) float64.

    Stacks are built once per (placement, kind, C, seed), at least 256 blocks deep, and reused:
    since layer k's weights do not depend on the depth, the first ``depth`` blocks rescaled to
    ``gain`` are that stack, and a widget that moves depth or gain stays fast.
    """
    _check_at_least_one(depth=depth, batch=batch)
    _check_gain(gain)
    blocks = _seeded_stack(placement, kind, C, seed, max(depth, 256))[:depth]
    for block in blocks:
        block.sublayer.set_gain(gain)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, C, generator=g, dtype=torch.float64)
    r = torch.randn(batch, C, generator=g, dtype=torch.float64)
    return propagate(blocks, x, r)


@torch.no_grad()
def identity_path_weight(blocks: Sequence[nn.Module], x: Tensor) -> Tensor:
    """How strongly h_0 reaches h_l along the skip path alone, for l = 0 … L (token average).

    Pre-norm adds to h unchanged: weight 1. No skip: weight 0 from the first layer on.
    Post-norm divides h + F(h) by its RMS (and multiplies by the norm's weight, 1 at
    initialisation) at every layer, so the skip path carries h_0 times the product of those
    factors.

    Args:
        blocks: ``NoSkip``, ``PostNormResidual`` or ``PreNormResidual`` modules.
        x: (..., C) the input h_0.

    Returns:
        (L+1,) float64; entry 0 is 1.
    """
    x = check_tensor("x", x, min_dim=1)
    h = x
    weight = torch.ones(x.shape[:-1], dtype=torch.float64)
    out = [weight.mean()]
    for i, block in enumerate(blocks):
        if isinstance(block, NoSkip):
            weight = torch.zeros_like(weight)
        elif isinstance(block, PostNormResidual):
            y = (h + block.sublayer(h)).to(torch.float64)
            eps = torch.finfo(y.dtype).eps if block.norm.eps is None else block.norm.eps
            w = block.norm.weight
            weight = weight * torch.rsqrt(y.square().mean(dim=-1) + eps) * (1.0 if w is None else w.double().mean())
        elif not isinstance(block, PreNormResidual):
            raise ValueError(f"blocks[{i}] must be NoSkip, PostNormResidual or PreNormResidual, "
                             f"got {type(block).__name__}")
        h = block(h)
        out.append(weight.mean())
    return torch.stack(out)
