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
# # 05 · The mHC layer
#
# Lessons 02–04 gave us the pieces: n residual streams mixed by learned matrices, the
# Birkhoff polytope that keeps products of mixing matrices bounded, and Sinkhorn–Knopp to
# project onto it. This lesson assembles them into the layer of the mHC paper
# (arXiv 2512.24880) and puts it next to Hyper-Connections over a 64-layer stack.
#
# **In this lesson you will**
# 1. follow one mHC layer step by step on a concrete batch, printing every shape;
# 2. see how the `MHC` module is initialised, and check it numerically;
# 3. compare HC and mHC over 64 layers, first with drifted mixing matrices, then with real
#    connection modules whose parameters have drifted from their initialisation, and measure
#    the paper's Amax Gain Magnitude, per layer and composite, forward and backward;
# 4. re-derive where DeepSeek's released code differs from the paper, and measure whether
#    it matters;
# 5. write the norm-after-matmul form of the coefficients, the post/res update, and the gains of
#    a transposed mixing yourself.

# %% [markdown]
# ## The layer in equations
#
# Per token the residual state is $x_l \in \mathbb{R}^{n\times C}$: $n$ streams of width $C$.
# One layer with sublayer $\mathcal{F}$ (attention or an MLP) updates it as (Eq. 3)
#
# $$x_{l+1} = \mathcal{H}^{res}_l\, x_l + \mathcal{H}^{post\,\top}_l\,
# \mathcal{F}\big(\mathcal{H}^{pre}_l\, x_l\big), \qquad \mathcal{H}^{pre}_l, \mathcal{H}^{post}_l \in
# \mathbb{R}^{1\times n},\ \mathcal{H}^{res}_l \in \mathbb{R}^{n\times n}.$$
#
# The three mappings are computed from the token itself (Eqs. 6–9). All $n$ streams are
# flattened into one vector and normalised together:
#
# $$v = \mathrm{vec}(x_l) \in \mathbb{R}^{1\times nC},\qquad
# v' = \mathrm{RMSNorm}(v) = \frac{v}{\sqrt{\tfrac{1}{nC}\sum_k v_k^2 + \epsilon}},$$
#
# $$\tilde{\mathcal{H}}^{pre} = \alpha^{pre}\,(v'\varphi^{pre}) + b^{pre},\quad
# \tilde{\mathcal{H}}^{post} = \alpha^{post}\,(v'\varphi^{post}) + b^{post},\quad
# \tilde{\mathcal{H}}^{res} = \alpha^{res}\,\mathrm{mat}(v'\varphi^{res}) + b^{res},$$
#
# with $\varphi^{pre}, \varphi^{post} \in \mathbb{R}^{nC\times n}$,
# $\varphi^{res} \in \mathbb{R}^{nC\times n^2}$ and scalar gates $\alpha$. Then
#
# $$\mathcal{H}^{pre} = \sigma(\tilde{\mathcal{H}}^{pre}),\qquad
# \mathcal{H}^{post} = 2\,\sigma(\tilde{\mathcal{H}}^{post}),\qquad
# \mathcal{H}^{res} = \mathrm{SinkhornKnopp}(\tilde{\mathcal{H}}^{res}),$$
#
# where Sinkhorn–Knopp starts from $M^0 = \exp(\tilde{\mathcal{H}}^{res})$ and alternates
# $M^t = T_r(T_c(M^{t-1}))$ for $t_{max}$ iterations (the paper uses 20). The package stores
# the three projections as one matrix `phi` of shape $(nC, n^2+2n)$, columns
# `[pre | post | res (row-major)]`, the biases as `bias` $(n^2+2n)$ and the gates as
# `alpha` $= (\alpha^{pre}, \alpha^{post}, \alpha^{res})$.
#
# Two differences from the way the mHC paper restates HC (lesson 02): the norm runs over
# the whole flattened token, not stream by stream, and there is no $\tanh$. The constraint
# that keeps the layer stable comes from the three output maps instead: $\sigma$ keeps
# $\mathcal{H}^{pre}$ in $(0, 1)$, $2\sigma$ keeps $\mathcal{H}^{post}$ in $(0, 2)$, and
# Sinkhorn–Knopp makes $\mathcal{H}^{res}$ (approximately) doubly stochastic.

# %% [markdown]
# ## One layer, step by step
#
# A concrete batch: $B$ sequences of $T$ tokens, each token $n$ streams of width $C$. We build
# one `MHC` module (its parameters are `phi`, `bias`, `alpha`) and a sublayer $\mathcal{F}$,
# then walk through the equations with plain torch, printing each shape.

# %%
import torch

from mhc_course import MHC, mhc_coefficients, mhc_post_res, mhc_pre, pick, profile, sinkhorn_knopp
from mhc_course.depth_gains import random_branches

torch.manual_seed(0)
B, T, n, C = 2, 3, 4, 8
layer = MHC(n, C, layer_index=1).double()
F = random_branches(1, C)[0]  # F(h) = RMSNorm(h)·W, a stand-in for attention or an MLP
x = torch.randn(B, T, n, C, dtype=torch.float64)
print(f"profile: {profile()}")
print(f"x              {tuple(x.shape)}   (B, T, n, C)")
print(f"phi            {tuple(layer.phi.shape)}   (n·C, n²+2n)")
print(f"bias           {tuple(layer.bias.shape)}, alpha {tuple(layer.alpha.shape)}, Sinkhorn iterations {layer.iters}")

# %% [markdown]
# Flatten, normalise, project. The RMSNorm has no learned weight here (the paper writes
# plain RMSNorm; the released code folds a weight into $\varphi$, see below).

# %%
v = x.flatten(-2)  # all n streams of a token in one vector
v_norm = v * torch.rsqrt(v.square().mean(dim=-1, keepdim=True) + layer.eps)
z = v_norm @ layer.phi  # one projection for all three maps
a, b = layer.alpha, layer.bias
pre_logits = a[0] * z[..., :n] + b[:n]
post_logits = a[1] * z[..., n : 2 * n] + b[n : 2 * n]
res_logits = (a[2] * z[..., 2 * n :] + b[2 * n :]).unflatten(-1, (n, n))  # row-major n×n
for name, t in [("v = flatten(x)", v), ("RMSNorm(v)", v_norm), ("z = v'·phi", z),
                ("H̃_pre", pre_logits), ("H̃_post", post_logits), ("H̃_res", res_logits)]:
    print(f"{name:<15}{tuple(t.shape)}")

# %% [markdown]
# The three output maps, then the layer itself: read the streams with $\mathcal{H}^{pre}$,
# apply $\mathcal{F}$, mix the streams with $\mathcal{H}^{res}$ and add $\mathcal{F}$'s output
# to every stream with weight $\mathcal{H}^{post}$.

# %%
h_pre, h_post = torch.sigmoid(pre_logits), 2 * torch.sigmoid(post_logits)
h_res = sinkhorn_knopp(res_logits, iters=layer.iters)
h = mhc_pre(x, h_pre)  # Σ_i h_pre[i]·x[i]
f = F(h)
x_next = mhc_post_res(x, f, h_post, h_res)  # h_res·x + h_post ⊗ f
for name, t in [("H_pre", h_pre), ("H_post", h_post), ("H_res", h_res), ("h = H_pre·x", h),
                ("F(h)", f), ("x_next", x_next)]:
    print(f"{name:<15}{tuple(t.shape)}")

# %% [markdown]
# The package does the same in two calls: `mhc_coefficients` for the three maps and the
# module's `forward` for the whole layer. The step-by-step version should agree with both to
# float64 rounding:

# %%
ref = mhc_coefficients(x, layer.phi, layer.bias, layer.alpha, layer.iters, layer.eps)
for name, mine, theirs in zip(("H_pre", "H_post", "H_res"), (h_pre, h_post, h_res), ref, strict=True):
    print(f"{name:<7} max |step by step − mhc_coefficients| = {(mine - theirs).abs().max():.2e}")
print(f"x_next  max |step by step − MHC.forward|      = {(x_next - layer(x, F)).abs().max():.2e}")

# %% [markdown]
# ## How `MHC` starts
#
# The paper fixes the gates at $\alpha = 0.01$ and leaves $\varphi$ and $b$ open. The module
# (read its docstring: `MHC?`) chooses $b$ so that at step 0 the layer behaves like the
# residual stream it replaces, as Hyper-Connections do at initialisation:
#
# - **$\mathcal{H}^{res} \approx I$.** `identity_logits` puts $\beta$ on the diagonal of
#   $b^{res}$ and 0 elsewhere. That matrix of logits has equal row and column sums after
#   $\exp$, so Sinkhorn–Knopp leaves it as it is, with $e^\beta/(e^\beta + n - 1)$ on the
#   diagonal (`res_diag`). Exactly $I$ would need $\beta = \infty$, where the gradient vanishes.
# - **$\mathcal{H}^{pre}$ picks one stream**, stream $k \bmod n$ for layer $k$: $\sigma(b)$ is
#   `pre_focus` there and the rest is shared by the other streams, so the weights sum to 1.
# - **$\mathcal{H}^{post} = 1$**: $b^{post} = 0$ gives $2\sigma(0) = 1$.
# - $\varphi \sim \mathcal{N}(0, 1/(nC))$, so each entry of $v'\varphi$ is about
#   $\mathcal{N}(0, 1)$ and the token-dependent part $\alpha\, v'\varphi$ starts small.
#
# Why not simply logits equal to $I$, as some public code does? Sinkhorn–Knopp of the
# identity matrix of logits is far from the identity:

# %%
from mhc_course.mhc import identity_logits

eye_logits = sinkhorn_knopp(torch.eye(n, dtype=torch.float64))
print(f"Sinkhorn(exp(I)):  diagonal {eye_logits[0, 0]:.3f}, off-diagonal {eye_logits[0, 1]:.3f}")
beta = identity_logits(n)[0, 0].item()
print(f"identity_logits:   β = {beta:.3f}, Sinkhorn diagonal {sinkhorn_knopp(identity_logits(n))[0, 0]:.3f}, "
      f"e^β/(e^β+n−1) = {torch.tensor(beta).exp() / (torch.tensor(beta).exp() + n - 1):.3f}")

# %% [markdown]
# Now check the initialisation on real inputs: one `MHC` per layer index $k = 0 \dots n-1$,
# applied to tokens whose $n$ streams are copies of one embedding (as the model starts).

# %%
tokens = pick(ci=16, default=256)
print(f"alpha at init: {[round(a, 6) for a in MHC(n, C).alpha.tolist()]}")
for k in range(n):
    conn = MHC(n, C, layer_index=k).double()
    p, q, r = conn.coefficients(conn.expand(torch.randn(tokens, C, dtype=torch.float64)))
    diag = r.diagonal(dim1=-2, dim2=-1)
    off = (r - torch.diag_embed(diag)).max()
    print(f"layer {k}: H_pre reads {sorted(set(p.argmax(-1).tolist()))} with weight {p.max(-1).values.mean():.3f}, "
          f"Σ H_pre {p.sum(-1).mean():.3f} | H_post in [{q.min():.3f}, {q.max():.3f}] | H_res diag {diag.mean():.3f}, "
          f"off-diag ≤ {off:.4f}, |row sum − 1| ≤ {(r.sum(-1) - 1).abs().max():.0e}, "
          f"|col sum − 1| ≤ {(r.sum(-2) - 1).abs().max():.0e}")

# %% [markdown]
# **What you should see:** layer $k$ reads stream $k \bmod n$, the $\mathcal{H}^{pre}$ weights
# sum to about 1, $\mathcal{H}^{post}$ sits in a narrow band around 1 and $\mathcal{H}^{res}$
# has `res_diag` on its diagonal with rows summing to 1 to rounding. Because every stream
# starts as the same copy and the rows of $\mathcal{H}^{res}$ sum to 1, mixing copies leaves
# them copies: a stack of fresh `MHC` layers is close to a pre-norm residual network. Measure
# it on a 64-layer stack (streams averaged at the end, compared with $h + \mathcal{F}(h)$ per
# layer):

# %%
from mhc_course.depth_gains import connection_stack

depth = 64
stack, branches = connection_stack("mhc", depth, n, C, drift=0.0), random_branches(depth, C)
h0 = torch.randn(tokens, C, dtype=torch.float64)
xs, hr = stack[0].expand(h0), h0
with torch.no_grad():
    for conn, fk in zip(stack, branches, strict=True):
        xs, hr = conn(xs, fk), hr + fk(hr)
print(f"{depth} fresh MHC layers vs a pre-norm residual: relative difference "
      f"{((xs.mean(-2) - hr).norm() / hr.norm()).item():.4f}")

# %% [markdown]
# ## HC vs mHC over 64 layers
#
# Across depth the identity path is the product of the residual mappings,
# $\prod_l \mathcal{H}^{res}_l$ (later layers on the left). The paper measures it with the
# **Amax Gain Magnitude**: the largest absolute row sum of a mapping (forward: how much a
# signal can grow) and the largest absolute column sum (backward: how much a gradient can
# grow), for each layer's own mapping and for the composite product up to that layer,
# averaged over tokens. `gain_profile` computes the four curves from a stack of matrices.
#
# At initialisation both HC and mHC have $\mathcal{H}^{res} \approx I$ and all gains are 1.
# Training moves the parameters; we imitate that with a **drift**: noise of size `drift`
# added to the parameters. We do it two ways.
#
# **(a) Drifted mappings.** `hc_mappings` draws $I + \text{drift}\cdot G$ per layer and token
# ($G$ standard normal); `mhc_mappings` draws Sinkhorn–Knopp(identity logits +
# drift·$G$). No model, just the matrices.

# %%
from mhc_course.depth_gains import gain_table, mapping_profile, stack_profile

sizes = pick(ci={"C": 8, "batch": 2, "seq": 4, "tokens": 16}, default={"C": 32, "batch": 4, "seq": 16, "tokens": 64})
print(gain_table(mapping_profile, (0.1, 0.3, 1.0), depth=64, n=4, tokens=sizes["tokens"]))

# %% [markdown]
# The columns: mean per-layer gains over the 64 layers, the composite gains after layer 64,
# and the largest composite backward gain at any depth.
#
# **(b) Connection modules.** `connection_stack` builds 64 real connections, `MHC` or dynamic
# `HyperConnection`, each initialised as described above (HC as in Zhu et al.), then `drift_parameters` adds
# drift·$\mathcal{N}(0,1)$ to every parameter (divided by $\sqrt{\text{fan-in}}$ for the
# projections $\varphi$, $W_m$, $W_r$, $W_\beta$, so that their outputs move by about the
# drift). A batch of random token embeddings runs through the stack with a random branch
# $\mathcal{F}$ per layer; each connection has `record=True`, so it keeps the $\mathcal{H}^{res}$
# it used for every token, and `gain_profile` turns those into the four curves.
# For HC the mixing that acts on the streams is $A_r(H)^\top$ (lesson 02).

# %%
print(gain_table(stack_profile, (0.1, 0.3, 1.0), depth=64, n=4, C=sizes["C"], batch=sizes["batch"], seq=sizes["seq"]))

# %% [markdown]
# Both ways tell the same story. HC's per-layer gains grow with the drift and its composite
# gains compound them over depth, into the thousands and far beyond at the larger drifts.
# mHC's forward gains are 1 to rounding at every layer and for every composite, because
# Sinkhorn–Knopp ends with a row normalisation and products of row-stochastic matrices are
# row-stochastic. mHC's backward
# gains read the columns, which carry the remaining Sinkhorn error: they stay close to 1
# rather than exactly at it.
#
# ### Widget: drift, n and depth
#
# Left panel HC, right panel mHC, on one log-scale axis. Dotted: each layer's own gain;
# thick: the composite up to that layer; blue forward (row sums), orange backward (column
# sums). Switch between the modules and the drifted mappings, move the drift (log scale), the
# number of streams and the depth.
#
# **What you should see:** with a small drift both panels stay near 1. As the drift grows,
# HC's per-layer curves rise above 1 and its composite curves climb in an almost straight line
# on the log axis: an exponential in depth, steeper for larger n. mHC's curves stay flat near
# 1 at every setting; the composite backward curve moves only slightly away from 1 at the
# largest drifts (the paper's figures show the same contrast on a trained model).

# %%
from mhc_course.viz.mhc_layer import depth_gain_widget

fig = depth_gain_widget(drift=0.3, n=4, depth=64, source="modules", **sizes)

# %% [markdown]
# ## Where DeepSeek's released code differs
#
# DeepSeek published a plain-torch reference of its mHC kernels. It is the same layer,
# but written differently in four places. `mhc_course.variants` re-implements those choices
# from their description so that we can measure them (the paper's formulation is
# `mhc_course.mhc`; nothing in the course's model uses the variants):
#
# 1. **One packed projection** `fn` of shape $(n^2+2n, nC)$ with the RMSNorm weight folded
#    in ($\mathrm{fn}\cdot\mathrm{diag}(w)$): a reparameterisation of $\varphi$.
# 2. **`pre = σ(·) + eps`** instead of $\sigma(\cdot)$.
# 3. **Sinkhorn starts from a row softmax plus eps**, then a column step, then
#    $t_{max} - 1$ times a row step and a column step, each dividing by (sum + eps). It ends
#    on a column step: its columns are exact and its rows carry the error, the opposite of
#    the paper's iteration.
# 4. **`comb` is applied transposed**: $x_{l+1}[j] = \sum_i \mathrm{comb}[i,j]\,x_l[i] + \dots$,
#    so the matrix acting on the streams, the paper's $\mathcal{H}^{res}$, is
#    $\mathrm{comb}^\top$.
#
# (The release also collapses the streams for the output head with a learned sigmoid mix;
# that happens outside the layer and is not measured here.)
#
# The eps values are arguments; we use 1e-6 for each. `to_released` converts the paper's
# $(\varphi, b, \alpha)$ into the release's layout (transposing the $n^2$ res logits, since
# comb is applied transposed). First the whole layer: same parameters, same input, with the
# two extra eps terms (in `pre` and in Sinkhorn) as released, then set to 0. The RMSNorm eps
# is the same in both.

# %%
from mhc_course.variants import (
    acting_matrices,
    released_coefficients,
    released_post_res,
    released_sinkhorn,
    to_released,
)

drifted = connection_stack("mhc", 1, n, C, drift=1.0, seed=5)[0]
x5 = torch.randn(B, T, n, C, dtype=torch.float64)
fn_r, scale_r, base_r = (t.detach() for t in to_released(drifted.phi, drifted.bias, drifted.alpha))
p_paper, q_paper, r_paper = (t.detach() for t in drifted.coefficients(x5))
want = mhc_post_res(x5, F(mhc_pre(x5, p_paper)), q_paper, r_paper)
for eps in (1e-6, 0.0):
    pre_r, post_r, comb = released_coefficients(x5, fn_r, scale_r, base_r, pre_eps=eps, sinkhorn_eps=eps)
    got = released_post_res(x5, F(mhc_pre(x5, pre_r)), post_r, comb)
    print(f"eps {eps:g}: max |H_pre diff| {(pre_r - p_paper).abs().max():.2e}, max |combᵀ − H_res| "
          f"{(comb.mT - r_paper).abs().max():.2e}, max |x_next diff| {(got - want).abs().max():.2e}")

# %% [markdown]
# With the extra eps at 0 the released formulation computes the paper's layer to float64 rounding:
# read in the orientation it is applied in, its Sinkhorn is the paper's, column step first
# (the softmax normalises what becomes a column of $\mathrm{comb}^\top$), row step last, $t_{max}$
# pairs. So the transpose (difference 4) undoes the reversed order (difference 3). With the
# eps terms, `pre` moves by exactly the eps and the rest by small amounts (printed above).
#
# **The difference in $\mathcal{H}^{res}$ after $t_{max} = 20$.** Over many drifted logit
# matrices, compare the paper's $\mathcal{H}^{res}$ with: the release's Sinkhorn on the same
# logits in the same orientation (what you get by copying the function without the
# transpose); the release as applied (transposed); the same without the eps added after the
# softmax (`floor`), and without any eps.

# %%
n_mats = pick(ci=256, default=4096)
gen = torch.Generator().manual_seed(0)
print(f"{'drift':>5} | {'same orientation':>16} {'as released':>12} {'no floor eps':>12} {'no eps':>9} "
      f"| {'paper: 20 vs 200 iters':>22} | {'share of softmax entries < floor':>32}")
for drift in (0.0, 0.5, 1.0, 2.0, 4.0):
    L = identity_logits(n).double() + drift * torch.randn(n_mats, n, n, generator=gen, dtype=torch.float64)
    paper = sinkhorn_knopp(L)
    diffs = [released_sinkhorn(L), released_sinkhorn(L.mT).mT, released_sinkhorn(L.mT, floor=0.0).mT,
             released_sinkhorn(L.mT, eps=0.0).mT, sinkhorn_knopp(L, 200)]
    d = [(m - paper).abs().amax() for m in diffs]
    below = (torch.softmax(L.mT, dim=-1) < 1e-6).double().mean()
    print(f"{drift:>5} | {d[0]:16.2e} {d[1]:12.2e} {d[2]:12.2e} {d[3]:9.2e} | {d[4]:22.2e} | {below:32.2%}")

# %% [markdown]
# Read the table from your output (each entry is the largest entry-wise difference over all
# matrices). At the identity initialisation the logits are already doubly stochastic after
# $\exp$, so only the eps terms make a difference. As the drift grows, reading the same
# logits in the same orientation differs by roughly as much as the paper's own 20 iterations
# differ from 200 (last column): both are the unconverged Sinkhorn error, since ending on rows
# or on columns stops at a different point along the way. As released (transposed), the
# difference stays far smaller at small and moderate drifts; removing the eps added after the
# softmax (`floor`) removes most of what is left, and removing every eps brings it to
# rounding. At the largest drift the as-released column catches up with the orientation
# column, or passes it: logits that far apart give softmax entries below the floor (last
# column), the floor lifts them, and 20 iterations are not enough to settle again. So the eps terms matter only
# where $\tilde{\mathcal{H}}^{res}$ has logits spread far apart, and there mostly through the
# floor.
#
# **Rows exact vs columns exact.** The forward gain reads the rows of the acting matrix and the
# backward gain its columns. `acting_matrices` gives the acting matrix three ways: paper, as
# released (transposed), and the release's Sinkhorn without the transpose. Over a 64-layer
# stack of drifted logits:

# %%
from mhc_course import gain_profile, sinkhorn_error

tok = sizes["tokens"]
for drift in (1.0, 4.0):
    L = identity_logits(n).double() + drift * torch.randn(64, tok, n, n, generator=gen, dtype=torch.float64)
    print(f"drift {drift}: {'':>25} {'max|row−1|':>10} {'max|col−1|':>10} | {'layer fwd':>9} {'layer bwd':>9} | "
          f"{'comp fwd':>9} {'comp bwd':>9}")
    for name, m in acting_matrices(L).items():
        row_err, col_err = (e.max().item() for e in sinkhorn_error(m))
        g = gain_profile(m)
        print(f"  {name:<33} {row_err:10.2e} {col_err:10.2e} | {g['layer_fwd'].mean():9.6f} "
              f"{g['layer_bwd'].mean():9.6f} | {g['composite_fwd'][-1]:9.6f} {g['composite_bwd'][-1]:9.6f}")

# %% [markdown]
# What the measurement shows: in the paper and as released, the rows of the acting matrix are
# exact (to rounding, or to about the eps for the release), so the forward gain is 1 per layer
# and the composite forward gain stays at 1, just under it for the release, where every row
# sums to a hair less than 1. The backward gains carry the Sinkhorn error, above 1 per layer,
# and their composites agree closely between paper and release. Without the transpose the
# roles swap: the forward gain carries the error and the backward gain is the exact one. In
# every case the composite gains stay close to 1 over 64 layers; what changes is which
# direction is exact.

# %% [markdown]
# ## Exercises
#
# **Exercise 5.1 (the norm after the matmul).** In its kernels the paper (§4.3) moves the RMSNorm
# division after the projection: with $r = \sqrt{\tfrac{1}{nC}\sum_k v_k^2 + \epsilon}$ per
# token, $\tilde{\mathcal{H}} = \tfrac{1}{r}\,\alpha \odot (v\varphi) + b$. Write
# `coefficient_logits(x, phi, bias, alpha)` that way, for any leading dims: multiply the raw
# flattened $v$ by $\varphi$ first, then divide by $r$ (eps $= 10^{-6}$), scale each group by
# its $\alpha$, add $b$. Return $(\tilde{\mathcal{H}}^{pre}, \tilde{\mathcal{H}}^{post},
# \tilde{\mathcal{H}}^{res})$ with shapes $(\dots, n)$, $(\dots, n)$, $(\dots, n, n)$.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l05_mhc_layer import (
    check_acting_gains,
    check_coefficient_logits,
    check_post_res,
    solution_acting_gains,
    solution_coefficient_logits,
    solution_post_res,
)


def coefficient_logits(x: torch.Tensor, phi: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor):
    raise NotImplementedError


check_coefficient_logits(coefficient_logits)

# %% [markdown]
# **Exercise 5.2 (the post/res update).** Write `post_res(x, f, h_post, h_res)`:
# $x_{next}[i] = \sum_j \mathcal{H}^{res}[i, j]\, x[j] + \mathcal{H}^{post}[i]\, f$ for x
# $(\dots, n, C)$, f $(\dots, C)$, h_post $(\dots, n)$, h_res $(\dots, n, n)$.

# %%
def post_res(x: torch.Tensor, f: torch.Tensor, h_post: torch.Tensor, h_res: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_post_res(post_res)

# %% [markdown]
# **Exercise 5.3 (gains of the transposed mixing).** The release applies `comb` transposed.
# Given `comb` $(\dots, n, n)$, return the (forward, backward) Amax gains, each of shape
# $(\dots)$, of the mixing that actually acts on the streams. You may use
# `mhc_course.amax_gain`.

# %%
def acting_gains(comb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raise NotImplementedError


check_acting_gains(acting_gains)

# %% [markdown]
# The reference solutions, checked in CI, so you can compare once you are done:

# %%
for solution in (solution_coefficient_logits, solution_post_res, solution_acting_gains):
    print(show_solution(solution))
print(check_coefficient_logits(solution_coefficient_logits))
print(check_post_res(solution_post_res))
print(check_acting_gains(solution_acting_gains))

# %% [markdown]
# ## Recap
#
# - One mHC layer: flatten the token's $n$ streams, RMSNorm, one projection $\varphi$, gates
#   $\alpha$ and biases $b$, then $\sigma$, $2\sigma$ and Sinkhorn–Knopp for
#   $\mathcal{H}^{pre}$, $\mathcal{H}^{post}$, $\mathcal{H}^{res}$; the update is
#   $\mathcal{H}^{res}x + \mathcal{H}^{post\top}\mathcal{F}(\mathcal{H}^{pre}x)$.
# - `MHC` starts near a residual network: $\mathcal{H}^{res}$ close to $I$ through
#   `identity_logits`, $\mathcal{H}^{pre}$ reading one stream, $\mathcal{H}^{post} = 1$,
#   $\alpha = 0.01$.
# - Drifted away from that start, HC's composite gains explode with depth while mHC's stay near
#   1, with drifted matrices and with real connection modules alike: forward gains exactly 1,
#   backward gains carrying the small Sinkhorn error.
# - DeepSeek's released code reverses the Sinkhorn order and applies the result transposed;
#   together that is the paper's iteration. What remains are the eps terms, measurable mainly
#   where logits are spread far apart.
#
# Next: **06 · Fused kernels in Triton**, where the same layer is computed with as few trips
# to memory as possible.
