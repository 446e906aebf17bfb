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
# # 08 · The training run
#
# Seven lessons built mHC piece by piece. This one trains it: a small GPT whose residual
# connections are a plain residual, Hyper-Connections (HC) or mHC, on the same data with the same
# settings, and compares what happens to the loss and to the gains of the identity path.
#
# **In this lesson you will**
# 1. see exactly what is trained: the model, the data and the three sizes (profiles), and where
#    the $n$ streams are expanded and collapsed;
# 2. train all three connections live, and re-run the first steps of a committed run to check
#    that the committed logs are reproducible;
# 3. read the committed CPU runs: loss, gradient norm, composite gains over training, and each
#    layer's gain;
# 4. read the ablation over the number of streams $n$;
# 5. compare mHC's step time on an H100 with a plain residual's, against what memory traffic
#    alone predicts, and see why they differ;
# 6. say what a run this small shows and what it does not.

# %% [markdown]
# ## What is trained
#
# **The model** (`mhc_course/model.py`) is a decoder-only GPT in the style of nanoGPT: token and
# position embeddings, `depth` blocks of causal self-attention and an MLP (each pre-norm, RMSNorm),
# a final norm and a head tied to the token embedding. Tokens are bytes (a vocabulary of 256).
# The only thing that changes between runs is how each sublayer $\mathcal{F}$ is wired into the
# residual stream. Every block has two connections, one around attention and one around the MLP,
# and each carries $n$ streams of width $C$ per token:
#
# $$x_0 = (h_0, h_0, \dots, h_0) \in \mathbb{R}^{n\times C}, \qquad
# x_{l+1} = \mathcal{H}^{res}_l x_l + \mathcal{H}^{post\,\top}_l\, \mathcal{F}_l(\mathcal{H}^{pre}_l x_l), \qquad
# \text{logits} = \text{head}\Big(\text{norm}\big(\textstyle\sum_{i=1}^{n} x_{2L}[i]\big)\Big).$$
#
# The streams are expanded **once**, right after the embedding $h_0$, and summed **once**,
# before the final norm. Inside the network they stay apart, so the identity path from the
# embedding to the head is the product $\mathcal{H}^{res}_{2L-1}\cdots\mathcal{H}^{res}_0$ of all
# $2L$ mappings: the composite whose gains lessons 02 and 05 studied. (Expanding and collapsing
# inside every block, a common mistake in replications, would make each mapping act alone and
# hide exactly what this comparison is about.) With the residual connection $n = 1$ and
# $\mathcal{H}^{res} = \mathcal{H}^{pre} = \mathcal{H}^{post} = 1$: a plain pre-norm GPT.
#
# **The data** are the three literary texts of the Canterbury compression corpus (Carroll's
# *Alice*, Shakespeare's *As You Like It*, Milton's *Paradise Lost*), committed under `data/`:
# public-domain works, taken byte for byte from the source distribution of the Brotli library on
# PyPI (`data/README.md` gives the versions and checksums and the public-domain argument). Nothing
# is downloaded. The last tenth of each text is held out for validation.
#
# **The trainer** (`mhc_course/train.py`, also `python -m mhc_course train`) runs AdamW with the
# paper's $\beta = (0.9, 0.95)$ and weight decay 0.1 (none on the connections' parameters), a
# linear warmup and a cosine decay, and **no gradient clipping**: clipping would hide HC's
# blow-ups, which the comparison is about. Every `log_every` steps it writes one JSON record:
# the loss, the validation loss, the gradient norm and the paper's Amax gains, each connection's
# own ($\mathcal{H}^{res}_l$) and the composite up to every layer, averaged over the batch's tokens.

# %%
import tempfile
from pathlib import Path

import torch

from mhc_course import pick, profile
from mhc_course.data import VOCAB_SIZE, load_text_data
from mhc_course.model import GPT
from mhc_course.train import TRAIN_PROFILES, profile_config

data = load_text_data()
for source in data.sources:
    print(f"{Path(source).name:<14} {Path(source).stat().st_size:>8,} bytes")
print(f"train split {len(data.train):,} byte tokens, validation split {len(data.val):,}")
print()
for name in TRAIN_PROFILES:
    cfg = profile_config(name)
    print(f"profile {name:>3}: depth {cfg.depth:>2}, width C {cfg.width:>3}, heads {cfg.heads}, sequence "
          f"{cfg.seq_len:>3}, batch {cfg.batch_size:>2}, {cfg.steps:>4} steps, peak lr {cfg.lr:g}, "
          f"log every {cfg.log_every}")
cfg = profile_config("cpu")
print(f"vocabulary {VOCAB_SIZE} (bytes); validation share of each text {cfg.val_fraction}; AdamW betas "
      f"({cfg.beta1}, {cfg.beta2}), weight decay {cfg.weight_decay}; gradient clipping: {cfg.clip_grad}")
for name in ("ci", "cpu"):
    counts = {c: GPT(profile_config(name, connection=c).model_config()).num_parameters()
              for c in ("residual", "hc", "mhc")}
    print(f"parameters at {name}: " + ", ".join(f"{c} {v:,}" for c, v in counts.items()) + " (HC and mHC with n = 4)")

# %% [markdown]
# `ci` exists so that this notebook runs in seconds in the test suite; `cpu` is the profile of the
# committed comparison (minutes per run on two CPU cores); `gpu` is sized for one GPU. The course
# profile of this notebook (`MHC_COURSE_PROFILE`) picks what runs live below.


# %% [markdown]
# ## Training live
#
# All three connections at the `ci` profile (on a CUDA machine with the `gpu` course profile: a
# short slice of the `gpu` profile, mHC on the Triton kernels, with the measured seconds per
# step). A `ci` run is far too short to learn anything; it shows the trainer working end to end
# and the record it logs.

# %%
import time

from mhc_course.train import train
from mhc_course.training_logs import COMPARISON

on_gpu = profile() == "gpu" and torch.cuda.is_available()
live_profile = "gpu" if on_gpu else "ci"
workdir = tempfile.TemporaryDirectory(prefix="mhc-lesson08-")
live = {}
for connection in COMPARISON:
    extra = {"steps": 200, "backend": "triton" if connection == "mhc" else None} if on_gpu else {}
    cfg = profile_config(live_profile, connection=connection, **extra)
    start = time.perf_counter()
    live[connection] = train(cfg, Path(workdir.name) / connection, progress=False)
    last = live[connection][-1]
    print(f"{connection:>8} ({live_profile}, {last['step']} steps, {time.perf_counter() - start:5.1f} s): loss "
          f"{last['loss']:.3f}, validation {last['val_loss']:.3f}, composite gain fwd {last['amax_fwd']:.4g} "
          f"bwd {last['amax_bwd']:.4g}, {cfg.batch_size * cfg.seq_len / last['tokens_per_s']:.4f} s per step")
print("\nfields of a record:", ", ".join(live["mhc"][-1]))

# %% [markdown]
# ## Are the committed runs reproducible?
#
# The comparison below reads runs committed under `benchmarks/results/training/cpu/`: each
# folder holds the run's `log.jsonl`, its `config.json` (every setting, the torch version, the
# device) and `stdout.txt` (the command's output and wall time); the folder's `README.md` says
# where and how they ran. A run is a function of its configuration: the seed fixes the
# initialisation and the order of the batches, and nothing else is random. So re-running the
# first steps of a committed configuration must reproduce its first records. Bit for bit only if
# the floating-point sums are done in the same order, which a different number of threads or a
# different CPU can change; then the cell reports the largest difference instead.
#
# **What you should see:** on the machine this course was built on (a different torch version from
# the one that made the runs) the records came out identical, bit for bit. Elsewhere, expect either
# that or tiny relative differences.

# %%
from mhc_course.training_logs import CPU_RUNS_DIR, load_run, rerun_prefix

prefix_steps = pick(ci=25, default=50)
for name in pick(ci=["residual"], default=["residual", "mhc"]):
    committed = load_run(CPU_RUNS_DIR / name)
    check = rerun_prefix(committed, prefix_steps, Path(workdir.name) / f"prefix-{name}")
    verdict = ("identical, bit for bit" if check["identical"] else
               f"max |difference| {check['max_abs_diff']:.2e}, max relative {check['max_rel_diff']:.2e} "
               f"(in {check['worst_field']})")
    print(f"{name}: committed with torch {committed.config['torch']}, re-run with torch {torch.__version__} on "
          f"{torch.get_num_threads()} thread(s) to step {prefix_steps} ({check['seconds']:.0f} s); records at steps "
          f"{check['steps']}: {verdict}")

# %% [markdown]
# ## The committed comparison
#
# Residual, HC and mHC ($n = 4$) at the `cpu` profile: the same seed, data, schedule and sizes;
# only the connection differs. The same comparison at the `gpu` profile on an H100 follows the
# ablation below.

# %%
from mhc_course.training_logs import describe, load_runs

runs, missing = load_runs(COMPARISON)
print("missing runs:", ", ".join(missing) if missing else "none")
for run in runs.values():
    print(describe(run))

# %% [markdown]
# **What you should see:** on the left, all three losses fall quickly, then sit on a plateau for
# a while, then fall again. The plateau lies at the loss of a model that knows only how frequent
# each byte is, not which byte follows which (the cell below the figure prints both). HC leaves
# the plateau first and ends lowest; residual and mHC follow close together. On the right, the
# gradient norms (no clipping anywhere): HC's runs higher than the other two and jumps more, but
# none blows up.

# %%
from mhc_course.viz.training import gain_curves_figure, training_curves_figure

training_curves_figure(runs)

# %%
from mhc_course.training_logs import first_step_below, series

counts = torch.bincount(data.train.long(), minlength=256).double() + 1  # add-one smoothing
unigram = -(counts / counts.sum())[data.val.long()].log().mean().item()
print(f"validation loss of byte frequencies alone (a unigram model of the training split): {unigram:.3f}")
for run in runs.values():
    steps, val = series(run, "val_loss")
    on_plateau = ", ".join(f"step {s} {v:.3f}" for s, v in zip(steps, val, strict=True) if s in (100, 150, 200))
    print(f"{run.label:>8}: validation loss {on_plateau}; first below 3.0 at step "
          f"{first_step_below(run, 'val_loss', 3.0)}")

# %% [markdown]
# Now the gains of the identity path: the composite $\mathcal{H}^{res}_{2L-1}\cdots\mathcal{H}^{res}_0$
# over all connections, at every logged step.
#
# **What you should see:** the residual's composite is exactly 1 (there is nothing to multiply).
# HC's starts at 1 (it is initialised as a residual network) and grows by orders of magnitude as its
# mappings drift from the identity: the same compounding as lesson 02, now in a trained model. mHC's
# forward gain stays at 1 to rounding, and its backward gain drifts only slightly above 1: Sinkhorn–
# Knopp ends with a row normalisation, so rows (the forward gain) are exact and columns carry the
# small error of stopping after a fixed number of iterations (lesson 04).

# %%
gain_curves_figure(runs)

# %% [markdown]
# ### Widget: gains by depth at any logged step
#
# Each connection's own $\mathcal{H}^{res}_l$ gain (dotted) and the composite up to it (solid),
# for the three runs, at the step you choose; switch between forward (row sums) and backward
# (column sums).
#
# **What you should see:** each of HC's own per-layer gains is a modest factor above 1 (the cell
# below prints their range), yet the composite climbs layer after layer into the hundreds: small
# factors compounding over depth. At the first logged steps (slider to the left) HC is still close
# to the residual. mHC's own gains and its composite stay at 1 in the forward direction and close to
# 1 in the backward one, at every step and depth.

# %%
from mhc_course.viz.training import layer_gain_widget

gains_dash = layer_gain_widget(runs)

# %%
from mhc_course.training_logs import layer_values

for run in runs.values():
    own_f, own_b = layer_values(run, "layer_amax_fwd"), layer_values(run, "layer_amax_bwd")
    comp = layer_values(run, "composite_amax_fwd")
    print(f"{run.label:>8} at step {run.records[-1]['step']}: own gains fwd {own_f.min():.4f}–{own_f.max():.4f}, "
          f"bwd {own_b.min():.4f}–{own_b.max():.4f}; composite fwd after {comp.size // 2} connections "
          f"{comp[comp.size // 2 - 1]:.4g}, after all {comp.size} connections {comp[-1]:.4g}")

# %% [markdown]
# ## How many streams? The ablation over $n$
#
# The same mHC run at the `cpu` profile with $n \in \{1, 2, 4, 8\}$ (the $n = 4$ run is the one
# above). With $n = 1$, $\mathcal{H}^{res}$ is a $1\times 1$ doubly stochastic matrix, which is
# exactly 1: the network is a residual GPT whose sublayer input and output are scaled by learned,
# token-dependent gates $\mathcal{H}^{pre} = \sigma(\cdot)$ and $\mathcal{H}^{post} = 2\sigma(\cdot)$.
# More streams add mixing, parameters (the projection $\varphi$ has $nC(n^2 + 2n)$ entries per
# connection) and work.

# %%
from mhc_course.training_logs import load_ablation

ablation, missing_n = load_ablation()
if missing_n:
    print(f"missing ablation runs: n = {missing_n}; the table and figure show the others "
          "(commit them under benchmarks/results/training/cpu/mhc-n<N>/, see that folder's README.md)")
for run in ablation.values():
    print(describe(run))
    print(f"    validation loss first below 3.0 at step {first_step_below(run, 'val_loss', 3.0)}; own backward gains "
          f"at the end up to {layer_values(run, 'layer_amax_bwd').max():.4f}")

# %% [markdown]
# **What you should see:** on the right, mHC's forward composite gain is 1 for every $n$. The
# backward one stays close to 1 up to $n = 4$ and reaches a few at $n = 8$: with eight streams
# some layers' mappings keep column sums clearly above 1 after Sinkhorn–Knopp's fixed number of
# iterations (the largest per-layer backward gain is printed above), and two dozen such factors
# compound. The bound on the backward gain is only as tight as Sinkhorn–Knopp has converged
# (lesson 04); even so it stays orders of magnitude below HC's line. On the left, the final
# validation losses are not ordered by $n$: read them from the table above. They follow, more than
# anything, the step at which each run left the plateau (also printed), and with one seed per point
# nothing here separates the effect of $n$ from chance.

# %%
from mhc_course.viz.training import ablation_figure

ablation_figure(ablation, {name: runs[name] for name in ("residual", "hc") if name in runs}, missing_n)

# %% [markdown]
# ### Widget: any logged metric, any run
#
# Choose a metric and tick the runs to compare: the comparison's three and the ablation's mHC runs.
#
# **What you should see:** switching to the composite gains puts the y axis on a log scale, where
# HC's climb and the mHC runs' nearly flat lines are both readable. With the validation loss and
# the mHC runs ticked, the curves differ mostly in when they leave the plateau.

# %%
from mhc_course.training_logs import ablation_folder
from mhc_course.viz.training import metric_widget

all_runs = {**runs, **{ablation_folder(n): r for n, r in ablation.items() if ablation_folder(n) not in runs}}
metric_dash = metric_widget(all_runs, "val_loss", selected=list(runs))

# %% [markdown]
# ## The same comparison on a GPU
#
# The `gpu` profile on one H100: 24 blocks (48 connections), width 512, about 76 M parameters,
# 400 steps of 16,384 tokens, bf16 autocast with the residual streams in bf16, mHC on the Triton
# kernels. Residual, HC and mHC ($n = 4$), then mHC with $n = 1, 2, 8$; one seed each. Each group of
# three ran at the same time on the one GPU, so the wall times printed here are not step times
# (those are measured on their own further down); `benchmarks/results/training/README.md` has the
# commands.

# %%
from dataclasses import asdict

from mhc_course.training_logs import GPU_RUNS_DIR

gpu_runs, gpu_missing = load_runs(COMPARISON, GPU_RUNS_DIR)
gpu_ablation, gpu_missing_n = load_ablation(root=GPU_RUNS_DIR)
print("missing gpu runs:", ", ".join(gpu_missing + [ablation_folder(n) for n in gpu_missing_n]) or "none")
print("gpu profile:", {k: v for k, v in asdict(profile_config("gpu")).items()
                       if k in ("depth", "width", "heads", "seq_len", "batch_size", "steps", "lr")})
for run in [*gpu_runs.values(), *(r for n, r in gpu_ablation.items() if n != 4)]:
    print(describe(run))

# %% [markdown]
# **What you should see:** HC's loss is a little below the others from the start and, in the
# second half of the run, drops far below them. mHC's starts slower than the residual's and stays
# a little above it; both still fall over the last hundred steps, mHC's more slowly. The gradient
# norms stay finite in every run.

# %%
training_curves_figure(gpu_runs)

# %% [markdown]
# **What you should see:** the same picture of the gains as on the CPU, over twice the depth: HC's
# composite grows over the run, past a hundred before step 200 and to several hundred near the
# end; mHC's forward gain is 1 and its backward gain a few percent above 1.

# %%
gain_curves_figure(gpu_runs)

# %% [markdown]
# And the ablation over $n$ at the `gpu` profile.
#
# **What you should see:** forward gains at 1 for every $n$; the backward gain grows with $n$
# (largest at $n = 8$, as on the CPU) and stays two orders of magnitude below HC's. The final
# losses of the mHC runs lie within a tenth of each other and of the residual's, not ordered by
# $n$ (the cell below prints them).

# %%
ablation_figure(gpu_ablation, {name: gpu_runs[name] for name in ("residual", "hc") if name in gpu_runs},
                gpu_missing_n)

# %%
from mhc_course.training_logs import ranked

for _, s, delta in ranked([*gpu_runs.values(), *(r for n, r in gpu_ablation.items() if n != 4)], gpu_runs["residual"]):
    print(f"{s['label']:>8}: final validation loss {s['final_val_loss']:.3f} ({delta:+.3f} "
          f"against residual), largest composite gain fwd {s['peak_amax_fwd']:.4g}, bwd {s['peak_amax_bwd']:.4g}")

# %% [markdown]
# ## What mHC costs per step
#
# The paper reports that mHC with $n = 4$ adds **6.7%** to the training time of its large-scale
# runs, with fused kernels, recomputation and scheduling (lessons 06–07). Here are our
# measurements. First the trainer at the `gpu` profile on one H100, seconds per optimizer step, bf16
# autocast with bf16 streams, each row measured alone (`benchmarks/time_train_steps.py`, see
# `benchmarks/results/training/README.md`):

# %%
from mhc_course.training_logs import load_bench_model, load_step_times, overhead

step_times = load_step_times()
gpu_cfg = profile_config("gpu")
tokens = gpu_cfg.batch_size * gpu_cfg.seq_len
res_s = step_times["residual"]["s_per_step"]
print(f"gpu profile: depth {gpu_cfg.depth} ({2 * gpu_cfg.depth} connections), C = {gpu_cfg.width}, "
      f"{tokens:,} tokens per step, n = 4")
for label, row in step_times.items():
    print(f"{label:>13}: {row['s_per_step']:.4f} s per step, {row['tok_per_s']:>7,} tokens/s, peak memory "
          f"{row['peak_gib']:5.2f} GiB; overhead over residual {overhead(row['s_per_step'], res_s):+.0%}")
cpu_res = runs["residual"].wall_s
print("\ncommitted cpu runs (torch reference, 2 CPU cores), wall time over residual's: " + ", ".join(
    f"{r.label} {overhead(r.wall_s, cpu_res):+.0%}" for r in runs.values() if r.name != "residual"))

# %% [markdown]
# One measurement per row is not much. The same script ran five more times that day, on earlier
# states of the code (`gpu_step_times_h100_earlier.jsonl`, described in
# `benchmarks/results/training/README.md`); every run starts with its residual row:

# %%
from mhc_course.training_logs import step_time_runs

repeats = step_time_runs()  # the earlier runs, then the one above
for i, run in enumerate(repeats, 1):
    print(f"run {i}: residual {run['residual']:.4f} s, mhc (triton) {run['mhc (triton)']:.4f} s → "
          f"{overhead(run['mhc (triton)'], run['residual']):+.0%}")
res_times = [run["residual"] for run in repeats]
mhc_times = [run["mhc (triton)"] for run in repeats]
print(f"residual {min(res_times):.4f}–{max(res_times):.4f} s (spread {max(res_times) / min(res_times) - 1:.0%}), "
      f"mhc {min(mhc_times):.4f}–{max(mhc_times):.4f} s (spread {max(mhc_times) / min(mhc_times) - 1:.0%})")

# %% [markdown]
# And `benchmarks/bench_model.py` on the same kind of H100, at a wider configuration: the model's
# forward + backward alone at $C = 2048$, 16 heads, 8 blocks, sequence 2048, batch 4, weights and
# streams in bf16, with more implementations of mHC side by side:

# %%
bm = load_bench_model()
env, bc = bm["environment"], bm["config"]
print(f"bench_model.py, {env['device']}, torch {env['torch']}, Triton {env['triton']}: C = {bc['width']}, "
      f"{bc['depth']} blocks, {bc['batch'] * bc['seq']:,} tokens, weights and streams in {bc['precision']}, "
      "forward + backward:")
for name, row in bm["rows"].items():
    print(f"{name:>19}: {row['median_ms']:6.2f} ms, overhead over residual "
          f"{overhead(row['median_ms'], bm['rows']['residual']['median_ms']):+.0%}")

# %% [markdown]
# Above 6.7% in both, and far above it at the `gpu` profile. Is that what we should expect? A simple **bandwidth-floor
# prediction** (`mhc_course.step_overhead`, built on lesson 06's byte counts in
# `mhc_course.io_model`). Assumptions:
#
# 1. each fused connection moves its minimal bytes, $(6n+5)\,C$ elements per token for forward +
#    backward, at the copy bandwidth measured on the same H100 (lesson 06);
# 2. it replaces a residual connection that moves $6C$ (forward: read $x$, $f$, write $x + f$;
#    backward: read $g$ and the branch's gradient, write their sum);
# 3. every block has two connections;
# 4. everything else in the step costs what it costs in the residual model: the measured residual
#    step time.
#
# $$\text{overhead} \approx \frac{2L \cdot T \cdot \big((6n+5) - 6\big)\,C \cdot b \,/\, \text{bandwidth}}
# {t_{\text{residual}}}$$
#
# with $T$ tokens per step and $b = 2$ bytes per stream element (bf16 streams, as the paper's and
# our trainer's). A second line uses the share of copy bandwidth our kernels actually reached for
# forward + backward in lesson 06's benchmark, instead of all of it.

# %%
from mhc_course.bench_results import EAGER, OURS, load_bench
from mhc_course.step_overhead import floor_overhead

bench = load_bench()
kernel_row = bench.find(2048, OURS)
share = kernel_row["fwd_bwd_pct_copy"] / 100
cases = {"floor": (2, 1.0), f"at the kernels' {share:.0%} of copy bandwidth": (2, share)}
predicted, floors = {}, {}
print(f"copy bandwidth {bench.bandwidth_gbs:.0f} GB/s ({bench.meta['device']}); residual step {res_s:.4f} s")
for label, (nbytes, eff) in cases.items():
    p = floor_overhead(4, gpu_cfg.width, gpu_cfg.depth, tokens, nbytes, bench.bandwidth_gbs, res_s, efficiency=eff)
    floors[label] = p
    predicted[f"residual + {label}"] = p["predicted_step_s"]
    print(f"{label:>46}: {p['extra_elements_per_token']:,} extra elements per token and connection, "
          f"{p['extra_bytes'] / 1e9:.1f} GB per step, {p['extra_ms']:.1f} ms → overhead {p['overhead']:.0%}")
measured = {label: row["s_per_step"] for label, row in step_times.items()}

# %% [markdown]
# **What you should see:** the predicted bars (hatched) add about a tenth and a fifth of the
# residual step; the measured mHC bar (Triton kernels) is about twice the residual's, and HC's
# (eager PyTorch, no fused kernels) about four times.

# %%
from mhc_course.viz.training import step_time_figure

step_time_figure(measured, predicted)

# %% [markdown]
# ### Why the gap?
#
# First, even the floor is above 6.7% at our size, for a reason that does not depend on any
# kernel: a connection's bytes grow with $nC$ while the matrix products of attention and the MLP
# grow with $C^2$ per token. At $C = 512$ the streams are large next to the work of the sublayers;
# the paper's models are several times wider (and mixture-of-experts). If the rest of the step
# grew as $C^2$ at equal efficiency, the floor would shrink as $1/C$:

# %%
from mhc_course.step_overhead import scale_overhead_to_width

paper_width = 2560  # the width of the paper's 27B model
floor = floors["floor"]["overhead"]
print(f"floor: {floor:.1%} at C = {gpu_cfg.width} → about "
      f"{scale_overhead_to_width(floor, gpu_cfg.width, paper_width):.1%} at C = {paper_width} "
      "(a scaling argument, not a measurement)")

# %% [markdown]
# Second, the measured cost is above even the prediction at our kernels' measured bandwidth.
# Per connection:

# %%
from mhc_course.io_model import floor_ms, fused_forward_backward_traffic

connections = floors["floor"]["connections"]
measured_ms = (step_times["mhc (triton)"]["s_per_step"] - res_s) / connections * 1e3
conn_bytes_per_token = fused_forward_backward_traffic(4, gpu_cfg.width).activation_bytes(2)
conn_bytes = conn_bytes_per_token * tokens
kernel_ms = floor_ms(conn_bytes_per_token, tokens, kernel_row["fwd_bwd_gbs"])
print(f"trainer, gpu profile: mHC (Triton) adds {measured_ms:.2f} ms per connection (forward + backward) over residual")
print(f"the same connection's whole bf16 traffic ({conn_bytes / 1e9:.2f} GB) at the rate the kernels reached alone "
      f"({kernel_row['fwd_bwd_gbs']:.0f} GB/s, bf16, C = {kernel_row['C']}): {kernel_ms:.2f} ms "
      f"→ the trainer spends {measured_ms / kernel_ms:.0f}× that")

# %% [markdown]
# The same comparison in `bench_model` at $C = 2048$, and the Triton path against the eager
# reference there and in lesson 06's benchmark of one connection:

# %%
small_tokens = bc["batch"] * bc["seq"]
rows = bm["rows"]
step_args = (bc["width"], bc["depth"], small_tokens, 2, bench.bandwidth_gbs, rows["residual"]["median_ms"] / 1e3)
small_floor = floor_overhead(bc["n"], *step_args)
small_conns = small_floor["connections"]
small_ms = (rows["mhc-triton"]["median_ms"] - rows["residual"]["median_ms"]) / small_conns
small_measured = overhead(rows["mhc-triton"]["median_ms"], rows["residual"]["median_ms"])
print(f"bench_model (C = {bc['width']}, {small_tokens:,} tokens): mHC (Triton) adds {small_ms:.3f} ms per connection; "
      f"its bandwidth floor is {small_floor['extra_ms'] / small_conns * 1e3:.0f} µs, an overhead of "
      f"{small_floor['overhead']:.1%} against {small_measured:.1%} measured")
eager_row = bench.find(kernel_row["C"], EAGER)
tri_vs_torch = {"bench_model": rows["mhc-triton"]["median_ms"] / rows["mhc-torch"]["median_ms"],
                f"one connection (lesson 06, bf16, C = {kernel_row['C']})":
                    kernel_row["fwd_bwd_ms"] / eager_row["fwd_bwd_ms"]}
print("Triton path time / eager reference time, forward + backward:")
for where, ratio in tri_vs_torch.items():
    print(f"  {where}: {ratio:.2f}")

# %% [markdown]
# Could faster kernels close that gap on their own? Our kernels make more passes over memory than
# the minimum the floor assumes: `io_model.kernel_pass_steps` lists them (the coefficients kernel
# reads $x$ twice, and the backward reads $x$ in two passes and $g$ in three). In a model, every
# connection but the last gets its $\partial L/\partial f$ from the next connection's channel
# pass, which holds all $n$ streams of $g$ in registers as it writes them (`kernels/chain.py`):
# one pass over $g$ fewer, `chained=True` in the count. The same floor model
# answers two questions at `bench_model`'s configuration: what would our passes cost if each ran
# at the full copy bandwidth, and how many elements per token may one connection move at most for
# the step to stay within a given overhead, here 15%?

# %%
from mhc_course.io_model import kernel_pass_traffic
from mhc_course.step_overhead import elements_within

target = 0.15
def chained_passes(n, C):
    return kernel_pass_traffic(n, C, chained=True)


for label, traffic in (("the minimum", fused_forward_backward_traffic),
                       ("our kernels' passes, alone", kernel_pass_traffic),
                       ("our kernels' passes, chained", chained_passes)):
    moved = traffic(bc["n"], bc["width"])
    at_copy = floor_overhead(bc["n"], *step_args, traffic=traffic)
    print(f"{label:>28}: {(moved.act_read + moved.act_write) // bc['width']}·C elements per token and connection "
          f"→ {at_copy['overhead']:.1%} at copy bandwidth")
print(f"a step within {target:.0%} allows at most {elements_within(target, *step_args) / bc['width']:.1f}·C at copy "
      f"bandwidth; the measured step ({small_measured:.1%}) is what "
      f"{elements_within(small_measured, *step_args) / bc['width']:.0f}·C at copy bandwidth would cost")

# %% [markdown]
# By this count even our passes at full copy bandwidth cost more than a 15% step allows. But the
# count rests on assumptions 2 and 4 above: that the residual connection costs only its $6C$, and
# that everything else in the mHC step costs what it costs in the residual step. A profile of both
# steps tests them. `benchmarks/profile_step.py` ran `bench_model`'s two steps on the H100 under
# the torch profiler, twice each, alternating, and recorded every kernel's device time;
# `mhc_course.step_profile` groups the kernels, counts the bytes each of our kernels must move
# (the passes above), and asks what the mHC step would cost if each of ours ran at the copy
# bandwidth measured in the same process, all else as measured:

# %%
from mhc_course.step_profile import at_copy_bandwidth, bandwidth_for, load_step_profile

prof = load_step_profile()
sz = prof["sizes"]
print(f"{prof['device']}, {prof['config']}; copy bandwidth {prof['copy_gbs'] / 1e3:.2f} TB/s")
for i, run in enumerate(prof["runs"], 1):
    res, mhc = run["rows"]["residual"], run["rows"]["mhc-triton"]
    print(f"run {i}: residual {res['step_ms']:.2f} ms, mHC {mhc['step_ms']:.2f} ms "
          f"({overhead(mhc['step_ms'], res['step_ms']):+.1%}); device time by group, residual → mHC:")
    for group in res["groups"]:
        print(f"  {group:>23}: {res['groups'][group]:5.2f} → {mhc['groups'][group]:5.2f} ms")
    steps = (res["step_ms"], mhc["step_ms"], mhc["kernels"])
    s = at_copy_bandwidth(*steps, prof["copy_gbs"], sz["n"], sz["C"], sz["tokens"])
    for k in s["connection_kernels"]:
        print(f"  {k['kernel']:>32}: {k['calls']:2d} calls, {k['ms']:.2f} ms for {k['gb']:.2f} GB "
              f"= {k['tbps']:.2f} TB/s")
    need = bandwidth_for(target, *steps, sz["n"], sz["C"], sz["tokens"])
    print(f"  each of ours at copy bandwidth: {s['overhead_if_at_copy']:+.1%}; for {target:.0%} they need "
          f"{need / 1e3:.2f} TB/s together ({need / prof['copy_gbs']:.0%} of the copy bandwidth), "
          f"they reach {s['tbps_all']:.2f}")

# %% [markdown]
# The profile tests the count's assumptions, and here the two end up close. The residual step's own
# connection is not free: its additions sit in the "other" group, which is smaller in the mHC step,
# whose connections do that work inside our kernels. And in these two runs the matrix products and
# attention took no longer in the mHC step than in the residual's (that group varies between
# processes: `benchmarks/NOTES.md`). Even so, in both runs, with each of our kernels at the copy
# bandwidth the step would stay above 15% (printed above): to get there they would have to move
# their bytes faster than a plain copy does. So the kernels' efficiency is not all that stands
# between us and 15%; their passes over memory are too.
#
# Both are visible above. Post+res moves its bytes at about copy bandwidth, but the three kernels
# that reduce over a token's row or over tokens (the coefficients kernel, the token and channel
# passes) do not. NVIDIA's profiler (`ncu`, its reports are in
# `benchmarks/results/v8_experiments_h100/`) finds them waiting on memory with few warps to switch
# to: the channel pass needs so many registers per thread that few blocks fit on a multiprocessor,
# and the coefficients kernel has one block per multiprocessor. Fewer passes would mean, for
# example, reading $x$ once in the forward: the projection needs a token's whole row of $nC$ values
# before $\mathcal{H}^{pre}$ is known, and a block of tokens' rows does not fit in one
# multiprocessor's registers. `benchmarks/NOTES.md` lists what was tried against both (loads issued
# a block ahead, TMA loads, register caps, dφ computed apart or transposed, the projection split
# across programs that combine their partial sums, the next connection's projection inside
# post+res) and what each measured. What helped, and is in the kernels this profile ran: asking
# Triton to prefetch every load of the channel pass's loop (by default it prefetches only loads
# that feed a matrix product), and a deeper prefetch in the coefficients kernel when it has at most
# one block per multiprocessor.

# %% [markdown]
# How much of that is the host's work? `benchmarks/bench_model.py --cuda-graph` captures the whole
# forward + backward in one CUDA graph and times its replay: the same kernels, without Python,
# autograd or kernel launches in between. It ran on the same H100 at the `gpu` profile's sizes
# (forward + backward only, no optimizer) and at the wider configuration:

# %%
from mhc_course.training_logs import BENCH_MODEL_PATH

graph_pairs = {"gpu profile sizes": ("bench_model_gpu_profile_h100.json", "bench_model_gpu_profile_graph_h100.json"),
               "bench_model": ("bench_model_h100.json", "bench_model_graph_h100.json")}
for label, files in graph_pairs.items():
    for mode, name in zip(("eager", "CUDA graph"), files, strict=True):
        bmx = load_bench_model(BENCH_MODEL_PATH.parent / name)
        res_ms, mhc_ms = (bmx["rows"][r]["median_ms"] for r in ("residual", "mhc-triton"))
        print(f"{label:>17} (C = {bmx['config']['width']}), {mode:>10}: residual {res_ms:6.2f} ms, "
              f"mHC (Triton) {mhc_ms:6.2f} ms → {overhead(mhc_ms, res_ms):+.0%}")

# %% [markdown]
# What these numbers support, and what they leave open:
#
# - **The floors are alike, the measurements are not.** Both configurations' floors are about a
#   tenth (printed above). `bench_model` measures about twice its floor; the
#   trainer at $C = 512$ close to ten times its own.
# - **At $C = 2048$ our kernels are the gap.** Lesson 06's benchmark puts one connection's
#   forward + backward at about half of copy bandwidth at $C = 2048$: twice the floor's time.
# - **At $C = 512$ the connection does worse still.** The per-connection cost in the trainer is
#   several times what lesson 06's bandwidth would give for its bytes (printed above). There the
#   GPU work of one connection is small enough that the host's work per call (the autograd
#   Functions, allocations, five Triton launches, the sublayer's nested backward) takes longer than
#   the kernels: `benchmarks/NOTES.md` has the measurements. Captured in a CUDA graph (printed
#   above), the same forward + backward at those sizes costs about a quarter as much over
#   residual as it does eagerly; at $C = 2048$ the graph changes little, the GPU was already the
#   bottleneck there.
# - **Step times vary between runs.** Over the six runs printed above, mHC's step varied by about
#   a fifth and the residual's by more than a third, so the overhead at the `gpu` profile is known
#   only to within a wide range; its order of magnitude, far above the floor, holds in every run.
# - **What the paper has that we do not:** much wider models (the floor shrinks as $1/C$), kernels
#   tuned at that width, recomputation, and the connection's kernels overlapped with communication
#   in DualPipe (lesson 07). Its 6.7% is a measurement at that scale; ours are measurements at
#   scales where the connection is a large share of the work.

# %% [markdown]
# ## What the small run shows, and what it does not
#
# The key comparisons, computed from the committed logs:

# %%
for run, s, delta in ranked(all_runs.values(), runs["residual"]):
    print(f"{s['label']:>8}: final validation loss {s['final_val_loss']:.3f} "
          f"({delta:+.3f} against residual), "
          f"left the plateau (below 3.0) at step {first_step_below(run, 'val_loss', 3.0)}, "
          f"largest composite gain {max(s['peak_amax_fwd'], s['peak_amax_bwd']):.4g}")

# %% [markdown]
# **What it shows.** The mechanism the paper is about is visible even in a 12-block model trained
# for minutes on a CPU, and again in the 24-block model on the GPU: HC's mappings drift from the
# identity and their product, the identity path from the embedding to the head, reaches gains in
# the hundreds; mHC's mappings, projected onto doubly stochastic matrices, keep that product at 1
# forward and, backward, close to 1 (within a small factor at $n = 8$, where Sinkhorn–Knopp
# converges less), for every $n$ tried. The committed CPU runs can be re-run and give the same
# records.
#
# **What it does not show.** Of the three $n = 4$ runs HC trained best, on the CPU and on the GPU:
# it had the lowest loss, and its large gains did not make it diverge within the steps we ran; mHC
# ended close to the residual (slightly below it on the CPU, slightly above it on the GPU). In the
# CPU ablation mHC with eight streams ended lowest of all, level with HC, and $n = 2$ below
# $n = 4$; on the GPU the mHC runs ended within a tenth of each other, not ordered by $n$. The
# final CPU losses roughly follow the step at which each run left the plateau, and a single seed
# per configuration cannot say whether such differences come from the connection or from chance.
# So these runs reproduce neither the paper's loss improvements nor HC's instability (the paper
# saw HC's loss spike around step 12k of its 27B model, with composite gains near 3000). They
# cannot:
#
# - **small models** (the `cpu` and `gpu` profiles printed above) on **under a megabyte of text**,
#   for **a few hundred steps**, where the paper trains billions of parameters on billions of tokens;
# - **one seed** per configuration: loss differences of the size seen here may be within
#   seed-to-seed variation, which these runs do not measure;
# - no gradient clipping, by design, and the same learning rate for every run, tuned for none.
#
# Whether HC's growing gains would turn into loss spikes, and whether mHC's bounded ones buy
# better loss, are questions for longer and larger runs, with several seeds and on more text
# (`python -m mhc_course train --data FILE --profile gpu --steps …`).

# %% [markdown]
# ## Exercises
#
# **Exercise 8.1 (the composite gain of a log record).** The trainer records every connection's
# $\mathcal{H}^{res}_l$ for the tokens of a batch and logs `amax_fwd`: the largest absolute row sum
# of the product $\mathcal{H}^{res}_{L-1}\cdots\mathcal{H}^{res}_0$, averaged over the tokens. Given
# the maps in layer order, each of shape $(B, T, n, n)$, return that number as a 0-dim tensor.

# %%
from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l08_training import (
    check_composite_forward_gain,
    check_floor_overhead,
    check_overhead_percent,
    solution_composite_forward_gain,
    solution_floor_overhead,
    solution_overhead_percent,
)


def composite_forward_gain(maps: list[torch.Tensor]) -> torch.Tensor:
    raise NotImplementedError


check_composite_forward_gain(composite_forward_gain)

# %% [markdown]
# **Exercise 8.2 (overhead in percent).** Given a step time and a baseline step time (seconds),
# return how much longer the step is than the baseline, in percent.

# %%
def overhead_percent(step_s: float, baseline_s: float) -> float:
    raise NotImplementedError


check_overhead_percent(overhead_percent)

# %% [markdown]
# **Exercise 8.3 (the bandwidth-floor overhead).** Return the predicted overhead (a fraction) of
# mHC over residual under the four assumptions above: $2L$ connections, each moving
# $(6n+5)C - 6C$ extra elements of `element_bytes` bytes per token, $T$ = `tokens` per step, at
# `bandwidth_gbs` GB/s, relative to `residual_step_s`.

# %%
def floor_overhead_fraction(n: int, C: int, depth: int, tokens: int, element_bytes: int, bandwidth_gbs: float,
                            residual_step_s: float) -> float:
    raise NotImplementedError


check_floor_overhead(floor_overhead_fraction)

# %% [markdown]
# The reference solutions, checked in CI, so you can compare once you are done:

# %%
for solution in (solution_composite_forward_gain, solution_overhead_percent, solution_floor_overhead):
    print(show_solution(solution))
print(check_composite_forward_gain(solution_composite_forward_gain))
print(check_overhead_percent(solution_overhead_percent))
print(check_floor_overhead(solution_floor_overhead))

# %% [markdown]
# ## Recap
#
# - The model expands the embedding into $n$ streams once and sums them once before the head, so
#   the $\mathcal{H}^{res}$ of all $2L$ connections multiply along the identity path; the trainer
#   logs each one's Amax gain and the composite's, and writes runs that can be re-run exactly.
# - In the committed CPU and GPU runs HC's composite gain grew into the hundreds while mHC's stayed
#   at 1 forward and near 1 backward (a small factor at $n = 8$, as far as Sinkhorn–Knopp
#   converged), for every $n$ tried. Of the $n = 4$ runs HC reached the lowest loss; the runs are too
#   small, too short and single-seeded to reproduce, or refute, the paper's loss results.
# - mHC on our kernels adds about a fifth to a step at $C = 2048$ and about as much as the whole
#   residual step at $C = 512$, where the paper measures 6.7% at far larger width. Part of the gap
#   is the width (a connection's bytes grow as $nC$, the sublayers' work as $C^2$); the rest is our
#   kernels' distance from the floor and, at small widths, host time per call.
#
# ## The end of the course
#
# You have followed mHC from the residual connection through Hyper-Connections, doubly stochastic
# matrices and Sinkhorn–Knopp, to the layer, its kernels, its memory, and a training run. Where to
# go next: the package (`mhc_course.MHC` with `backend="triton"` drops into your own model, see
# `README.md`), the trainer (`python -m mhc_course train --help`, data-parallel under
# `torchrun`), and the open questions above, which need larger runs than this course made.
