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
# # 04 · Sinkhorn–Knopp
#
# Lesson 03 showed what a doubly stochastic $H^{\text{res}}$ buys. A network produces
# unconstrained numbers, though: mHC computes logits $\tilde H^{\text{res}}$ from the token and
# turns them into a doubly stochastic matrix with the Sinkhorn–Knopp iteration. This lesson
# takes that iteration apart.
#
# **In this lesson you will**
# 1. run the algorithm and see that it only rescales rows and columns;
# 2. watch row and column errors against the number of iterations, and how the logit scale
#    (a temperature) sets the speed;
# 3. compare the exp and log domains, and run the iteration in bf16 and fp16 to see overflow,
#    underflow, the effect of an eps and each format's precision floor;
# 4. see why the order of the two normalisations decides which gain is exact, forward or
#    backward;
# 5. differentiate it two ways, unrolled autograd and the implicit function theorem, and
#    measure the gradient error against the number of iterations.

# %% [markdown]
# ## The algorithm
#
# Sinkhorn (1964) showed that a square matrix $A$ with positive entries can be brought to a
# doubly stochastic matrix $D_1 A D_2$ by positive diagonal matrices $D_1, D_2$, unique up to a
# scalar, and that alternately normalising rows and columns converges to it; Sinkhorn and
# Knopp (1967) settled exactly which non-negative matrices allow it. mHC (Eq. 9) runs
#
# $$M^{(0)} = \exp\big(\tilde H^{\text{res}}\big), \qquad
# M^{(t)} = \mathcal{T}_r\big(\mathcal{T}_c(M^{(t-1)})\big), \qquad
# H^{\text{res}} = M^{(t_{\max})},$$
#
# where $\mathcal{T}_c$ divides every column by its sum and $\mathcal{T}_r$ every row by its
# sum, with $t_{\max} = 20$. `sinkhorn_knopp` also subtracts the largest logit before the
# exponential, which changes nothing (a common factor cancels in the first division) and keeps
# $\exp$ from overflowing.
#
# Every step multiplies rows or columns by numbers, so $M^{(t)} = \operatorname{diag}(u_t)\,
# e^{\tilde H}\operatorname{diag}(v_t)$ for some positive vectors: the ratio $M^{(t)} \oslash
# e^{\tilde H}$ is the rank-one matrix $u_t v_t^\top$. Among all doubly stochastic matrices the
# limit is the one closest to $e^{\tilde H}$ in KL divergence, an *entropic projection* onto
# the Birkhoff polytope.

# %%
import torch

from mhc_course import pick, sinkhorn_error, sinkhorn_knopp, sinkhorn_knopp_log

n = 4
z = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
m = sinkhorn_knopp(z, 20)
row, col = sinkhorn_error(m)
print("H_res = sinkhorn_knopp(z, 20):\n", m.numpy().round(4))
print(f"row error {row.item():.1e}, column error {col.item():.1e}")
print("singular values of M ⊘ exp(z):", torch.linalg.svdvals(m / torch.exp(z)).numpy())

# %% [markdown]
# The last step normalised rows, so rows sum to 1 to rounding; columns carry what is left of
# the error. The ratio to $e^{z}$ has one non-zero singular value, up to rounding: it is rank
# one, a pure rescaling.
#
# ## Convergence against iterations, and the logit scale
#
# `sinkhorn_error_curve` records both errors after every iteration. Scaling the logits by $s$
# is the same as a temperature $\tau = 1/s$: large $s$ gives a peaked $e^{sz}$, small $s$ a
# nearly flat one. After a few iterations the error shrinks by a constant factor per
# iteration (a straight line on a log scale), and that factor is known: $\sigma_2(P)^2$, the
# squared second singular value of the limit $P$ (Knight, 2008), the same $\sigma_2$ that
# measured mixing in lesson 03. A limit close to a permutation matrix has $\sigma_2$ near 1
# and converges slowly.

# %%
from mhc_course.birkhoff import distance_from_uniform
from mhc_course.sinkhorn import convergence_rate, sinkhorn_converged, sinkhorn_error_curve
from mhc_course.viz.sinkhorn import error_curves_figure

curves = {}
for s in (0.5, 1.0, 2.0, 4.0):
    row, col = curves[f"logits × {s}"] = sinkhorn_error_curve(s * z, 100)
    sigma2 = distance_from_uniform(sinkhorn_converged(s * z)).item()
    print(f"logits × {s}: column error after 20 iterations {col[20].item():.2g}; error shrinks by "
          f"{convergence_rate(col):.4f} per iteration; σ₂(limit)² = {sigma2**2:.4f}")
error_curves_figure(curves, "Sinkhorn–Knopp on one 4×4 logit matrix at four scales", show_rows=True)

# %% [markdown]
# **What you should see:** solid column-error lines falling as straight lines, steeper for
# small scales, flattening at the rounding floor of float64; the dotted row errors stay at the
# floor from the first iteration on (rows are normalised last). The printed rates agree with
# $\sigma_2^2$ of each limit.
#
# ### Widget: the matrix and its errors as it iterates
#
# The same logits, scaled by the slider, iterated $t$ times in the chosen dtype. Left: the
# matrix $M^{(t)}$. Right: both error curves; the black crosses mark the $t$ on the left.
#
# **What you should see:** at $t = 0$ neither rows nor columns sum to 1; from $t = 1$ the row
# error drops to the dtype's rounding level and the column error falls steadily. Raise the
# logit scale: the matrix sharpens toward a permutation and convergence slows. In bfloat16
# and float16 the curves stop at a floor far above float64's; at large scales float16 turns
# the matrix into NaN (grey cells). The next sections explain each of these.

# %%
from mhc_course.viz.sinkhorn import sinkhorn_widget

fig = sinkhorn_widget(z, iters=20, scale=1.0, dtype="float32", max_iters=60)

# %% [markdown]
# ## Temperature: from $J/n$ to a permutation
#
# Divide the logits by $\tau$. As $\tau \to \infty$ every entry of $e^{z/\tau}$ tends to 1 and
# the limit to $J/n$. As $\tau \to 0$ the limit tends to the permutation matrix that
# maximises $\sum_i z_{i\sigma(i)}$, a vertex of the Birkhoff polytope: Sinkhorn–Knopp is a
# soft version of the assignment problem. The price is convergence: the colder, the slower.

# %%
from mhc_course.birkhoff import max_weight_permutation, permutation_matrix

best = max_weight_permutation(z)
cap = pick(ci=300, default=3000)
print(f"best permutation σ = {best.tolist()}; iterations capped at {cap}")
for tau in (10.0, 1.0, 0.3, 0.1, 0.03):
    row, col = sinkhorn_error_curve(z / tau, cap)
    m_tau = sinkhorn_knopp(z / tau, cap)
    hit = (col <= 1e-6).nonzero()
    needed = str(hit[0].item()) if len(hit) else f"> {cap}"
    print(f"τ = {tau:<5} max|M − P_σ| = {(m_tau - permutation_matrix(best)).abs().max().item():.3f}, "
          f"‖M − J/n‖₂ = {distance_from_uniform(m_tau).item():.3f}, column error at t = 20: "
          f"{col[20].item():.1e}, iterations to 1e-6: {needed}")

# %% [markdown]
# In mHC, $\tilde H^{\text{res}} = \alpha_{\text{res}}\,\mathrm{mat}(v'\varphi_{\text{res}}) +
# b_{\text{res}}$: the bias sets where the logits sit and the gate $\alpha_{\text{res}}$
# (small at initialisation) scales the token-dependent part. The course's `MHC` starts the
# bias at `identity_logits`: an identity-leaning matrix that is already doubly stochastic, so
# twenty iterations only have to absorb the small token-dependent perturbation.
#
# ## Exp domain and log domain
#
# `sinkhorn_knopp` works on $M$ itself. Subtracting the maximum rules out overflow, but not
# underflow: if every logit in a row (or column) lies far enough below the maximum, $\exp$
# returns 0 for the whole row, its sum is 0 and the next division produces $0/0 =$ NaN, which
# the following step spreads to every column. `sinkhorn_knopp_log` carries $\log M$ instead
# and divides by subtracting a logsumexp, which never underflows to an empty row:
#
# $$\log M \leftarrow \log M - \operatorname{logsumexp}_{i}(\log M), \qquad
# \log M \leftarrow \log M - \operatorname{logsumexp}_{j}(\log M).$$
#
# The cost is a max, an exp, a sum and a log per step instead of a sum and a division.

# %%
print(f"{'scale':>6}{'logit spread':>14}{'exp f32 NaN':>13}{'exp f64 NaN':>13}{'log f32: row err':>18}{'col err':>10}")
for s in (10, 30, 100, 300):
    logits = s * z
    nan32, nan64 = (str(sinkhorn_knopp(x).isnan().any().item()) for x in (logits.float(), logits))
    r, c = sinkhorn_error(sinkhorn_knopp_log(logits.float(), 20))
    spread = (logits.max() - logits.min()).item()
    print(f"{s:>6}{spread:>14.1f}{nan32:>13}{nan64:>13}{r.item():>18.1e}{c.item():>10.2f}")

# %% [markdown]
# The log domain stays finite where float32's exp domain returns NaN, but at those scales 20
# iterations are far from converged (the column error column): a huge logit spread is a very
# low temperature. mHC's logits are modest, which is why the paper, and its kernels, can run
# in the exp domain.
#
# ## bf16 and fp16
#
# Activations in mHC are bf16 and the paper computes the coefficients in fp32. What if the
# iteration itself ran in a 16-bit format? `sinkhorn_knopp_in_dtype` carries out the same
# steps with every result rounded to the chosen dtype, optionally adding an `eps` to every
# sum (as DeepSeek's release and Liger-Kernel do) and optionally skipping the max
# subtraction. Three things can go wrong, each set by a number of the format:

# %%
import math

print(f"{'dtype':<10}{'eps':>10}{'max':>11}{'exp overflows above':>21}{'exp underflows below':>22}")
for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
    fi = torch.finfo(dt)
    smallest = fi.smallest_normal * fi.eps  # the smallest subnormal
    print(f"{str(dt).removeprefix('torch.'):<10}{fi.eps:>10.2e}{fi.max:>11.2e}{math.log(fi.max):>21.1f}"
          f"{math.log(smallest):>22.1f}")

# %% [markdown]
# **Overflow.** Without the max subtraction, $\exp$ of a logit above the threshold is inf and
# $\infty/\infty$ is NaN. Shifting all logits by a constant does not change the answer at all,
# but it decides whether the exponential overflows. fp16's threshold is low; bf16 shares
# float32's exponent range.

# %%
from mhc_course.sinkhorn import sinkhorn_knopp_in_dtype

for shift in (10.0, 100.0):
    status = {str(dt).removeprefix("torch."): sinkhorn_knopp_in_dtype(z + shift, 20, dt, subtract_max=False)
              .isfinite().all().item() for dt in (torch.float32, torch.bfloat16, torch.float16)}
    safe = sinkhorn_knopp_in_dtype(z + shift, 20, torch.float16).isfinite().all().item()
    print(f"logits + {shift:g}, no max subtraction, finite? {status}; fp16 with max subtraction: {safe}")

# %% [markdown]
# **Underflow and eps.** Push one row of logits down by a constant. That multiplies a row of
# $e^{z}$ by a positive number, which the scaling $D_1$ absorbs: the limit does not change
# (the iterates on the way do, since the column step comes first). In fp16, though, the whole
# row's exponentials can fall below the smallest subnormal. With `eps = 0` the row becomes
# 0/0 = NaN and NaN spreads everywhere; with a small `eps` the division is defined, but the
# row stays at 0: that stream receives nothing from the identity path, its forward gain is 0
# instead of 1.
# Subtracting each *row's* maximum first (DeepSeek's release starts with a row softmax) saves
# rows, though not a column whose entries all lie far below their rows' maxima.

# %%
u = z.clone()
u[0] -= 20
print("float64: is the limit unchanged by the shift?",
      torch.allclose(sinkhorn_converged(u), sinkhorn_converged(z), rtol=0, atol=1e-12))
for dt, eps in ((torch.bfloat16, 0.0), (torch.float16, 0.0), (torch.float16, 1e-6)):
    out = sinkhorn_knopp_in_dtype(u, 20, dt, eps=eps).double()
    print(f"{str(dt).removeprefix('torch.'):<9} eps={eps:g}: NaN? {out.isnan().any().item()}, "
          f"row sums {out.sum(-1).numpy().round(4)}")
u_rows = u - u.amax(dim=-1, keepdim=True)
row_max = sinkhorn_knopp_in_dtype(u_rows, 20, torch.float16).double()
print(f"float16 after subtracting each row's max: row sums {row_max.sum(-1).numpy().round(4)}, "
      f"max |difference to the same in float64| {(row_max - sinkhorn_knopp(u_rows, 20)).abs().max().item():.1e}")

# %% [markdown]
# **Precision.** Even without overflow or underflow, a 16-bit format rounds every sum and
# quotient to a few significant bits. The error curves stop falling at a floor set by the
# format's machine epsilon, and the rows are exact only to that rounding:

# %%
dtype_curves = {}
for dt in (torch.float64, torch.float32, torch.bfloat16, torch.float16):
    name = str(dt).removeprefix("torch.")
    dtype_curves[name] = sinkhorn_error_curve(z, 60, dt)
    row, col = dtype_curves[name]
    print(f"{name:<9} smallest column error over 60 iterations {col.min().item():.1e}, row error after the "
          f"last step {row[-1].item():.1e}, machine eps {torch.finfo(dt).eps:.1e}")
error_curves_figure(dtype_curves, "The same iteration carried out in four dtypes", show_rows=True)

# %% [markdown]
# **What you should see:** all four column-error lines fall together at first, then bfloat16
# and float16 level off at their precision floor, float32 lower, float64 lowest; dotted row
# errors sit at each format's rounding level. Running the iteration in 16 bits buys nothing
# here and loses the double stochasticity to about the format's epsilon, which then compounds
# over depth. Keep the coefficients in float32, as the paper does.
#
# ## Which sums are exact: normalisation order and the two gains
#
# After $t_{\max}$ iterations the last step decides what is exact. With $\mathcal{T}_r$ last,
# every row sums to 1: the forward gain (max row sum) of each $H^{\text{res}}$ is exactly 1,
# and because products of row-stochastic matrices are row-stochastic, so is the forward gain
# of the whole composite over depth. The columns carry the remaining error $\varepsilon$, and
# column sums of a product can multiply, like $\prod_l (1 + \varepsilon_l)$: the backward gain
# (max column sum), which bounds how gradients grow, is where a finite $t_{\max}$ shows. Put
# $\mathcal{T}_c$ last and the roles swap. Below: drifted identity-leaning logits over 64 layers
# (a stand-in for a trained model, not the paper's run), iterated $t$ times.

# %%
from mhc_course.metrics import gain_profile
from mhc_course.mhc import identity_logits
from mhc_course.viz.sinkhorn import gain_order_figure

depth, tokens = 64, pick(ci=8, default=64)
drifted = identity_logits(n).double() + torch.randn(depth, tokens, n, n, dtype=torch.float64,
                                                    generator=torch.Generator().manual_seed(1))
profiles = {f"rows last, t = {t}": gain_profile(sinkhorn_knopp(drifted, t)) for t in (1, 3, 20)}
profiles["columns last, t = 1"] = gain_profile(sinkhorn_knopp(drifted.mT, 1).mT)  # T_r first, T_c last
for label, p in profiles.items():
    print(f"{label:<20} composite after {depth} layers: forward {p['composite_fwd'][-1].item():.6f}, "
          f"backward {p['composite_bwd'][-1].item():.6f}; per layer backward up to {p['layer_bwd'].max().item():.4f}")
gain_order_figure(profiles)

# %% [markdown]
# **What you should see:** with rows last, the forward gains (right) of all three runs lie on
# top of one another at exactly 1, while the backward gains (left) sit above 1, the more so
# the fewer the iterations; with columns last the picture flips. The paper reports the same
# asymmetry for trained models: per-layer gains near 1, composite column sums that drift.
#
# ## Gradients: unrolled or implicit
#
# **Unrolled.** Autograd differentiates through all $2t_{\max}$ divisions. That is the exact
# gradient of what the forward pass computed, but it needs every intermediate matrix: saved
# (Liger-Kernel keeps the history) or recomputed (the paper's kernel recomputes the
# iterations in its backward pass).
#
# **Implicit.** At the limit, $P = \exp(Z + f\mathbf{1}^\top + \mathbf{1}g^\top)$ with scalings
# $f, g$ such that $P\mathbf{1} = \mathbf{1}$ and $P^\top\mathbf{1} = \mathbf{1}$. Differentiate
# these constraints:
#
# $$\begin{pmatrix} I & P \\ P^\top & I \end{pmatrix}
# \begin{pmatrix} df \\ dg \end{pmatrix} = -\begin{pmatrix} (P \odot dZ)\mathbf{1} \\
# (P \odot dZ)^\top\mathbf{1} \end{pmatrix}.$$
#
# The matrix $H$ on the left is singular along $(\mathbf{1}, -\mathbf{1})$ (adding $c$ to $f$
# and $-c$ to $g$ changes nothing), which is harmless: with $A = G \odot P$ for the upstream
# gradient $G = \partial L/\partial P$, solve $H(\lambda, \mu) = (A\mathbf{1}, A^\top
# \mathbf{1})$, a consistent system, and
#
# $$\frac{\partial L}{\partial Z} = P \odot \big(G - \lambda\mathbf{1}^\top - \mathbf{1}\mu^\top\big).$$
#
# Only $P$ is needed and one $2n\times 2n$ solve, whatever the number of iterations.
# `sinkhorn_implicit_grad` implements this formula; `sinkhorn_knopp_implicit` wraps it as an
# autograd function whose forward runs to convergence. It is the gradient of the exact
# projection, not of the 20-step approximation mHC actually uses. First, agreement with many
# unrolled iterations in float64:

# %%
from mhc_course.sinkhorn import sinkhorn_knopp_implicit

batch, unroll = pick(ci=4, default=32), pick(ci=300, default=1000)
gen = torch.Generator().manual_seed(2)
zb = 1.5 * torch.randn(batch, n, n, dtype=torch.float64, generator=gen)
upstream = torch.randn(batch, n, n, dtype=torch.float64, generator=gen)
z_unrolled, z_implicit = zb.clone().requires_grad_(), zb.clone().requires_grad_()
(sinkhorn_knopp(z_unrolled, unroll) * upstream).sum().backward()
(sinkhorn_knopp_implicit(z_implicit) * upstream).sum().backward()
diff = (z_unrolled.grad - z_implicit.grad).abs().max().item()
print(f"{unroll} unrolled iterations (forward column error {sinkhorn_error(sinkhorn_knopp(zb, unroll))[1].max():.1e})")
print(f"max |unrolled − implicit| = {diff:.1e}, relative to max |gradient| {diff / z_implicit.grad.abs().max():.1e}")
print(f"row sums of ∂L/∂Z up to {z_implicit.grad.sum(-1).abs().max():.1e}, column sums up to "
      f"{z_implicit.grad.sum(-2).abs().max():.1e} (shifting a row or column of logits changes nothing)")
print("torch.autograd.gradcheck on the implicit function:",
      torch.autograd.gradcheck(sinkhorn_knopp_implicit, (zb[:2].clone().requires_grad_(),)))

# %% [markdown]
# **Gradient error against iterations.** Now compare, for each $t$, the unrolled gradient
# through $t$ iterations and the implicit formula applied to the unconverged $M^{(t)}$ with the
# gradient of the limit.

# %%
from mhc_course.sinkhorn import gradient_error_curve
from mhc_course.viz.sinkhorn import gradient_error_figure

grad_curve = gradient_error_curve(zb, upstream, pick(ci=25, default=60))
for t in (1, 5, 10, 20):
    unrolled, implicit, forward = (grad_curve[k][t - 1].item() for k in ("unrolled", "implicit", "column_error"))
    print(f"t = {t:>2}: unrolled {unrolled:.1e}, implicit at M^t {implicit:.1e}, forward column error {forward:.1e}")
gradient_error_figure(grad_curve)

# %% [markdown]
# **What you should see:** both gradient errors fall along with the forward error, at the
# same rate, until rounding. At the paper's $t_{\max} = 20$ the unrolled gradient differs from
# the limit's by the printed amount: small, and it is the true gradient of the function the
# network computes. The implicit gradient is the cheaper one to store; it is exact for the
# limit and approximate for a finite $t_{\max}$.

# %% [markdown]
# ## Exercises
#
# **Exercise 4.1.** Write one Sinkhorn–Knopp iteration $\mathcal{T}_r(\mathcal{T}_c(M))$ for
# a batch of positive matrices of shape $(\dots, n, n)$.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l04_sinkhorn import (
    check_iterations_needed,
    check_log_sinkhorn_step,
    check_sinkhorn_step,
    solution_iterations_needed,
    solution_log_sinkhorn_step,
    solution_sinkhorn_step,
)


def my_sinkhorn_step(m: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_sinkhorn_step(my_sinkhorn_step)

# %% [markdown]
# **Exercise 4.2.** The same step in the log domain: given $\log M$, return $\log$ of the
# matrix after one iteration, without ever forming $M$.

# %%
def my_log_sinkhorn_step(log_m: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_log_sinkhorn_step(my_log_sinkhorn_step)

# %% [markdown]
# **Exercise 4.3.** Return the smallest number of iterations $t \ge 0$ after which both errors
# of `sinkhorn_knopp(logits, t)` are at most `tol` (the largest over the batch).

# %%
def my_iterations_needed(logits: torch.Tensor, tol: float) -> int:
    raise NotImplementedError


check_iterations_needed(my_iterations_needed)

# %% [markdown]
# The reference solutions, checked in CI:

# %%
for solution in (solution_sinkhorn_step, solution_log_sinkhorn_step, solution_iterations_needed):
    print(show_solution(solution))
print(check_sinkhorn_step(solution_sinkhorn_step))
print(check_log_sinkhorn_step(solution_log_sinkhorn_step))
print(check_iterations_needed(solution_iterations_needed))

# %% [markdown]
# ## Recap
#
# - Sinkhorn–Knopp alternately divides columns and rows by their sums; it only rescales, and
#   its limit is the entropic projection of $e^{\tilde H}$ onto the Birkhoff polytope.
# - The error falls linearly, by $\sigma_2(P)^2$ per iteration: a large logit scale (low
#   temperature) pushes the limit toward a permutation and slows convergence.
# - The exp domain underflows whole rows into NaN at large logit spreads; the log domain does
#   not. In fp16 the thresholds are low; bf16 has float32's range but a coarse precision
#   floor; an eps trades NaN for a dropped stream. Keep the iteration in float32.
# - The last normalisation is exact: rows last means forward gain exactly 1 at every depth,
#   while the columns, and the backward gain, carry the error of a finite $t_{\max}$.
# - Unrolled autograd differentiates what was computed; the implicit gradient needs only $P$
#   and matches it as the iteration converges.
#
# Next: **05 · The mHC layer**, the paper's full formulation with $H^{\text{pre}}$,
# $H^{\text{post}}$ and $H^{\text{res}}$ computed from each token.
