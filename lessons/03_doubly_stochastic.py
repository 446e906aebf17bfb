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
# # 03 · Doubly stochastic matrices and the Birkhoff polytope
#
# Hyper-Connections (lesson 02) mix $n$ residual streams with a learned matrix $H^{\text{res}}$
# at every layer, and across depth those matrices multiply. Unconstrained, the product can
# grow without bound. mHC constrains every $H^{\text{res}}$ to be **doubly stochastic**. This
# lesson shows what that buys.
#
# **In this lesson you will**
# 1. define doubly stochastic matrices and test for them in code;
# 2. see why their spectral norm is at most 1 and their forward and backward gains are exactly 1;
# 3. check that products of them stay doubly stochastic, at any depth;
# 4. decompose one into a convex combination of permutation matrices (Birkhoff–von Neumann),
#    with a greedy algorithm built on a bipartite matching;
# 5. use a widget to compare products over depth: unconstrained vs doubly stochastic, and
#    random doubly stochastic vs identity-leaning ones, which keep the streams distinct.

# %% [markdown]
# ## The definition
#
# A matrix $M \in \mathbb{R}^{n\times n}$ is doubly stochastic when
#
# $$M_{ij} \ge 0, \qquad M\mathbf{1} = \mathbf{1} \ \ (\text{rows sum to } 1), \qquad
# \mathbf{1}^\top M = \mathbf{1}^\top \ \ (\text{columns sum to } 1).$$
#
# In mHC the residual update is $x_{l+1} = H^{\text{res}}_l x_l + H^{\text{post}\top}_l
# F(H^{\text{pre}}_l x_l)$ with $x_l \in \mathbb{R}^{n\times C}$. If $H^{\text{res}}$ is
# doubly stochastic, each new stream is a weighted **average** of the old ones (a row: weights
# $\ge 0$ summing to 1), and each old stream hands out exactly all of itself (a column sums to
# 1): nothing is amplified, nothing is lost. Three examples: the identity $I$ (the plain
# residual), a permutation matrix (streams swap places) and $J/n$, with $J$ the all-ones
# matrix (every stream becomes the average).
#
# `sinkhorn_error` measures the largest deviation of a row sum and of a column sum from 1;
# `is_doubly_stochastic` adds the sign condition.

# %%
import torch

from mhc_course import amax_gain, pick, sinkhorn_error
from mhc_course.birkhoff import (
    is_doubly_stochastic,
    permutation_matrix,
    random_convex_permutations,
    random_doubly_stochastic,
)
from mhc_course.random_mappings import hc_mappings

torch.manual_seed(0)
n = 4
examples = {
    "identity I": torch.eye(n, dtype=torch.float64),
    "permutation (1 2 3 0)": permutation_matrix(torch.tensor([1, 2, 3, 0])),
    "uniform J/n": torch.full((n, n), 1 / n, dtype=torch.float64),
    "mix of 6 permutations": random_convex_permutations(1, n, 6)[0],
    "Sinkhorn of random logits": random_doubly_stochastic(1, n)[0],
    "HC-like I + 0.3·G": hc_mappings(1, n, 0.3)[0, 0],
    "row softmax of G": torch.softmax(torch.randn(n, n, dtype=torch.float64), dim=-1),
}
print(f"{'matrix':<28}{'row err':>10}{'col err':>10}{'min entry':>11}  doubly stochastic?")
for name, m in examples.items():
    row, col = sinkhorn_error(m)
    print(f"{name:<28}{row.item():>10.1e}{col.item():>10.1e}{m.min().item():>11.3f}  {bool(is_doubly_stochastic(m))}")

# %% [markdown]
# The HC-like matrix fails both sum conditions and has negative entries; a row softmax makes
# rows sum to 1 but not columns. The other five are doubly stochastic.
#
# ## Gains and the spectral norm
#
# The paper's *Amax gain* of a mapping $M$ is its largest absolute row sum
# $\|M\|_\infty$ (how much the forward signal can grow) and largest absolute column sum
# $\|M\|_1$ (how much the gradient can grow on the way back). For a doubly stochastic matrix
# the entries are non-negative, so both are exactly 1.
#
# The spectral norm (the largest singular value) is at most 1 too. Row $i$ of $Mx$ is an
# average of the entries of $x$, and the square of an average is at most the average of the
# squares (Jensen):
#
# $$\|Mx\|_2^2 = \sum_i \Big(\sum_j M_{ij}x_j\Big)^2 \le \sum_i \sum_j M_{ij} x_j^2
# = \sum_j x_j^2 \sum_i M_{ij} = \|x\|_2^2 .$$
#
# It equals 1 because $M\mathbf{1} = \mathbf{1}$. The same argument with weights gives, for
# any matrix, $\|M\|_2 \le \sqrt{\|M\|_1 \|M\|_\infty}$ (exercise 3.2). So a doubly stochastic
# $H^{\text{res}}$ can neither blow up a signal nor its gradient, in any norm that matters
# here. Check on a batch of random doubly stochastic matrices and HC-like ones:

# %%
count = pick(ci=64, default=500)
ds = random_doubly_stochastic(count, n)
hc = hc_mappings(count, n, 0.3)[:, 0]
for name, ms in (("doubly stochastic", ds), ("HC-like I + 0.3·G", hc)):
    fwd, bwd = amax_gain(ms)
    sigma = torch.linalg.matrix_norm(ms, ord=2)
    print(f"{name:<20} over {count} matrices: forward gain {fwd.min().item():.6f} … {fwd.max().item():.6f}, "
          f"backward gain {bwd.min().item():.6f} … {bwd.max().item():.6f}, "
          f"spectral norm {sigma.min().item():.6f} … {sigma.max().item():.6f}")

# %% [markdown]
# ## Closed under multiplication
#
# If $A$ and $B$ are doubly stochastic, so is $AB$: its entries are sums of products of
# non-negative numbers, $(AB)\mathbf{1} = A(B\mathbf{1}) = A\mathbf{1} = \mathbf{1}$ and
# $\mathbf{1}^\top AB = \mathbf{1}^\top B = \mathbf{1}^\top$. Across depth, the identity path
# of an mHC network is the product $H^{\text{res}}_L \cdots H^{\text{res}}_1$
# (`mhc_course.composite`, later layers on the left): it stays doubly stochastic, with gains
# exactly 1, however deep the network. HC's product has no such guarantee.

# %%
from mhc_course import composite

depth = 64
ds_path, hc_path = composite(random_doubly_stochastic(depth, n)), composite(hc_mappings(depth, n, 0.3)[:, 0])
print(f"product of {depth} doubly stochastic matrices: row/col error "
      f"{max(e.item() for e in sinkhorn_error(ds_path)):.1e}, min entry {ds_path.min().item():.3g}, "
      f"gains {[round(g.item(), 12) for g in amax_gain(ds_path)]}")
print(f"product of {depth} HC-like matrices: gains {[f'{g.item():.3g}' for g in amax_gain(hc_path)]}")

# %% [markdown]
# Look at the smallest entry of the doubly stochastic product: compare it with $1/n$. The
# product has not just stayed bounded, it has drifted to the centre of the polytope; the
# section on mixing below explains why, and why mHC does not start from random matrices.
#
# ## The Birkhoff polytope and its vertices
#
# The doubly stochastic $n\times n$ matrices form a convex set, the **Birkhoff polytope**
# $\mathcal{B}_n$: a convex combination of doubly stochastic matrices is again one. Its
# vertices are the $n!$ permutation matrices, and the **Birkhoff–von Neumann theorem** says
# every point is a convex combination of them:
#
# $$M = \sum_k w_k P_{\sigma_k}, \qquad w_k \ge 0, \quad \sum_k w_k = 1 .$$
#
# For mHC this reads: $H^{\text{res}}$ is a weighted mixture of ways to re-route the streams.
# The polytope has dimension $(n-1)^2$, so by Carathéodory's theorem some decomposition uses at
# most $(n-1)^2 + 1$ permutations (Marcus–Ree). For $n = 1$ the polytope is the single point
# $[1]$: mHC with one stream is the plain residual.
#
# **A greedy decomposition.** Start with $R = M$. Repeat: find a permutation $\sigma$ whose
# entries $R_{i\sigma(i)}$ are all positive, take $w = \min_i R_{i\sigma(i)}$, record
# $(w, P_\sigma)$ and set $R \leftarrow R - wP_\sigma$. Finding $\sigma$ is a **perfect
# matching** in the bipartite graph that joins row $i$ to column $j$ when $R_{ij} > 0$;
# `find_permutation_in_support` finds one with augmenting paths (Kuhn's algorithm). One always
# exists: $R$ keeps equal row and column sums, so $R$ divided by that sum is doubly stochastic,
# and by Hall's theorem its positive entries contain a permutation. Each step zeroes at least
# one entry, so the loop ends. `bvn_decomposition` picks, among all permutations in the
# support, the one with the largest $w$ (a binary search over thresholds, one matching each),
# which keeps the number of terms small.

# %%
from mhc_course.birkhoff import all_permutations, bvn_decomposition, find_permutation_in_support, marcus_ree_bound
from mhc_course.viz.birkhoff import bvn_figure

m = random_doubly_stochastic(1, n, generator=torch.Generator().manual_seed(3))[0]
print("a permutation in the support of M:", find_permutation_in_support(m > 0).tolist())
dec = bvn_decomposition(m)
for w, perm in zip(dec.weights, dec.perms, strict=True):
    print(f"  w = {w.item():.6f}  σ = {perm.tolist()}")
error = (dec.reconstruct() - m).abs().max().item()
print(f"{len(dec)} terms (some decomposition needs at most {marcus_ree_bound(n)}; {len(all_permutations(n))} "
      f"vertices exist); Σw − 1 = {dec.weights.sum().item() - 1:.1e}; max |Σ w_k P_k − M| = {error:.1e}")
bvn_figure(m, dec)

# %% [markdown]
# **What you should see:** the heatmap of a full-support $4\times 4$ matrix (every entry
# positive) beside the bars of its decomposition, in the order the greedy loop found them.
# The weights sum to 1 and the reconstruction matches $M$ to rounding.
#
# The same check on fresh random matrices, both kinds: Sinkhorn–Knopp of random logits (full
# support) and random mixtures of a few permutations (sparse support):

# %%
trials = pick(ci=10, default=200)
worst = {"reconstruction": 0.0, "|Σw − 1|": 0.0, "terms": 0}
for m in torch.cat([random_doubly_stochastic(trials, n), random_convex_permutations(trials, n, 5)]):
    dec = bvn_decomposition(m)
    worst["reconstruction"] = max(worst["reconstruction"], (dec.reconstruct() - m).abs().max().item())
    worst["|Σw − 1|"] = max(worst["|Σw − 1|"], abs(dec.weights.sum().item() - 1))
    worst["terms"] = max(worst["terms"], len(dec))
print(f"over {2 * trials} matrices: worst reconstruction error {worst['reconstruction']:.1e}, "
      f"worst |Σw − 1| {worst['|Σw − 1|']:.1e}, most terms {worst['terms']} (n = {n})")

# %% [markdown]
# ## Products over depth: bounded, and mixing toward $J/n$
#
# Bounded gains are half the story. The centre of the polytope is $J/n$, the matrix that
# replaces every stream by the average of all of them. A doubly stochastic $M$ maps the
# all-ones direction to itself, and on the directions orthogonal to it (the *differences*
# between streams) it shrinks lengths by at most $\sigma_2(M)$, its second singular value. So
#
# $$\big\| M_L \cdots M_1 - J/n \big\|_2 \;\le\; \prod_{l=1}^{L} \sigma_2(M_l).$$
#
# Once the product is close to $J/n$ every stream carries the same signal and the $n$-fold
# wider residual stream holds one stream's worth of information from the early layers.
# Random doubly stochastic matrices have $\sigma_2$ well below 1 and their products collapse to
# $J/n$ geometrically fast. Permutation matrices have $\sigma_2 = 1$: they re-route but never
# mix. An identity-leaning matrix, $d$ on the diagonal and $(1-d)/(n-1)$ elsewhere, has
# $\sigma_2 = d - (1-d)/(n-1)$, close to 1 when $d$ is, so the differences between streams
# fade only slowly, by that factor per layer. That is why `MHC` initialises $H^{\text{res}}$
# this way (`mhc_course.mhc.identity_logits`). The printout shows how much of the difference
# survives the depth used above for three diagonals: the closer $d$ is to 1, the more.

# %%
from mhc_course.birkhoff import distance_from_uniform
from mhc_course.mhc import identity_logits
from mhc_course.sinkhorn import sinkhorn_knopp

for d in (0.9, 0.95, 0.99):
    h = sinkhorn_knopp(identity_logits(n, d).double(), 20)
    formula = d - (1 - d) / (n - 1)
    print(f"diagonal {d}: σ₂ = ‖H − J/n‖₂ = {distance_from_uniform(h).item():.4f} (formula {formula:.4f}); "
          f"after {depth} layers {distance_from_uniform(torch.linalg.matrix_power(h, depth)).item():.3g}")

# %% [markdown]
# ### Widget: products of $L$ random mappings
#
# Three kinds of per-layer mapping, all with the same random draws per setting:
# **HC** $I + \text{drift}\cdot G$ (unconstrained, `hc_mappings`); **mHC**
# Sinkhorn–Knopp of identity-leaning logits plus drift (`mhc_mappings`, as training might leave
# `MHC`'s initialisation); **random doubly stochastic**, a mixture of a few random permutation
# matrices. Left: the forward gain of the product after $L$ layers. Right: its distance from
# $J/n$ (doubly stochastic kinds only).
#
# **What you should see:** on the left the HC line climbs steadily on the log scale while
# both doubly stochastic lines stay flat at 1. On the right the random mixtures fall
# steeply to rounding level, while the mHC line decays slowly. Set *random
# terms* to 1 (pure permutations): their line stays at 1, never mixing. Push the *mHC
# diagonal* toward 1 and the mHC line decays more slowly still; lower it and mHC mixes as fast
# as the random ones.

# %%
from mhc_course.viz.birkhoff import mixing_curves, mixing_widget

fig = mixing_widget(depth=64, n=4, drift=0.3, res_diag=0.95, terms=4, max_depth=256)

# %%
c = mixing_curves(64, 4, 0.3, res_diag=0.95, terms=4)
for kind in ("mhc", "random"):
    below = (c[f"dist_{kind}"] < 1e-3).nonzero()[0]
    when = f"after {c['layer'][below[0]]} layers" if below.size else "not within 64 layers"
    print(f"{kind:>6}: distance from J/n below 1e-3 {when}; after 64 layers {c[f'dist_{kind}'][-1]:.2g}")
print(f"forward gain after 64 layers: HC {c['gain_hc'][-1]:.3g}, mHC {c['gain_mhc'][-1]:.12f}, "
      f"random {c['gain_random'][-1]:.12f}")

# %% [markdown]
# Training moves $H^{\text{res}}$ away from its initialisation, and the new output
# $H^{\text{post}\top} F(\cdot)$ that each layer adds keeps the streams from becoming exact
# copies. But what the identity path carries from early layers is the product above: starting
# near $I$ keeps it informative, and the doubly stochastic constraint keeps it bounded however
# far training drifts.

# %% [markdown]
# ## Exercises
#
# **Exercise 3.1.** Return `True` when the $(n, n)$ matrix `m` is doubly stochastic within
# `tol`: no entry below $-$`tol`, every row sum and every column sum within `tol` of 1.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l03_doubly_stochastic import (
    check_bvn_reconstruct,
    check_is_doubly_stochastic,
    check_spectral_norm_bound,
    solution_bvn_reconstruct,
    solution_is_doubly_stochastic,
    solution_spectral_norm_bound,
)


def my_is_doubly_stochastic(m: torch.Tensor, tol: float) -> bool:
    raise NotImplementedError


check_is_doubly_stochastic(my_is_doubly_stochastic)

# %% [markdown]
# **Exercise 3.2.** For a batch of matrices `m` of shape $(\dots, n, n)$, with any signs,
# return the bound $\sqrt{\|M\|_1\,\|M\|_\infty}$ on the spectral norm, shape $(\dots)$.

# %%
def my_spectral_norm_bound(m: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_spectral_norm_bound(my_spectral_norm_bound)

# %% [markdown]
# **Exercise 3.3.** Rebuild a matrix from its decomposition: `weights` has shape $(k,)$,
# `perms` shape $(k, n)$, and term $k$ contributes `weights[k]` at entries
# $(i, \texttt{perms[k, i]})$. Return the $(n, n)$ sum.

# %%
def my_bvn_reconstruct(weights: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_bvn_reconstruct(my_bvn_reconstruct)

# %% [markdown]
# The reference solutions, checked in CI:

# %%
for solution in (solution_is_doubly_stochastic, solution_spectral_norm_bound, solution_bvn_reconstruct):
    print(show_solution(solution))
print(check_is_doubly_stochastic(solution_is_doubly_stochastic))
print(check_spectral_norm_bound(solution_spectral_norm_bound))
print(check_bvn_reconstruct(solution_bvn_reconstruct))

# %% [markdown]
# ## Recap
#
# - Doubly stochastic: non-negative, rows and columns sum to 1. Forward and backward Amax
#   gains are exactly 1 and the spectral norm is 1.
# - Products of doubly stochastic matrices are doubly stochastic, so mHC's identity path stays
#   bounded at any depth, unlike HC's.
# - The Birkhoff polytope is the convex hull of the $n!$ permutation matrices; a greedy
#   matching-based loop decomposes any point into a few of them, each step zeroing an entry.
# - Products drift toward $J/n$ at a rate set by $\sigma_2$; an identity-leaning start keeps the
#   streams distinct over many layers, random mixtures erase the differences quickly.
#
# Next: **04 · Sinkhorn–Knopp**, the algorithm that turns any matrix of logits into a doubly
# stochastic one, and its numerics.
