# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Hyper-Connections
#
# Hyper-Connections (HC; Zhu et al., arXiv 2409.19606, ICLR 2025) widen the residual stream
# into $n$ parallel streams and learn how to mix them. mHC keeps this design and fixes its one
# weakness, which this lesson measures.
#
# **In this lesson you will**
# 1. write the static and the dynamic HC update, and map them to the course's contract
#    (`h_pre`, `h_post`, `h_res`);
# 2. check, by computing it, that HC at initialisation *is* a pre-norm residual network;
# 3. see why HC's identity path, a product of $n\times n$ matrices over depth, can reach gains
#    in the thousands once training moves those matrices away from the identity;
# 4. learn which way a mixing matrix acts, and why the forward and backward gains swap if you
#    read it the other way.

# %% [markdown]
# ## From one stream to $n$
#
# Lesson 01's residual stream is one vector $h \in \mathbb{R}^C$ per token. HC keeps $n$ of
# them, the rows of $H \in \mathbb{R}^{n\times C}$, and describes one connection by a matrix
#
# $$\mathcal{HC} = \begin{pmatrix} 0 & B \\ A_m & A_r \end{pmatrix} \in \mathbb{R}^{(n+1)\times(n+1)},
# \qquad A_m \in \mathbb{R}^{n\times 1},\ A_r \in \mathbb{R}^{n\times n},\ B \in \mathbb{R}^{1\times n}.$$
#
# The layer $\mathcal T$ (attention or MLP) reads one mixture of the streams, and its output is
# spread back onto every stream while the streams also mix among themselves:
#
# $$h = A_m^\top H = \sum_i A_m[i]\, H_i, \qquad
# \hat H = B^\top\, \mathcal T(h) + A_r^\top H, \quad\text{i.e.}\quad
# \hat H_j = B_j\,\mathcal T(h) + \sum_i A_r[i, j]\, H_i .$$
#
# That is **static** HC: $A_m$, $A_r$, $B$ are learned parameters, the same for every token.
# **Dynamic** HC adds a token-dependent part computed from the normalised streams
# $\bar H = \mathrm{norm}(H)$ (one norm per stream):
#
# $$A_m(H) = s_\alpha \tanh(\bar H W_m) + A_m,\quad
# A_r(H) = s_\alpha \tanh(\bar H W_r) + A_r,\quad
# B(H) = s_\beta \tanh(\bar H W_\beta)^\top + B,$$
#
# with $W_m \in \mathbb{R}^{C\times 1}$, $W_r \in \mathbb{R}^{C\times n}$,
# $W_\beta \in \mathbb{R}^{C\times 1}$ and learned scalar scales $s_\alpha, s_\beta$.
#
# **In the course's notation** (the same for HC and mHC: `mhc_pre`, `mhc_post_res`) a
# connection is $x_{l+1} = h_\text{res}\, x_l + h_\text{post} \otimes F(h_\text{pre}\, x_l)$, so
#
# $$h_\text{pre} = A_m, \qquad h_\text{post} = B, \qquad h_\text{res} = A_r^\top .$$
#
# `mhc_course.HyperConnection` implements both variants this way (`dynamic=True` or `False`).
# The mHC paper restates HC slightly differently (per-stream RMSNorm, then
# $\alpha\tanh(\theta\tilde x^\top) + b$ for each map); the structure is the same.

# %%
import torch

from mhc_course import HyperConnection, composite, pick
from mhc_course.metrics import amax_gain

N, C = 4, pick(ci=16, default=64)
hc = HyperConnection(N, C, layer_index=5, dynamic=True)
h_pre, h_post, h_res = hc.coefficients(torch.randn(N, C))
print(hc)
print("h_pre  = A_m at init:", h_pre.tolist())
print("h_post = B   at init:", h_post.tolist())
print("h_res  = A_rᵀ at init:\n", h_res.detach())

# %% [markdown]
# ## At initialisation HC is a pre-norm residual network
#
# Zhu et al. initialise every connection so that it changes nothing: $W_m = W_r = W_\beta = 0$
# (the dynamic part vanishes), $A_r = I$, $B = \mathbf{1}$, and layer $k$ reads stream
# $k \bmod n$: $A_m = e_{k \bmod n}$. The embedding is copied into all $n$ streams. Layer 0
# reads a copy, and its output is added to *every* copy, so the copies stay equal; layer 1
# reads another copy (equal to the first), and so on. Every stream is exactly the pre-norm
# residual stream $h_{l+1} = h_l + F_l(\mathrm{norm}(h_l))$, and summing the streams before the
# final norm gives $n$ times it, which the norm undoes.
#
# Claims like this are easy to check. Below, `build_stack` (lesson 01) makes pre-norm residual
# blocks $h + F(\mathrm{norm}(h))$, and `run_streams` expands the embedding into $n$ streams
# and lets one `HyperConnection` per block carry them past the same branches
# $F(\mathrm{norm}(\cdot))$.

# %%
from torch import nn

from mhc_course.propagation import build_stack
from mhc_course.stream_stack import run_streams

DEPTH, BATCH = pick(ci=8, default=24), pick(ci=4, default=16)
blocks = build_stack("pre-norm", DEPTH, C, gain=1.0, seed=0)
h0 = torch.randn(BATCH, C, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
residual = blocks(h0)
final_norm = nn.RMSNorm(C, eps=1e-6).double()
for dynamic in (False, True):
    conns = [HyperConnection(N, C, layer_index=k, dynamic=dynamic).double() for k in range(DEPTH)]
    streams = run_streams(conns, blocks, h0)
    per_stream = (streams - residual.unsqueeze(-2)).abs().max().item()
    after_norm = (final_norm(conns[0].collapse(streams)) - final_norm(residual)).abs().max().item()
    kind = "dynamic" if dynamic else "static "
    print(f"{kind} HC, n = {N}, {DEPTH} layers: max |stream − residual| = {per_stream:.3g}, "
          f"after collapse and final norm = {after_norm:.3g}")

# %% [markdown]
# Every stream equals the residual stream (a difference of 0 means equal bit for bit). The
# tiny difference left after the final norm is the norm's $\epsilon$: $\mathrm{RMSNorm}(n\,h)$
# equals $\mathrm{RMSNorm}(h)$ only when $\epsilon = 0$.
#
# Now move the connections the way training would: nudge each $A_r$ away from $I$. The
# streams stop being copies, and the network stops being a residual network.

# %%
g = torch.Generator().manual_seed(2)
for nudge in (0.01, 0.1):
    conns = [HyperConnection(N, C, layer_index=k, dynamic=False).double() for k in range(DEPTH)]
    with torch.no_grad():
        for conn in conns:
            conn.A_r.add_(nudge * torch.randn(N, N, generator=g, dtype=torch.float64))
    streams = run_streams(conns, blocks, h0)
    after_norm = (final_norm(conns[0].collapse(streams)) - final_norm(residual)).abs().max().item()
    print(f"A_r = I + {nudge}·noise: max difference from the residual network after the final norm = {after_norm:.3g}")

# %% [markdown]
# ## The identity path is now a product of matrices
#
# Unroll the stream update over layers $l = 1, \dots, L$ (writing $h_\text{res}^{(l)}$ for layer
# $l$'s mixing matrix):
#
# $$x_L = \Big(\prod_{l=L}^{1} h_\text{res}^{(l)}\Big)\, x_0 + \sum_{l} (\cdots)\, F_l(\cdots) .$$
#
# Where lesson 01's pre-norm residual had the identity, HC has the **composite**
# $h_\text{res}^{(L)} \cdots h_\text{res}^{(1)}$ (`mhc_course.composite`, later layers on the
# left). Nothing constrains it. The mHC paper measures it with the **Amax gain magnitude**:
#
# - forward gain $= \max_i \sum_j |M_{ij}|$, the largest absolute row sum: how much the largest
#   stream can grow, since $|(Mx)_i| \le \sum_j |M_{ij}|\,\max_j |x_j|$;
# - backward gain $= \max_j \sum_i |M_{ij}|$, the largest absolute column sum: the gradient
#   flows back through $M^\top$, whose row sums are $M$'s column sums.
#
# For the identity both are 1; for a doubly stochastic matrix (lesson 03) too. Per-layer gains
# compound (lesson 00): a factor that looks harmless in one layer becomes enormous over many.
# The mHC paper reports exactly that for HC: composite gains in the thousands in its 27B run,
# alongside a loss spike.

# %% [markdown]
# ## Which way does the matrix act?
#
# HC's $A_r$ multiplies from the right. Write the streams as the columns of
# $H^\top \in \mathbb{R}^{C\times n}$ and the update reads $\hat H^\top = \mathcal T(h)\, B +
# H^\top A_r$: each token's row of stream values is multiplied by $A_r$ from the right. The matrix
# acting on the streams from the left, the one whose products across depth form the identity
# path and whose gains the paper reports, is $A_r^\top$: the package's `h_res`.
#
# Read the gains off $A_r$ itself and they **swap**: a matrix acting from the right maps row
# vectors, so its *column* sums bound the forward growth and its *row* sums the backward one.
# Over depth the right-acting product runs the other way too,
# $H_L^\top = H_0^\top A_r^{(1)} A_r^{(2)} \cdots A_r^{(L)} + \dots$, which is the transpose of
# the composite of the $h_\text{res}$: again forward and backward swap. Public code uses both
# conventions: DeepSeek's released mHC kernels, for example, store the matrix they apply
# transposed. Check which way a codebase's matrix acts before you read gains off it.

# %%
import functools

from mhc_course.random_mappings import hc_mappings

h_res_per_layer = hc_mappings(pick(ci=8, default=16), N, 0.3, generator=torch.Generator().manual_seed(3))[:, 0]
A_r_per_layer = h_res_per_layer.transpose(-1, -2)  # what HC stores: A_r = h_resᵀ
left = composite(h_res_per_layer)  # h_res^(L) ··· h_res^(1)
right = functools.reduce(torch.matmul, A_r_per_layer)  # A_r^(1) A_r^(2) ··· A_r^(L)
print(f"max |right-acting product − compositeᵀ| = {(right - left.T).abs().max().item():.3g}")
for label, m in (("composite of h_res (acts from the left)", left), ("product of A_r (acts from the right)", right)):
    fwd, bwd = amax_gain(m)
    print(f"{label:<42}: max row sum {fwd.item():8.3f}, max column sum {bwd.item():8.3f}")

# %% [markdown]
# Same numbers, swapped: the row sums of one are the column sums of the other. For the
# left-acting composite, rows are forward; for $A_r$'s product, columns are.

# %% [markdown]
# ## The widget: how far can the composite go?
#
# We do not train here. `hc_mappings` draws each layer's mixing matrix as
# $h_\text{res} = I + \text{drift}\cdot G$ with $G$ standard normal, one per layer and token, as
# if training had moved $A_r$ (and its dynamic part) away from the identity by about *drift*
# per entry, with nothing pulling it back. `gain_profile` averages the Amax gains over the
# tokens, for each layer's own matrix and for the composite up to that layer.
#
# **What you should see:**
# - at drift 0 both curves sit on the grey line: the identity, the residual network at
#   initialisation;
# - with drift the per-layer gain (dashed) rises to a small factor and stays flat across
#   depth, but the composite (solid) climbs steadily on the log scale: a straight line is
#   geometric growth, like lesson 01's stack without a skip;
# - more streams or more depth make it worse; with $n = 1$ the "matrix" is a single number
#   near 1, and the composite grows far less;
# - forward and backward composites climb together: both the signal and the gradient can
#   explode.

# %%
from mhc_course.viz.hyper import format_gain, hc_gain_curves, hc_gain_widget

TOKENS = pick(ci=8, default=32)
box = hc_gain_widget(n=N, depth=64, drift=0.3, tokens=TOKENS)

# %% [markdown]
# The same computation at the widget's starting point, with the paper's $n$: the per-layer
# gains, and the peak of the composite over depth.

# %%
curves = hc_gain_curves(N, 64, 0.3, tokens=TOKENS)
peak_fwd, peak_bwd = curves["composite_fwd"].max(), curves["composite_bwd"].max()
print(f"n = {N}, 64 layers, drift 0.3, mean over {TOKENS} tokens:")
print(f"  per-layer gain: forward {curves['layer_fwd'].mean():.3g}, backward {curves['layer_bwd'].mean():.3g} "
      "(mean over layers)")
print(f"  composite gain peaks at {format_gain(peak_fwd)} forward, {format_gain(peak_bwd)} backward")
print("  in the thousands, like HC in the mHC paper" if min(peak_fwd, peak_bwd) >= 1000
      else "  below the thousands for this draw: raise drift or depth")

# %% [markdown]
# Gradient clipping can hide such blow-ups in a training run, and an implementation that
# expands and collapses the streams inside every block never composes the matrices across
# depth at all (`run_streams` expands once and collapses once, as HC intends). mHC's answer is
# to keep HC's structure but force every $h_\text{res}$ to be **doubly stochastic**: then every
# product is doubly stochastic too, and both gains stay at or near 1 (lessons 03–05).

# %% [markdown]
# ## Exercises
#
# **Exercise 2.1.** Write the static HC update from $A_m$ (n), $A_r$ (n×n) and $B$ (n): given
# streams `H` of shape `(..., n, C)` and a `layer` mapping `(..., C) → (..., C)`, return
# $\hat H_j = B_j\,\mathcal T(h) + \sum_i A_r[i, j] H_i$ with $h = \sum_i A_m[i] H_i$.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l02_hyper import (
    check_composite_gains,
    check_dynamic_hc_coefficients,
    check_static_hc_update,
    solution_composite_gains,
    solution_dynamic_hc_coefficients,
    solution_static_hc_update,
)


def static_hc_update(H: torch.Tensor, layer, A_m: torch.Tensor, A_r: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_static_hc_update(static_hc_update)

# %% [markdown]
# **Exercise 2.2.** Given a list of per-layer mixing matrices `mats` (each n×n, acting on the
# streams from the left, layer 0 first), return the (forward, backward) Amax gain of the
# composite $M_{L-1}\cdots M_0$. Do it by hand: multiply, then take the largest absolute row
# sum and column sum.

# %%
def composite_gains(mats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    raise NotImplementedError


check_composite_gains(composite_gains)

# %% [markdown]
# **Exercise 2.3.** Compute the dynamic coefficients $A_m(H)$, $A_r(H)$, $B(H)$ of a dynamic
# `HyperConnection` `hc` for streams `H` of shape `(..., n, C)`, from its parameters
# (`hc.norm`, `hc.W_m`, `hc.W_r`, `hc.W_beta`, `hc.s_alpha`, `hc.s_beta`, `hc.A_m`, `hc.A_r`,
# `hc.B`). Return $A_r(H)$ as Zhu et al. write it, not the package's transposed `h_res`.

# %%
def dynamic_hc_coefficients(hc: HyperConnection, H: torch.Tensor):
    raise NotImplementedError


check_dynamic_hc_coefficients(dynamic_hc_coefficients)

# %% [markdown]
# The reference solutions, checked in CI:

# %%
for solution in (solution_static_hc_update, solution_composite_gains, solution_dynamic_hc_coefficients):
    print(show_solution(solution))
print(check_static_hc_update(solution_static_hc_update))
print(check_composite_gains(solution_composite_gains))
print(check_dynamic_hc_coefficients(solution_dynamic_hc_coefficients))

# %% [markdown]
# ## Recap
#
# - HC widens the residual stream to $n$ streams and learns three maps: $A_m$ (read-in),
#   $B$ (write-back) and $A_r$ (stream mixing), static or token-dependent (dynamic).
# - At initialisation ($A_r = I$, $B = \mathbf 1$, $A_m = e_{k \bmod n}$, dynamic weights 0) HC
#   is exactly a pre-norm residual network; we computed the difference.
# - The identity path becomes the product of the $h_\text{res} = A_r^\top$ over depth. Nothing
#   bounds it: modest per-layer gains compound to composite gains in the thousands.
# - $A_r$ acts from the right; read gains off $A_r$ itself and forward and backward swap.
#
# Next: **03 · Doubly stochastic matrices**, the constraint that keeps every product bounded.
