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
# # 00 · Start here
#
# This course teaches DeepSeek's **mHC: Manifold-Constrained Hyper-Connections**
# (arXiv 2512.24880) from first principles, one idea per lesson, each backed by the tested
# package `mhc_course`.
#
# **In this lesson you will**
# 1. learn how a lesson is laid out and how to run it;
# 2. see the course map;
# 3. check that your machine is ready (the *doctor*);
# 4. use a first widget and see why a per-layer gain slightly above or below 1 is a problem
#    across many layers, the problem mHC solves.

# %% [markdown]
# ## How a lesson works
#
# - Run the cells from top to bottom (**Run → Run All Cells** in JupyterLab). No cell depends
#   on a cell below it.
# - **Widgets** (sliders, dropdowns) redraw a figure in place. When a notebook runs without a
#   browser, as in CI, each widget also leaves a static copy of its figure.
# - **Exercises** ask you to fill in a function whose body starts as
#   `raise NotImplementedError`. The cell below it calls a `check_…` function that runs your
#   code on fresh random inputs and tells you what is right, what is wrong, and a hint.
#   Stuck? `print(show_solution(solution_…))` prints the reference answer.
# - **Sizes** come from one switch, the environment variable `MHC_COURSE_PROFILE`: `ci`
#   (tiny, for the test suite), `default` (a laptop CPU, minutes at most) or `gpu` (full sizes).
# - Every number the text quotes is computed by a cell of the same lesson.

# %%
import mhc_course
from mhc_course import profile
from mhc_course.course import course_map
from mhc_course.doctor import report, run_checks

print(f"mhc_course {mhc_course.__version__}, profile: {profile()}")

# %% [markdown]
# ## The course map
#
# Residual connections → Hyper-Connections → doubly stochastic matrices → Sinkhorn–Knopp →
# the mHC layer → fused Triton kernels → memory and recomputation → a training run.

# %%
for row in course_map():
    print(f"{row['lesson']}  {row['title']:<36} {row['idea']}")
    print(f"    {row['notebook']}")

# %% [markdown]
# ## Is this machine ready?
#
# The doctor checks versions, the device and the Triton mode. On a machine without a CUDA
# GPU the Triton kernels run in Triton's interpreter (slowly, float32 only) and the lessons
# show GPU timings from committed benchmark results instead of measuring them live. The same
# report comes from `mhc-course doctor` in a terminal; paste it into any bug report.

# %%
checks = run_checks()
print(report(checks))
failed = [c.name for c in checks if c.status == "FAIL"]
print("ready" if not failed else f"fix these before going on: {failed}")

# %% [markdown]
# ## A first widget: gains compound
#
# A deep network applies one layer after another. Suppose each layer multiplies the size of
# its input by a gain $g$. After $L$ layers the size is $g^L$: a gain a little above 1
# explodes and a little below 1 vanishes, and the deeper the network, the smaller the
# deviation that matters. Move the sliders.
#
# **What you should see:** with $g = 1$ the curve is flat at 1; any other $g$ bends away,
# exponentially, on this log scale a straight line whose slope is $\log g$.

# %%
from mhc_course.viz.compounding import compounding_curves, compounding_widget

fig = compounding_widget(depth=64, gain=1.05)

# %%
for g in (0.95, 1.01, 1.05):
    end = compounding_curves(64, g)["gain"][-1]
    print(f"gain {g} per layer for 64 layers → {end:.3g}× the input")

# %% [markdown]
# The residual connection (lesson 01) keeps an identity path whose gain is exactly 1.
# Hyper-Connections (lesson 02) replace that identity with learned mixing matrices, and the
# product of many matrices behaves like $g^L$ above: it can reach the thousands. mHC (lessons
# 03–05) constrains each matrix to be doubly stochastic, so the product stays near 1.

# %% [markdown]
# ## Exercises
#
# **Exercise 0.1.** Given a tensor of per-layer gains, return the total gain after all of
# them.

# %%
import torch

from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l00_start import (
    check_composite_gain,
    check_doubling_depth,
    solution_composite_gain,
    solution_doubling_depth,
)


def composite_gain(gains: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError


check_composite_gain(composite_gain)

# %% [markdown]
# **Exercise 0.2.** With the same gain $g > 1$ at every layer, after how many layers has the
# signal doubled? Return the smallest whole $L$ with $g^L \ge 2$.

# %%
def doubling_depth(gain: float) -> int:
    raise NotImplementedError


check_doubling_depth(doubling_depth)

# %% [markdown]
# The reference solutions, checked in CI, so you can compare once you are done:

# %%
print(show_solution(solution_composite_gain))
print(show_solution(solution_doubling_depth))
print(check_composite_gain(solution_composite_gain))
print(check_doubling_depth(solution_doubling_depth))

# %% [markdown]
# ## Recap
#
# - Run lessons top to bottom; widgets redraw in place; exercises check your code and hint.
# - `MHC_COURSE_PROFILE` sizes everything; `mhc-course doctor` checks the machine.
# - A per-layer gain $g$ becomes $g^L$ over $L$ layers. Keeping the identity path's gain at
#   exactly 1 while still letting streams mix is what the rest of the course builds.
#
# Next: **01 · Residual connections**.
