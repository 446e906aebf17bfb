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
# # 07 · Memory, recomputation and scheduling
#
# mHC widens the residual stream from one vector of width $C$ per token to $n$ of them. The
# arithmetic it adds is small; the memory is not, because training keeps activations for the
# backward pass, layer after layer. The mHC paper (§4.3) pays for the $n$ streams with three
# systems choices: selective recomputation, mixed precision, and a scheduling change in its
# pipeline. This lesson measures all three on your machine, CPU included.
#
# **In this lesson you will**
# 1. measure, on any machine, the bytes autograd keeps for an $n$-stream stack, and account for
#    every one of them with a model;
# 2. run the paper's selective recomputation (keep $x_{l_0}$ every $L_r$ layers and $\mathcal{F}$'s
#    output every layer, recompute $x_l$), check that its gradients equal the plain stack's, and
#    measure its memory/time trade-off across $L_r$, with $L_r^* \approx \sqrt{nL/(n+2)}$ marked;
# 3. see which number format each part of the coefficients uses, and why the RMSNorm division
#    moves after the matmul;
# 4. see why the paper runs post/res on a high-priority CUDA stream.

# %% [markdown]
# ## What the backward pass needs
#
# One mHC layer maps the streams $x_l \in \mathbb{R}^{n\times C}$ of a token to
#
# $$x_{l+1} = \mathcal{H}^{res}_l x_l + \mathcal{H}^{post\,\top}_l f_l, \qquad
# f_l = \mathcal{F}_l(\mathcal{H}^{pre}_l x_l),$$
#
# with the three mappings computed from $x_l$ (lesson 05). Differentiating it needs $x_l$ itself
# ($\partial(\mathcal{H}^{res}x_l)/\partial\mathcal{H}^{res}$ and the coefficient path),
# $f_l$ (for $\partial/\partial\mathcal{H}^{post}$) and whatever the coefficients' own backward
# keeps. A plain residual layer $x + \mathcal{F}(x)$ keeps nothing for its addition; only the
# sublayer $\mathcal{F}$ keeps what it needs (call that $S$ values per token: its input, its
# norm, its hidden activations). Per token and layer, plain autograd through the reference
# `mhc_course.mhc` therefore keeps
#
# | policy (name in `mhc_course.memory_model`) | kept per token, per layer |
# | --- | --- |
# | residual, $n = 1$ (`"residual"`) | $S$ |
# | $n$ streams, plain autograd (`"stored"`) | $nC + nC + C + S + K(n, t_{max})$ |
#
# the two $nC$ being $x_l$ and the RMSNorm'd token, $C$ being $f_l$,
# and $K(n, t) = (2t+3)n^2 + (2t+5)n + 2$ counting the small tensors of the coefficient path:
# mostly the Sinkhorn–Knopp iterates, since each of the $2t_{max}$ divisions keeps its
# numerator and its sums (read `reference_coefficient_elements?` for the itemised count).
#
# **Measuring it on any machine.** `torch.autograd.graph.saved_tensors_hooks` calls a function
# for every tensor autograd saves. `mhc_course.memory.SavedTensors` uses it to add up the bytes
# of the distinct storages saved (views and tensors saved twice count once, parameters are left
# out). No GPU needed: it counts what *would* occupy memory on any device.

# %%
import torch

from mhc_course import pick, profile
from mhc_course.memory import StackRun, mlp_sublayer, sublayer_saved_elements
from mhc_course.memory_model import reference_coefficient_elements, saved_breakdown

device = "cuda" if torch.cuda.is_available() and profile() == "gpu" else "cpu"
sizes = pick(ci={"depth": 4, "n": 4, "C": 8, "hidden": 16, "tokens": 4},
             default={"depth": 12, "n": 4, "C": 64, "hidden": 128, "tokens": 32},
             gpu={"depth": 16, "n": 4, "C": 1024, "hidden": 2048, "tokens": 2048} if device == "cuda" else None)
L, n, C = sizes["depth"], sizes["n"], sizes["C"]
S = sublayer_saved_elements(mlp_sublayer(C, sizes["hidden"]), C)
print(f"profile {profile()}, device {device}: L = {L} layers, n = {n}, C = {C}, MLP sublayer with hidden "
      f"width {sizes['hidden']}, {sizes['tokens']} tokens")
print(f"S = {S} values per token saved by one MLP sublayer (measured); K(n={n}, t=20) = "
      f"{reference_coefficient_elements(n, 20)} values per token for the coefficient path")

for policy, streams in (("residual", 1), ("stored", n)):
    run = StackRun.build(policy, **{**sizes, "n": streams}, device=device)
    measured = run.saved_bytes() / sizes["tokens"] / 4
    parts = saved_breakdown(policy, depth=L, n=streams, C=C, sublayer=S)
    print(f"\n{policy:>8}: measured {measured:8.0f} values per token, model {sum(parts.values()):8.0f}")
    for name, value in parts.items():
        print(f"          {name:<26} {value:8d}")

# %% [markdown]
# The measured count equals the model's to the value. Two things stand out in the $n$-stream
# stack: the streams themselves and the RMSNorm'd copy of the token, each $nC$ per layer; and,
# at this width, the Sinkhorn iterates of plain autograd. The paper's kernels avoid both
# extras: the Sinkhorn backward recomputes its iterations on-chip, and moving the norm after the
# matmul (below) means the normalised token is never stored. What remains is $x_l$ and $f_l$ per layer, $(n+1)C$
# values per token: that is what selective recomputation attacks.

# %% [markdown]
# ## Selective recomputation
#
# Split the $L$ layers into groups of $L_r$ consecutive layers. For each group keep only its
# input streams $x_{l_0}$ ($nC$) and each layer's sublayer output $f_l$ ($C$). In the backward
# pass, rebuild the group's streams from those, with the update itself:
#
# $$x_{l+1} = \mathcal{H}^{res}(x_l)\,x_l + \mathcal{H}^{post}(x_l)^\top f_l, \qquad l = l_0, \dots, l_0 + L_r - 2,$$
#
# recomputing only the cheap coefficients and post/res, never the sublayers (their outputs are
# stored). Then go back through the group layer by layer: rebuild layer $l$'s small graph
# from $x_l$, take $\partial L/\partial f_l$, run the sublayer's own backward (its graph was kept
# from the forward pass, so its parameters get their gradients), and pass $\partial L/\partial x_l$
# to the layer below.
#
# `mhc_course.recompute` implements this as an autograd Function over one group
# (`recompute_group`) and `run_recomputed(x, conns, layers, group_size)` for a whole stack;
# `MHCStack(sublayers, n, C, group_size=…)` wraps it as a module. It uses the reference
# functions of `mhc_course.mhc`, so it runs on any device. First, is it exact? Compare it with
# the plain stack in float64 on fresh random inputs, for a few group sizes:

# %%
from mhc_course.recompute import MHCStack, default_group_size, gradient_gap

torch.manual_seed(0)
depth_check = pick(ci=4, default=8)
stack = MHCStack([mlp_sublayer(16, 32) for _ in range(depth_check)], n, 16, recompute=False).double()
with torch.no_grad():
    for p in stack.parameters():
        p.add_(0.3 * torch.randn_like(p))  # move every parameter away from its initialisation
x_check = torch.randn(3, 5, n, 16, dtype=torch.float64)
w_check = torch.randn_like(x_check)
for g in sorted({1, default_group_size(n, depth_check), depth_check}):
    gap = gradient_gap(stack, x_check, w_check, group_size=g)
    print(f"L_r = {g}: max |Δ| output {gap['output']:.1e}, dL/dx {gap['input_grad']:.1e}, "
          f"over {gap['parameters']} parameter gradients {gap['parameter_grads']:.1e}")

# %% [markdown]
# The differences are at float64 rounding or exactly zero: the recomputed $x_l$ are the same
# numbers the forward pass produced (same operations, same order), so the backward pass sees
# what it would have stored.
#
# **How large should a group be?** Per token the recompute policy keeps
# $\lceil L/L_r\rceil\, nC$ for the group inputs, $LC$ for the $f_l$ and $LS$ for the
# sublayers. During the backward pass, recomputing one group holds its streams at once. The
# paper counts $(n+2)C$ per recomputed layer ($x_l$, $\mathcal{H}^{pre}x_l$ and its RMSNorm,
# the sublayer's normalised input) and minimises
#
# $$M(L_r) = nC\,\frac{L}{L_r} + (n+2)C\,L_r \quad\Longrightarrow\quad
# L_r^* = \sqrt{\frac{nL}{n+2}},$$
#
# choosing group boundaries that match its pipeline stages. **A difference from the paper:**
# here each sublayer keeps its own graph from the forward pass, its input $\mathcal{H}^{pre}x_l$
# and norm included (they are inside $S$), so only $nC$ per layer is recomputed and the same
# argument gives $\sqrt{L}$. `memory_model.recompute_peak_elements` adds the exact discrete
# accounting: groups are processed last to first, a shorter last group is processed while
# everything else is still kept, and the gradient arriving at a group takes $nC$.

# %%
from mhc_course.memory_model import continuous_optimum

for depth in (12, 30, 60):
    print(f"L = {depth:>2}, n = 4: paper's L_r* = {continuous_optimum(4, depth, 6):.2f}, rounded "
          f"{default_group_size(4, depth)}; √L = {continuous_optimum(4, depth, 4):.2f}")

# %% [markdown]
# ### Measured against the model
#
# `sweep_group_sizes` builds the residual stack, the plain $n$-stream stack and the recompute
# stack at several $L_r$, and measures for each: the bytes kept after the forward pass
# (`SavedTensors`), the peak bytes over forward + backward (`PeakLiveBytes`: a
# `TorchDispatchMode` that follows every storage from the op that creates it until it is
# freed, the CPU stand-in for `torch.cuda.max_memory_allocated`, which is read too on a GPU),
# and the forward + backward wall time, the fastest of a few interleaved runs on one CPU
# thread (on a shared machine, one thread is far less disturbed by other work).

# %%
from mhc_course.memory import sweep_group_sizes
from mhc_course.viz.memory import sweep_table

group_sizes = pick(ci=[1, 2, 4], default=[1, 2, 3, 4, 5, 6, 8, 12], gpu=[1, 2, 3, 4, 6, 8, 16])
sweep = sweep_group_sizes(**sizes, group_sizes=group_sizes, repeats=pick(ci=1, default=5, gpu=5), device=device)
print(sweep_table(sweep))
if device == "cuda":
    for r in sweep["rows"]:
        print(f"{r['policy']:>9} {r['group_size'] or '':>4}: torch.cuda.max_memory_allocated peak "
              f"{r['cuda_peak_bytes'] / r['tokens'] / 1024:.2f} KiB per token")

# %% [markdown]
# Read the table from your output. **Kept after forward**: measured and model agree exactly for
# every stack. **Peak**: the measured peak exceeds the model by a gap that is the same for every
# $L_r$ (the `gap` column): one layer's backward working set (its rebuilt coefficient graph,
# Sinkhorn iterates included, and the gradients in flight), which the model leaves out because
# it does not depend on $L_r$. So the model captures everything that changes with $L_r$.
# **Time**: recomputation costs extra forward work for the coefficients and post/res. On a CPU
# with tiny tensors those are dozens of small operations per layer and the extra time is a
# large fraction of the total. The paper runs them as fused kernels (lesson 06) next to real
# attention and MLP sublayers, and reports the whole of mHC at $n = 4$, recomputation
# included, as a small training-time overhead.
#
# The same sweep as a figure, and where the bytes go:
#
# **What you should see:** in the top panel the measured "kept" circles sit on the model line,
# falling as $L_r$ grows (fewer group inputs $x_{l_0}$); the measured peaks (diamonds) follow the
# dashed model line shifted up by the constant gap, low for middle $L_r$ and highest at both
# ends: $L_r = 1$ keeps every $x_l$, $L_r = L$ rebuilds all of them at once. The low region lies
# around the two vertical lines; which $L_r$ is lowest exactly depends on $\lceil L/L_r\rceil$
# and on the size of the last group, which is recomputed while everything else is still kept.
# In the bottom panel the recompute times sit above the plain $n$-stream stack's, by roughly
# the same amount for every $L_r$: every layer's coefficients are computed again in the
# backward pass, and (for $L_r > 1$) every $x_l$ inside a group is rebuilt once, whatever the
# grouping. Timings on a shared CPU are noisy: compare the levels, not the wiggles.

# %%
from mhc_course.viz.memory import breakdown_figure, sweep_figure

sweep_figure(sweep)

# %%
breakdown_figure(sweep, default_group_size(n, L))

# %% [markdown]
# **What you should see:** each bar is the model's breakdown, each black mark the measured
# total, on top of its bar. The plain $n$-stream stack is dominated by what the fused kernels
# avoid (coefficient intermediates, the normalised token); keeping every $x_l$ ($L_r = 1$)
# leaves the streams and $f_l$; recomputation at the paper's $L_r^*$ shrinks the streams to one
# $x_{l_0}$ per group and closes most of the gap to the residual stack. The grey part, the
# sublayers' own activations, is the same everywhere.

# %% [markdown]
# ### Widget: L, n, C and L_r
#
# The model for any stack, with a live measurement: each update builds the recompute stack for
# the chosen $L$, $n$, $C$ (an MLP sublayer of hidden width $2C$), runs one forward pass on a
# couple of tokens under `SavedTensors` and puts the measured value (star) at the chosen $L_r$.
# When $L$, $n$, $C$ are the sweep's, its measured points appear too.
#
# **What you should see:** the star always lands on the solid model line: the count is exact for
# any size. Larger $n$ or $C$ make the stream terms, and so the dip of the dashed peak curve,
# deeper; deeper stacks move both optimum lines right, as $\sqrt{L}$. The peak curve is jagged
# where $L_r$ does not divide $L$.

# %%
from mhc_course.viz.memory import memory_widget

box = memory_widget(L, n, C, hidden_ratio=sizes["hidden"] // C, sweep=sweep)

# %% [markdown]
# ## Mixed precision: which format where, and why
#
# The paper's choices for the coefficient path:
#
# | tensor | format | why |
# | --- | --- | --- |
# | streams $x$ | bf16 | the big tensor ($nC$ per token and layer): halves memory and traffic |
# | projection $\varphi$ | tf32 | a matmul on the tensor cores: fp32's range, a 10-bit mantissa |
# | gates $\alpha$, biases $b$ | fp32 | small, and the bias is large next to the gated term (below) |
# | coefficients $\mathcal{H}$ | fp32 | $\sigma$, $2\sigma$ and Sinkhorn–Knopp's divisions need the precision |
#
# Why not bf16 everywhere? At initialisation the gated, token-dependent part of a logit,
# $\alpha\,(v'\varphi)$ with $\alpha = 0.01$, is tiny, while the bias of $\mathcal{H}^{res}$'s
# diagonal is the large $\beta$ of `identity_logits`. Add them in bf16 and the sum is rounded to
# bf16's grid near $\beta$:

# %%
from mhc_course import MHC
from mhc_course.mixed_precision import gated_term_in_bf16

torch.manual_seed(1)
conn = MHC(n, C)
x_tok = torch.randn(256, n, C)
params = (conn.phi.detach(), conn.bias.detach(), conn.alpha.detach())
t = gated_term_in_bf16(x_tok, *params, column=2 * n)  # H_res's first diagonal logit
print(f"β = {t['bias']:.3f}; spacing of numbers near β: bf16 {t['bf16_spacing']:.4f}, fp32 {t['fp32_spacing']:.1e}")
print(f"gated part: mean |α·z| = {t['mean_gated']:.4f} over {len(x_tok)} tokens")
print(f"tokens whose logit rounds to the bias itself in bf16: {t['lost']:.0%}")

# %% [markdown]
# In bf16 most tokens' logit is rounded back to the bias itself: for those tokens this entry of
# $\mathcal{H}^{res}$ would not depend on the input at all. Now the whole coefficient path, five
# ways, on the same bf16 streams, against a float64 reference (`precision_errors`; TF32 is
# emulated by rounding the matmul inputs to 10 mantissa bits, `round_to_tf32`), at
# initialisation ($\alpha = 0.01$) and with larger gates ($\alpha = 1$):

# %%
from mhc_course.mixed_precision import MODES, precision_errors

for alpha in (0.01, 1.0):
    with torch.no_grad():
        conn.alpha.fill_(alpha)
    errors = precision_errors(x_tok, conn.phi.detach(), conn.bias.detach(), conn.alpha.detach())
    print(f"α = {alpha}: largest error against float64  |  H_res row and column sums − 1")
    for mode, e in errors.items():
        print(f"  {mode:<16} H_pre {e['h_pre']:.1e}  H_post {e['h_post']:.1e}  H_res {e['h_res']:.1e}  |  "
              f"rows {e['row_sum']:.1e}  cols {e['col_sum']:.1e}   ({MODES[mode]})")

# %% [markdown]
# Read the errors from your output: the paper's tf32 projection keeps the coefficients well
# below a bf16 projection's error, at both gate sizes. With $\alpha$, $b$ and Sinkhorn–Knopp in
# bf16 as well, the error grows further, most at initialisation, where the gated term is small;
# and $\mathcal{H}^{res}$'s rows no longer sum to 1 to fp32 rounding but only to bf16's: the
# forward gain of the identity path is no longer exact, which is what the doubly stochastic
# constraint was for. (The column sums carry Sinkhorn's own unconverged error in every mode,
# lesson 04.)
#
# **The RMSNorm division after the matmul.** Eqs. 7–8 normalise the token and then project:
# $\alpha\,(\tfrac{v}{r}\varphi) + b$ with $r = \sqrt{\tfrac{1}{nC}\sum_k v_k^2 + \epsilon}$. Since
# $r$ is one scalar per token, $\tfrac{v}{r}\varphi = \tfrac{1}{r}(v\varphi)$: the kernel
# projects the raw $v$ and divides the $n^2 + 2n$ results (you wrote this form in exercise 5.1).
# The two are equal up to rounding:

# %%
from mhc_course.mixed_precision import logits_norm_after, logits_norm_first, norm_saved_values, normalisation_work

x64 = torch.randn(64, n, C, dtype=torch.float64)
for dt in (torch.float64, torch.float32):
    args = (x64.to(dt), *(p.to(dt) for p in params))
    diff = (logits_norm_first(*args) - logits_norm_after(*args)).abs().max().item()
    print(f"{str(dt):>14}: max |norm first − norm after| = {diff:.1e}")
work = normalisation_work(n, 2560)  # the paper's 27B model is 2560 wide
print(f"C = 2560, n = {n}, per token: values scaled by 1/r {work['scaled_before']} (before the matmul) vs "
      f"{work['scaled_after']} (after); normalised values written {work['written_before']} vs {work['written_after']}")
for name, values in norm_saved_values(x_tok, *params).items():
    print(f"{name}: autograd keeps {values:.0f} values per token (x itself is n·C = {n * C})")

# %% [markdown]
# Cheaper three ways: the division touches $n^2+2n$ numbers instead of $nC$; no normalised copy of
# the token is written, so one read of $v$ feeds both the matmul and the sum of squares; and the
# backward pass needs only $x$ and $r$, not the normalised token (the saved counts above).

# %% [markdown]
# ## Scheduling: post/res on a high-priority stream
#
# DeepSeek trains with DualPipe, a pipeline schedule in which the forward and backward chunks
# of two micro-batches overlap, and their communication hides behind computation. With mHC,
# what a stage sends to the next is $n$ streams per token instead of one, and every layer
# ends in the small $\mathcal{F}_{post,res}$ kernel whose output is what gets sent. If that
# kernel waits in the compute stream's queue behind a long kernel of the other micro-batch
# (attention, say), the send starts late and the next stage idles. The paper therefore runs
# the MLP's $\mathcal{F}_{post,res}$ on a dedicated **high-priority** compute stream
# (`torch.cuda.Stream(priority=-1)` in PyTorch), whose blocks the GPU schedules before pending
# blocks of normal-priority work, and avoids persistent kernels for long attention operations
# so that they can make room.
#
# The next cell draws a schematic built from the paper's description: **a picture of the idea,
# in arbitrary time units, not a measurement.** On a machine with a CUDA GPU it first measures
# the mechanism: a chain of large matmuls is queued, then a post/res update is launched on the
# same stream, on a second normal-priority stream, or on a high-priority one, and it prints when
# post/res finishes and when everything finishes, from the start of the matmuls.
#
# **What you should see:** with post/res on the compute stream it runs only after the long
# kernel, and the send, and so the arrival at the next stage (dashed line), come late. On the
# high-priority stream post/res runs as soon as the MLP is done, the send overlaps the long
# kernel, and the data arrive much earlier; the long kernel ends a little later, having shared
# the GPU. On a GPU, compare the printed finish times of post/res across the four launch
# orders with the time the matmul chain takes alone.

# %%
from mhc_course.overlap import overlap_timings
from mhc_course.viz.memory import timeline_figure

if torch.cuda.is_available():
    timings = overlap_timings(**pick(ci={"tokens": 4096, "C": 1024, "matmul_size": 4096, "matmuls": 4},
                                     default={}))
    print(f"{torch.cuda.get_device_name()}, post/res: {timings['kernel']}; alone: post/res "
          f"{timings['post_res_alone']:.3f} ms, matmul chain {timings['matmuls_alone']:.3f} ms")
    for order, done, total in zip(timings["orders"], timings["post_res_done"], timings["all_done"], strict=True):
        print(f"  {order:<32} post/res done at {done:8.3f} ms, everything at {total:8.3f} ms")
else:
    print("No CUDA device here: below is the schematic only (not a measurement).")
timeline_figure()

# %% [markdown]
# ## Exercises
#
# **Exercise 7.1 (the paper's group size).** Return $L_r^* = \sqrt{nL/(n+2)}$ rounded to the
# nearest whole number of layers, as an `int`.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l07_memory import (
    check_kept_values,
    check_paper_group_size,
    check_recompute_streams,
    solution_kept_values,
    solution_paper_group_size,
    solution_recompute_streams,
)


def paper_group_size(n: int, depth: int) -> int:
    raise NotImplementedError


check_paper_group_size(paper_group_size)

# %% [markdown]
# **Exercise 7.2 (values kept per token).** For the recompute policy, count the values per token
# kept for the mHC part after the forward pass (leave the sublayers' own activations out): the
# group inputs and the sublayer outputs. $L$ need not be a multiple of $L_r$.

# %%
def kept_values(depth: int, n: int, C: int, group_size: int) -> int:
    raise NotImplementedError


check_kept_values(kept_values)

# %% [markdown]
# **Exercise 7.3 (recompute the streams).** Given a group's input `x0` $(\dots, n, C)$, the
# stored sublayer outputs `fs` (a list of $m$ tensors $(\dots, C)$) and the group's $m$ `MHC`
# connections, return the list $[x_{l_0}, x_{l_0+1}, \dots, x_{l_0+m}]$ without calling any
# sublayer. You may use `mhc_course.mhc_coefficients` and `mhc_course.mhc_post_res`; a connection
# holds `phi`, `bias`, `alpha`, `iters` and `eps`.

# %%
def recompute_streams(x0: torch.Tensor, fs: list[torch.Tensor], conns: list[MHC]) -> list[torch.Tensor]:
    raise NotImplementedError


check_recompute_streams(recompute_streams)

# %% [markdown]
# The reference solutions, checked in CI, so you can compare once you are done:

# %%
for solution in (solution_paper_group_size, solution_kept_values, solution_recompute_streams):
    print(show_solution(solution))
print(check_paper_group_size(solution_paper_group_size))
print(check_kept_values(solution_kept_values))
print(check_recompute_streams(solution_recompute_streams))

# %% [markdown]
# ## Recap
#
# - Training keeps activations for the backward pass. An $n$-stream layer keeps $x_l$ ($nC$) and
#   $f_l$ ($C$) per token; plain autograd through the reference keeps more (the normalised token,
#   the Sinkhorn iterates), which the paper's kernels avoid. `saved_tensors_hooks` measures it all
#   on any machine, and the model accounts for every byte.
# - Selective recomputation keeps $x_{l_0}$ every $L_r$ layers and $f_l$ every layer, and rebuilds
#   $x_l$ from them in the backward pass with the update itself, never rerunning the sublayers.
#   Gradients are unchanged; memory trades against a group's recomputation, balanced near
#   $L_r^* = \sqrt{nL/(n+2)}$ (the paper) or $\sqrt{L}$ (this implementation, whose sublayers keep
#   their inputs); the time cost is a rebuild of every $x_l$, whatever $L_r$.
# - Mixed precision: streams in bf16, the projection in tf32, gates, biases and coefficients in
#   fp32, because a bf16 logit loses the small gated term next to a large bias and bf16
#   Sinkhorn breaks the exact row sums. The RMSNorm division moves after the matmul: same
#   numbers, less work, nothing extra to store.
# - Scheduling: post/res, whose output is what a pipeline stage sends, runs on a high-priority
#   stream so that it is not stuck behind long kernels of the other micro-batch.
#
# Next: **08 · The training run**, residual vs HC vs mHC on a small GPT.
