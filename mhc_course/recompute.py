"""The mHC paper's selective recomputation (§4.3): keep x_{l0} every L_r layers and F(·) every layer.

A stack of L mHC connections, each wrapped around a sublayer F_l, updates n streams per token:

    x_{l+1} = H_res(x_l)·x_l + H_post(x_l) ⊗ f_l,     f_l = F_l(H_pre(x_l)·x_l)

Plain autograd keeps every x_l (n·C per token and layer) plus the coefficient path's
intermediates. The paper instead splits the L layers into groups of L_r consecutive layers
and, per group, keeps only the group's input streams x_{l0} (n·C) and each layer's sublayer
output f_l (C). In the backward pass x_l is recomputed inside the group from x_{l0} and the
stored f's with the update above: only the cheap mHC coefficients and post/res run again, never
the sublayers. The best group size balances the stored inputs, n·C·L/L_r, against what one
group's recomputation holds at once, and the paper finds L_r* ≈ sqrt(n·L/(n+2)).

``_RecomputedGroup`` is that autograd Function over one group. As in the fused connection of
``mhc_course.kernels.connection``, each sublayer runs inside the Function under its own autograd
graph, which is kept from the forward (``mhc_course.sublayer``); the backward runs it so the
sublayer's parameters accumulate their gradients, as reentrant checkpointing does.
Consequences: the parameters receive gradients in ``.grad`` (``loss.backward()``), not through
``torch.autograd.grad``; a sublayer's inputs other than h must not require gradients from
outside it; and the graph can be differentiated once (no ``retain_graph``, no double backward).

The connections' own parameters (φ, b, α) are inputs of the Function, so that its output requires
a gradient whenever they do, but their gradients too are accumulated into ``.grad`` inside the
backward, layer by layer, rather than returned: returning them would hold a group's worth of
parameter-sized gradients until the group is done. Everything uses the reference functions of
``mhc_course.mhc``, so it runs on any device.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.autograd import Function
from torch.autograd.function import once_differentiable

from .memory_model import continuous_optimum, group_sizes
from .mhc import MHC, mhc_coefficients, mhc_post_res, mhc_pre
from .sublayer import run_sublayer
from .validation import check_streams

Sublayer = Callable[[Tensor], Tensor]


def paper_group_size(n: int, depth: int) -> float:
    """The paper's optimum L_r* = sqrt(n·L/(n+2)) (a real number; see ``default_group_size``)."""
    return continuous_optimum(n, depth, n + 2)


def default_group_size(n: int, depth: int) -> int:
    """L_r* rounded to the nearest whole number of layers (always between 1 and L: n/(n+2) ≥ 1/3)."""
    return round(paper_group_size(n, depth))


def group_bounds(depth: int, group_size: int) -> list[tuple[int, int]]:
    """Split layers 0 … L−1 into consecutive groups of ``group_size``: [(start, stop), …].

    The last group is shorter when ``group_size`` does not divide ``depth``; there are
    ceil(L / L_r) groups.
    """
    bounds, start = [], 0
    for m in group_sizes(depth, group_size):
        bounds.append((start, start + m))
        start += m
    return bounds


def _check_stack(x: Tensor, conns: Sequence[MHC], layers: Sequence[Sublayer]) -> None:
    n, c = check_streams("x", x)
    if len(conns) != len(layers) or not conns:
        raise ValueError(f"conns and layers must have the same length >= 1, got {len(conns)} and {len(layers)}")
    for i, conn in enumerate(conns):
        if not isinstance(conn, MHC):
            raise ValueError(f"conns[{i}] must be an mhc_course.MHC, got {type(conn).__name__}")
        if (conn.n, conn.C) != (n, c):
            raise ValueError(f"conns[{i}] has n={conn.n}, C={conn.C} but x has shape {tuple(x.shape)} (…, n, C)")


def _coefficients(conn: MHC, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    return mhc_coefficients(x, conn.phi, conn.bias, conn.alpha, conn.iters, conn.eps)


def recompute_streams(x0: Tensor, fs: Sequence[Tensor], conns: Sequence[MHC]) -> list[Tensor]:
    """x_{l0}, x_{l0+1}, …, x_{l0+m} from the group's input and the stored sublayer outputs.

    x_{l+1} = H_res(x_l)·x_l + H_post(x_l) ⊗ f_l: the coefficients are recomputed from x_l, the
    sublayers are not run.

    Args:
        x0: (..., n, C) the group's input streams.
        fs: m tensors (..., C), the sublayer outputs stored in the forward pass.
        conns: the group's m connections.

    Returns:
        m + 1 tensors (..., n, C), starting with ``x0``.
    """
    if len(fs) != len(conns):
        raise ValueError(f"fs and conns must have the same length, got {len(fs)} and {len(conns)}")
    xs = [x0]
    for conn, f in zip(conns, fs, strict=True):
        _, h_post, h_res = _coefficients(conn, xs[-1])
        xs.append(mhc_post_res(xs[-1], f, h_post, h_res))
    return xs


class _RecomputedGroup(Function):
    """One group of m consecutive mHC layers; saves x_{l0} and f_l, recomputes x_l in the backward."""

    @staticmethod
    def forward(ctx, x0: Tensor, conns: tuple[MHC, ...], layers: tuple[Sublayer, ...], *params: Tensor) -> Tensor:
        x, graphs, fs = x0, [], []
        for conn, layer in zip(conns, layers, strict=True):
            h_pre, h_post, h_res = _coefficients(conn, x)
            if conn.record:
                conn.last_h_res = h_res.detach()
            graphs.append(run_sublayer(layer, mhc_pre(x, h_pre)))
            fs.append(graphs[-1].f.detach())
            x = mhc_post_res(x, fs[-1], h_post, h_res)
        ctx.save_for_backward(x0, *fs)
        ctx.conns, ctx.graphs = conns, graphs
        return x

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor) -> tuple[Tensor | None, ...]:
        x0, *fs = ctx.saved_tensors
        conns, graphs = ctx.conns, ctx.graphs
        with torch.no_grad():
            xs = recompute_streams(x0, fs[:-1], conns[:-1])  # x_{l0} … x_{l0+m−1}; the group's output is not needed
        for conn, f_value in zip(reversed(conns), reversed(fs), strict=True):
            x = xs.pop().detach().requires_grad_(True)
            sub = graphs.pop()  # dropped after this layer, so its input and gradient do not pile up
            with torch.enable_grad():
                h_pre, h_post, h_res = _coefficients(conn, x)
                h = mhc_pre(x, h_pre)
                f_leaf = f_value.detach().requires_grad_(True)
                out = mhc_post_res(x, f_leaf, h_post, h_res)
            (df,) = torch.autograd.grad(out, f_leaf, g, retain_graph=True)
            dh = sub.backward(df)  # the sublayer's own backward: accumulates its parameters' .grad
            # dL/dx_l into x.grad, and the connection's parameters' .grad accumulated at once (not held per group)
            leaves = [x] + [p for p in (conn.phi, conn.bias, conn.alpha) if p.requires_grad]
            torch.autograd.backward((out, h), (g, dh.to(h.dtype)), inputs=leaves)
            g = x.grad
            del sub, dh, df, out, h, x
        ctx.graphs = None
        return (g, None, None, *(None for _ in ctx.needs_input_grad[3:]))


def recompute_group(x0: Tensor, conns: Sequence[MHC], layers: Sequence[Sublayer]) -> Tensor:
    """Run m consecutive mHC layers as one recomputed group.

    Autograd keeps x0 (..., n, C) and the m sublayer outputs (..., C) (plus what each sublayer
    saves for its own backward), not the intermediate streams.

    Args:
        x0: (..., n, C) the group's input streams.
        conns: m ``MHC`` connections with this n and C.
        layers: m sublayers, each (..., C) → (..., C).

    Returns:
        (..., n, C) the streams after the group, equal to running the layers one by one.
    """
    _check_stack(x0, conns, layers)
    params = [p for conn in conns for p in (conn.phi, conn.bias, conn.alpha)]
    return _RecomputedGroup.apply(x0, tuple(conns), tuple(layers), *params)


def run_stored(x: Tensor, conns: Sequence[MHC], layers: Sequence[Sublayer]) -> Tensor:
    """The plain stack: x ← conn_l(x, F_l) for every layer, autograd storing every x_l.

    Args: x (..., n, C); conns and layers as for ``recompute_group``. Returns (..., n, C).
    """
    _check_stack(x, conns, layers)
    for conn, layer in zip(conns, layers, strict=True):
        x = conn(x, layer)
    return x


def run_recomputed(x: Tensor, conns: Sequence[MHC], layers: Sequence[Sublayer], group_size: int | None = None
                   ) -> Tensor:
    """The whole stack in groups of ``group_size`` layers (default: the paper's L_r*, rounded).

    Args:
        x: (..., n, C) streams entering the first layer.
        conns, layers: L connections and L sublayers.
        group_size: L_r, from 1 (keep every x_l, recompute only the coefficients) to L (one group).

    Returns:
        (..., n, C): the same values as ``run_stored``; the gradients agree to rounding.
    """
    _check_stack(x, conns, layers)
    depth = len(conns)
    size = default_group_size(x.shape[-2], depth) if group_size is None else group_size
    for start, stop in group_bounds(depth, size):
        x = recompute_group(x, conns[start:stop], layers[start:stop])
    return x


class MHCStack(nn.Module):
    """L mHC connections around L sublayers, run with or without the paper's recomputation.

    ``forward`` maps streams (..., n, C) to streams (..., n, C); expanding the embedding into
    n streams and collapsing them happen outside (``MHC.expand``, ``MHC.collapse``).
    ``group_size`` None is the paper's L_r*; ``recompute=False`` runs the plain stack.
    """

    def __init__(self, sublayers: Sequence[nn.Module], n: int, C: int, *, group_size: int | None = None,
                 recompute: bool = True, **mhc_kwargs) -> None:
        super().__init__()
        if not sublayers:
            raise ValueError("sublayers must hold at least one module")
        self.layers = nn.ModuleList(sublayers)
        self.conns = nn.ModuleList(MHC(n, C, layer_index=i, **mhc_kwargs) for i in range(len(sublayers)))
        if group_size is not None:
            group_bounds(len(sublayers), group_size)  # validates the size
        self.group_size, self.recompute = group_size, recompute

    def forward(self, x: Tensor) -> Tensor:
        if self.recompute:
            return run_recomputed(x, list(self.conns), list(self.layers), self.group_size)
        return run_stored(x, list(self.conns), list(self.layers))

    def extra_repr(self) -> str:
        return f"depth={len(self.layers)}, group_size={self.group_size}, recompute={self.recompute}"


def gradient_gap(stack: MHCStack, x: Tensor, w: Tensor, group_size: int | None = None) -> dict[str, float]:
    """How far the recomputed stack is from the plain one, on loss = Σ w ⊙ stack(x).

    Runs copies of ``stack`` both ways (the stack itself is left untouched) and returns the largest
    absolute differences of the output, of dL/dx, and over the gradients of every parameter, with
    ``parameters`` the number of parameter tensors compared.
    """
    results = []
    for recompute in (False, True):
        model = copy.deepcopy(stack)
        model.recompute, model.group_size = recompute, group_size if recompute else None
        xg = x.detach().clone().requires_grad_(True)
        y = model(xg)
        y.backward(w)
        results.append((y.detach(), xg.grad, [p.grad for p in model.parameters()]))
    (y0, gx0, gp0), (y1, gx1, gp1) = results
    return {"output": (y1 - y0).abs().max().item(), "input_grad": (gx1 - gx0).abs().max().item(),
            "parameter_grads": max((a - b).abs().max().item() for a, b in zip(gp1, gp0, strict=True)),
            "parameters": len(gp0)}
