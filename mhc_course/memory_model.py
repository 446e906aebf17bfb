"""How many activation values a stack of L layers keeps per token, by policy: a model to test against measurement.

Counts are in elements per token (multiply by the bytes of the dtype). ``S`` is what one
sublayer saves for its own backward (attention or an MLP, including its input h_l = H_pre·x_l):
the same in every policy, so the model takes it as given (``memory.sublayer_saved_elements``
measures it).

Policies, with G = ceil(L / L_r) groups:

- ``residual`` (n = 1): the sublayer reads the stream itself, so each layer keeps only S.
- ``stored`` (plain autograd through the reference ``mhc_course.mhc``): per layer x_l (nC), the
  RMSNorm'd flattened token (nC), f_l (C), S, and the coefficient path's intermediates
  ``reference_coefficient_elements(n, t_max)``, most of them Sinkhorn iterates.
- ``recompute`` (``mhc_course.recompute``): G·nC for the group inputs x_{l0} and L·(C + S).

Peak during the backward pass: the recomputation of a group of m layers holds x_{l0+1} …
x_{l0+m−1} at once, (m − 1)·nC, on top of what the not-yet-processed groups still keep and the
gradient arriving at the group (nC). The
paper counts the recomputed block as (n+2)·C per layer (x_l, H_pre·x_l and its RMSNorm) and
minimises n·C·L/L_r + (n+2)·C·L_r, which gives L_r* = sqrt(n·L/(n+2)); the implementation here
keeps the sublayer's input in the sublayer's own graph (inside S), so only n·C per layer is
recomputed and its optimum is near sqrt(L).
"""

from __future__ import annotations

import math

POLICIES = ("residual", "stored", "recompute")


def _check_ints(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")


def reference_coefficient_elements(n: int, iters: int = 20) -> int:
    """Elements per token that autograd saves for one layer's coefficients, pre and post/res in the reference,
    besides x_l, the RMSNorm'd token and f_l.

    RMSNorm's 1/r (1); the projection z (n²+2n); the two sigmoids' outputs (2n); the H_res logits
    (n²) and their max (1); exp's output M⁰ (n²); every Sinkhorn division keeps its numerator and
    the sums it divides by: 2·t_max − 1 further n×n iterates and 2·t_max sums of n; post/res keeps
    H_res (n²) and H_post (n). Total (2t+3)·n² + (2t+5)·n + 2.
    """
    _check_ints(n=n, iters=iters)
    return (2 * iters + 3) * n * n + (2 * iters + 5) * n + 2


def group_sizes(depth: int, group_size: int) -> list[int]:
    """Layers per group when L layers are split into groups of L_r (the last one may be shorter)."""
    _check_ints(depth=depth, group_size=group_size)
    if group_size > depth:
        raise ValueError(f"group_size must be <= depth, got group_size={group_size}, depth={depth}")
    full, rest = divmod(depth, group_size)
    return [group_size] * full + ([rest] if rest else [])


COMPONENTS = ("streams x_l", "RMSNorm'd token", "coefficient intermediates", "sublayer outputs f_l",
              "sublayer internals")


def saved_breakdown(policy: str, *, depth: int, n: int, C: int, sublayer: int, group_size: int | None = None,
                    iters: int = 20) -> dict[str, int]:
    """Elements per token autograd keeps after the forward pass of an L-layer stack, by what they are.

    Args:
        policy: "residual", "stored" or "recompute" (module docstring).
        depth: L. n: streams (must be 1 for "residual"). C: width. sublayer: S, one sublayer's own saved
            elements per token. group_size: L_r, required for "recompute". iters: Sinkhorn t_max.

    Returns:
        {component: elements} over the ``COMPONENTS`` that the policy keeps ("streams x_l" counts the
        group inputs x_l0 for "recompute").
    """
    _check_ints(depth=depth, n=n, C=C, iters=iters)
    if not isinstance(sublayer, int) or sublayer < 0:
        raise ValueError(f"sublayer must be an int >= 0, got {sublayer!r}")
    if policy == "residual":
        if n != 1:
            raise ValueError(f"the residual policy has n = 1, got n={n}")
        return {"sublayer internals": depth * sublayer}
    if policy == "stored":
        return {"streams x_l": depth * n * C, "RMSNorm'd token": depth * n * C,
                "coefficient intermediates": depth * reference_coefficient_elements(n, iters),
                "sublayer outputs f_l": depth * C, "sublayer internals": depth * sublayer}
    if policy == "recompute":
        if group_size is None:
            raise ValueError("group_size is required for the recompute policy")
        return {"streams x_l": len(group_sizes(depth, group_size)) * n * C, "sublayer outputs f_l": depth * C,
                "sublayer internals": depth * sublayer}
    raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")


def saved_elements(policy: str, *, depth: int, n: int, C: int, sublayer: int, group_size: int | None = None,
                   iters: int = 20) -> int:
    """The total of ``saved_breakdown``: elements per token kept after the forward pass."""
    return sum(saved_breakdown(policy, depth=depth, n=n, C=C, sublayer=sublayer, group_size=group_size,
                               iters=iters).values())


def recompute_peak_elements(*, depth: int, n: int, C: int, sublayer: int, group_size: int) -> int:
    """Kept plus recomputed elements per token at the worst moment of the recompute policy's backward.

    Groups are processed last to first. While group k (m_k layers) is being recomputed, groups
    0 … k still keep their x_{l0} and per-layer C + S, the recomputation holds (m_k − 1)·n·C, and
    the gradient arriving from group k + 1 takes n·C (for the last group that gradient comes from
    the loss, and the caller holds it). One layer's backward working set (its coefficient graph,
    gradients in flight) comes on top and is not modelled: it does not depend on L_r.
    """
    sizes = group_sizes(depth, group_size)
    worst, kept_layers = 0, 0
    for k, m in enumerate(sizes):
        kept_layers += m
        arriving = n * C if k < len(sizes) - 1 else 0
        worst = max(worst, (k + 1) * n * C + kept_layers * (C + sublayer) + (m - 1) * n * C + arriving)
    return worst


def paper_elements(*, depth: int, n: int, C: int, group_size: int) -> int:
    """The paper's count for the mHC part: n·C·ceil(L/L_r) kept + (n+2)·C·L_r recomputed at once."""
    _check_ints(depth=depth, n=n, C=C, group_size=group_size)
    return n * C * math.ceil(depth / group_size) + (n + 2) * C * group_size


def continuous_optimum(n: int, depth: int, recomputed_per_layer: float) -> float:
    """The L_r minimising n·L/L_r + a·L_r for a recomputed size a·C per layer: sqrt(n·L/a).

    a = n + 2 gives the paper's L_r* = sqrt(n·L/(n+2)); a = n gives sqrt(L), this implementation's.
    """
    _check_ints(n=n, depth=depth)
    if not recomputed_per_layer > 0:
        raise ValueError(f"recomputed_per_layer must be > 0, got {recomputed_per_layer!r}")
    return math.sqrt(n * depth / recomputed_per_layer)
