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
# # 01 · Residual connections
#
# Every mHC idea is about one thing: the **identity path** that a residual connection
# carries through a deep network. This lesson builds that path and measures what it does.
#
# **In this lesson you will**
# 1. stack many random layers three ways (no skip, post-norm residual, pre-norm residual);
# 2. measure, layer by layer, the size of the signal going forward and of the gradient coming
#    back, with real `torch` modules and autograd;
# 3. watch signals vanish or explode without a skip connection, and see why an identity path
#    fixes it;
# 4. see what the identity path is in equations, the object that Hyper-Connections (lesson 02)
#    widen and mHC constrains.

# %% [markdown]
# ## Three ways to stack a layer
#
# A sublayer $F_l$ (attention or an MLP) maps a vector $h \in \mathbb{R}^C$ to another. We
# stack $L$ of them in one of three ways:
#
# | placement | update | used by |
# | --- | --- | --- |
# | no skip | $h_{l+1} = F_l(h_l)$ | plain deep MLPs |
# | post-norm residual | $h_{l+1} = \mathrm{RMSNorm}\big(h_l + F_l(h_l)\big)$ | the original Transformer |
# | pre-norm residual | $h_{l+1} = h_l + F_l\big(\mathrm{RMSNorm}(h_l)\big)$ | GPT-2 and most LLMs since |
#
# with $\mathrm{RMSNorm}(h) = w \odot h \,/\, \sqrt{\tfrac1C \sum_i h_i^2 + \epsilon}$ ($w$ is a
# learned weight, all ones at initialisation).
#
# **Why the skip matters.** Unroll the pre-norm update:
#
# $$h_L = h_0 + \sum_{l=0}^{L-1} F_l\big(\mathrm{RMSNorm}(h_l)\big), \qquad
# \frac{\partial h_L}{\partial h_l}
# = \prod_{k=l}^{L-1}\Big(I + \frac{\partial F_k(\mathrm{RMSNorm}(h_k))}{\partial h_k}\Big)
# = I + \cdots$$
#
# The input reaches the output unchanged, and the gradient reaching layer $l$ always contains
# the identity term $I$: it cannot vanish however deep the stack. Without a skip the Jacobian
# is a bare product $\prod_k \partial F_k/\partial h_k$; if each factor scales a vector by about
# $g$, the product scales it by about $g^{L-l}$: lesson 00's compounding, now in both
# directions. Post-norm keeps a skip, but divides it at every layer:
#
# $$h_{l+1} = \frac{h_l + F_l(h_l)}{\mathrm{rms}(h_l + F_l(h_l))}
# \quad\Longrightarrow\quad h_0 \text{ reaches } h_L \text{ with weight }
# \prod_{l} \frac{1}{\mathrm{rms}(h_l + F_l(h_l))}.$$

# %% [markdown]
# ## The stack we measure
#
# Each sublayer is a `RandomBranch`: an MLP $F(h) = W_\text{out}\,\mathrm{relu}(W_\text{in} h)$
# with Gaussian weights (or a single linear map). $W_\text{in}$ has the He scale that keeps the
# size of a random input through the ReLU; the **init gain** $g$ scales $W_\text{out}$, so one
# branch multiplies the RMS of a random input by about $g$. `build_stack` wraps $L$ branches
# with `NoSkip`, `PostNormResidual` or `PreNormResidual` (the last two from
# `mhc_course.residual`). The same seed gives the same branches whatever the placement, so the
# three stacks differ only in where the skip and the norm sit. We work in float64: a stack
# without a skip overflows float32 within a few hundred layers.

# %%
import torch

from mhc_course import pick
from mhc_course.propagation import PLACEMENTS, build_stack, identity_path_weight, propagation_profile

C = pick(ci=32, default=64)
BATCH = pick(ci=8, default=16)
print(f"width C = {C}, batch = {BATCH} random input vectors")
print(build_stack("pre-norm", 2, C, gain=1.0))

# %% [markdown]
# `propagation_profile` builds a stack, feeds it a standard normal batch $h_0$, keeps every
# $h_l$, and backpropagates the loss $\langle r, h_L\rangle$ for a fixed random readout $r$
# scaled so that the gradient at the output has RMS exactly 1. It returns the RMS of every
# $h_l$ and of every $\partial\,\text{loss}/\partial h_l$ (autograd computes them all in one
# backward pass; Exercise 1.3 asks you to write it).

# %%
depths = pick(ci=(8, 32), default=(16, 64, 256))
header = "".join(f"{f'L={d}: out RMS':>16}{'in grad RMS':>13}" for d in depths)
print(f"{'placement':<10} {'gain':>5} {header}")
for placement in PLACEMENTS:
    for gain in (0.5, 1.0, 2.0):
        row = ""
        for d in depths:
            p = propagation_profile(placement, d, gain, C=C, batch=BATCH)
            row += f"{p['act_rms'][-1].item():>16.3g}{p['grad_rms'][0].item():>13.3g}"
        print(f"{placement:<10} {gain:>5} {row}")

# %% [markdown]
# Read the table row by row: "out RMS" is the size of $h_L$ (the input has RMS about 1) and
# "in grad RMS" the size of the gradient that reaches the input $h_0$ (the output's is 1).
#
# - **No skip**: with $g < 1$ both shrink geometrically with depth, with $g > 1$ both blow up,
#   and even the variance-preserving $g = 1$ wanders away from 1 as the random factors
#   multiply. The deeper the stack, the more extreme.
# - **Post-norm**: the forward signal is exactly 1 by construction (every layer ends with a
#   norm). The gradient reaching the input drifts away from 1 as the stack gets deeper, far
#   less than without a skip, but it is not held near 1.
# - **Pre-norm**: the signal grows with depth, and the gradient at the input is larger than at
#   the output by a similar factor, but slowly: nothing like the geometric growth without a
#   skip.

# %% [markdown]
# ## The widget: depth, init gain, placement
#
# Left: the forward RMS of $h_l$ after each layer. Right: the RMS of the gradient
# $\partial\,\text{loss}/\partial h_l$ flowing back to each layer (read it right to left: it
# starts at 1 at the output). Both on a log scale. The *branch* menu switches between MLP and
# single linear-map branches.
#
# It starts with a gain below 1, $g = 1/\sqrt2$.
#
# **What you should see:**
# - *no skip* (red) is a straight line on the log scale whose slope follows $\log g$: down for
#   $g < 1$, up for $g > 1$, and the gradient mirrors it from the other end. Push depth to 256
#   and gain to 2 or 0.5 to see tens of orders of magnitude.
# - *pre-norm* (green) rises gently, forward and backward, at any depth and gain: a curve, not
#   a straight line on the log scale. The identity path carries both the signal and the
#   gradient.
# - *post-norm* (blue) is flat at 1 going forward, whatever the gain; its gradient wanders,
#   less than no skip, more than you might expect from a flat forward signal.

# %%
from mhc_course.viz.residual import propagation_widget

box = propagation_widget(depth=pick(ci=16, default=64), gain=2**-0.5, C=C, batch=BATCH)

# %% [markdown]
# ## Why pre-norm grows like $\sqrt{L}$, not like $g^L$
#
# In a pre-norm stack each branch sees a normalised input, so its output has RMS about $g$
# whatever the size of $h_l$; it is also nearly uncorrelated with $h_l$. Adding nearly
# orthogonal vectors adds their squared sizes:
#
# $$\mathrm{rms}(h_l)^2 \approx 1 + l\,g^2 .$$
#
# Growth like $\sqrt{l}$ instead of $g^l$. Real models finish with one more RMSNorm before the
# output head, which removes this growth from the logits; our readout has no final norm, so
# that you see $h_L$ itself. The check below compares the measurement with the estimate.

# %%
deepest = depths[-1]
for gain in (0.5, 1.0, 2.0):
    measured = propagation_profile("pre-norm", deepest, gain, C=C, batch=BATCH)["act_rms"][-1].item()
    estimate = (1 + deepest * gain**2) ** 0.5
    print(f"pre-norm, L = {deepest}, gain {gain}: measured RMS {measured:.3g}, "
          f"estimate sqrt(1 + L·g²) = {estimate:.3g}")

# %% [markdown]
# ## Post-norm divides its identity path at every layer
#
# Post-norm keeps the forward signal at RMS 1, but the price is in the equation above: the
# skip path is divided by $\mathrm{rms}(h_l + F_l(h_l)) > 1$ at every layer, so the part of $h_0$
# that reaches $h_L$ *along the skip alone* shrinks geometrically. `identity_path_weight`
# multiplies those factors out. A pre-norm stack keeps weight 1 at every depth; no skip has 0.
# Deep post-norm Transformers are known to need learning-rate warm-up to train stably
# (Xiong et al., "On Layer Normalization in the Transformer Architecture"), one reason most
# LLMs moved to pre-norm.

# %%
x0 = torch.randn(BATCH, C, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
for gain in (0.5, 1.0):
    weights = {p: identity_path_weight(build_stack(p, deepest, C, gain), x0) for p in PLACEMENTS}
    print(f"gain {gain}: weight of h_0 in h_L along the skip, L = {deepest}: "
          + ", ".join(f"{p} {w[-1].item():.3g}" for p, w in weights.items()))

# %% [markdown]
# ## From one stream to many
#
# Write the residual update as $h_{l+1} = 1\cdot h_l + 1\cdot F_l(1\cdot h_l)$: three
# coefficients that are all exactly 1, the read-in, the write-back and the identity path.
# Hyper-Connections (lesson 02) widen $h$ into $n$ parallel streams and turn each coefficient
# into a learned matrix; the identity path becomes a product of $n\times n$ matrices over
# depth, which can grow like the no-skip stack above. mHC (lessons 03–05) keeps that product
# bounded.

# %% [markdown]
# ## Exercises
#
# **Exercise 1.1.** Write RMSNorm without its weight: divide each vector along the last
# dimension by $\sqrt{\mathrm{mean}(h^2) + \epsilon}$. The check compares with
# `torch.nn.functional.rms_norm`.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l01_residual import (
    check_activation_and_gradient_rms,
    check_residual_update,
    check_rms_norm,
    solution_activation_and_gradient_rms,
    solution_residual_update,
    solution_rms_norm,
)


def rms_norm(h: torch.Tensor, eps: float) -> torch.Tensor:
    raise NotImplementedError


check_rms_norm(rms_norm)

# %% [markdown]
# **Exercise 1.2.** Write one layer of each kind of stack. `sublayer` is the branch $F$,
# `norm` an `nn.RMSNorm` (with a random weight, so it matters where you apply it) and
# `placement` one of `"none"`, `"post-norm"`, `"pre-norm"`. The check compares with
# `NoSkip`, `PostNormResidual` and `PreNormResidual`.

# %%
def residual_update(h: torch.Tensor, sublayer, norm, placement: str) -> torch.Tensor:
    raise NotImplementedError


check_residual_update(residual_update)

# %% [markdown]
# **Exercise 1.3.** Measure a stack the way `propagate` does. Run `x` through every block,
# keeping $h_0 = x$ (with gradients enabled) and every $h_l$; take
# $\text{loss} = \sum r \odot h_L$ with the given `readout` $r$; use
# `torch.autograd.grad(loss, hs)` to get $\partial\,\text{loss}/\partial h_l$ for every $l$ at
# once. Return two tensors of length $L+1$: the RMS of each $h_l$ and of each gradient
# (`mhc_course.metrics.rms` computes an RMS).

# %%
def activation_and_gradient_rms(blocks, x: torch.Tensor, readout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    raise NotImplementedError


check_activation_and_gradient_rms(activation_and_gradient_rms)

# %% [markdown]
# The reference solutions, checked in CI:

# %%
for solution in (solution_rms_norm, solution_residual_update, solution_activation_and_gradient_rms):
    print(show_solution(solution))
print(check_rms_norm(solution_rms_norm))
print(check_residual_update(solution_residual_update))
print(check_activation_and_gradient_rms(solution_activation_and_gradient_rms))

# %% [markdown]
# ## Recap
#
# - Without a skip, a deep stack multiplies the signal, and the gradient on its way back, by
#   a product of per-layer factors: geometric vanishing or explosion.
# - A residual connection adds an identity path: $\partial h_L/\partial h_l = I + \cdots$. With
#   pre-norm the identity path is untouched, so depth only makes the signal grow like
#   $\sqrt{L}$.
# - Post-norm keeps the forward signal at 1, but divides its identity path at every layer.
# - The identity path is a coefficient fixed at 1. Lesson 02 makes it a learned $n\times n$
#   matrix per layer, and the product over depth is no longer guaranteed to stay near 1.
#
# Next: **02 · Hyper-Connections**.
