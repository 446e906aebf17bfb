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
# # 06 · Fused kernels in Triton
#
# Lesson 05 built the mHC layer from plain PyTorch operations. It is correct, but every
# operation is its own GPU kernel, and each kernel reads its inputs from memory and writes its
# result back. The connection does little arithmetic per element, so those trips to memory
# set its speed. This lesson counts them and shows how fused kernels cut them down.
#
# **In this lesson you will**
# 1. count the bytes and FLOPs per token of the connection, unfused and fused, for any $n$ and $C$;
# 2. put them on a roofline and get the time floor from a measured copy bandwidth;
# 3. see how the course checks its Triton kernels against the reference (fresh random inputs,
#    relative error by dtype, outputs poisoned with NaN) and run that check yourself;
# 4. read the committed H100 benchmark, and time the kernels live if you have a GPU;
# 5. write the post+res kernel in Triton, and a test that catches broken kernels.

# %% [markdown]
# ## Setup
#
# `mhc_course.kernels` holds the course's Triton kernels. Import it first, before `triton`
# itself: on a machine without CUDA it sets `TRITON_INTERPRET=1`, and Triton reads that
# variable when it is imported (its own built-in functions are kernels too) and when a kernel
# is defined. Kernels then run in Triton's interpreter on the CPU: the same code, slowly and
# in float32 only, so this lesson keeps interpreter shapes tiny.

# %%
import mhc_course.kernels  # noqa: F401  (first: without CUDA this switches Triton to its interpreter)
import torch

from mhc_course import pick, profile

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
mode = "compiled for the GPU" if DEVICE == "cuda" else "Triton's interpreter on the CPU (float32 only)"
print(f"profile: {profile()}, device: {DEVICE}, kernels run in {mode}")

# %% [markdown]
# ## Counting bytes per token
#
# Per token the connection reads the $n$ streams $x \in \mathbb{R}^{n\times C}$ and the
# sublayer output $f = \mathcal{F}(h) \in \mathbb{R}^{C}$ and writes
#
# $$h = \mathcal{H}^{pre} x, \qquad x_{next} = \mathcal{H}^{res} x + \mathcal{H}^{post\top} f .$$
#
# **Naive.** One kernel per step, each result written to memory and read back by the next
# step: the coefficients, $\mathcal{H}^{pre}x$, $\mathcal{H}^{post\top}f$, $\mathcal{H}^{res}x$
# and the merge of the last two. The paper (§4.3) counts, per token, in elements:
#
# $$\text{naive HC: reads } (5n+1)C + n^2 + 2n, \quad \text{writes } (3n+1)C + n^2 + 2n;
# \qquad \text{plain residual: reads } 2C, \text{ writes } C.$$
#
# Fusing post, res and the merge into one kernel cuts that step to reads $(n+1)C$ and writes
# $nC$. The course's kernels go further. The forward uses two kernels around the sublayer:
# one computes the coefficients and $h$ (reads $x$, writes $h$), and one computes post+res
# (reads $x$ and $f$, writes $x_{next}$). That is at least $(3n+2)C$ elements per token. The
# backward must at least read $g = \partial L/\partial x_{next}$, $x$, $f$ and
# $\partial L/\partial h$ once and write $\partial L/\partial x$ and $\partial L/\partial f$
# once, which adds $(3n+3)C$, so forward+backward comes to $(6n+5)C$. In bf16 every element
# is 2 bytes. `mhc_course.io_model` counts each schedule for any $n$ and $C$. Below, $n$ and
# $C$ come from the committed benchmark file (loaded in the next cell).

# %%
from mhc_course.bench_results import load_bench
from mhc_course.io_model import (
    fused_forward_backward_traffic,
    fused_forward_traffic,
    fused_post_res_traffic,
    naive_hc_steps,
    naive_hc_traffic,
    residual_traffic,
)

bench = load_bench()
n, C = bench.rows[0]["n"], bench.widths()[0]
eb = 2  # bytes per bf16 element
print(f"n = {n}, C = {C}, bf16 activations, float32 coefficients; elements per token:")
print(f"{'naive HC, step':<22}{'act read':>10}{'act write':>10}{'coef read':>10}{'coef write':>11}")
naive = naive_hc_traffic(n, C)
for s in naive_hc_steps(n, C) + [naive]:
    label = "total" if s is naive else s.name
    print(f"{label:<22}{s.act_read:>10}{s.act_write:>10}{s.coef_read:>10}{s.coef_write:>11}")
print(f"paper's formulas: reads {(5 * n + 1) * C + n * n + 2 * n}, writes {(3 * n + 1) * C + n * n + 2 * n}; "
      f"ours: reads {naive.reads}, writes {naive.writes}")

# %% [markdown]
# The same count for each schedule, in bytes per token. The coefficients ($n^2 + 2n$ float32
# values per token) do not grow with $C$. The fused counts leave them out, as the benchmark
# does; the naive count keeps them, and the last line shows how small they are:

# %%
schedules = [residual_traffic(C), naive, fused_post_res_traffic(n, C), fused_forward_traffic(n, C),
             fused_forward_backward_traffic(n, C)]
base = schedules[0].bytes(eb)
print(f"{'schedule':<26}{'reads':>8}{'writes':>8}{'KiB/token':>11}{'× residual':>12}")
for s in schedules:
    print(f"{s.name:<26}{s.reads:>8}{s.writes:>8}{s.bytes(eb) / 1024:>11.2f}{s.bytes(eb) / base:>12.2f}")
fwd, fwd_bwd = schedules[3], schedules[4]
print(f"fused forward = (3n+2)·C·2 bytes: {fwd.bytes(eb) == (3 * n + 2) * C * 2}; "
      f"fused fwd+bwd = (6n+5)·C·2 bytes: {fwd_bwd.bytes(eb) == (6 * n + 5) * C * 2}")
print(f"naive HC moves {naive.bytes(eb) / fwd.bytes(eb):.2f}× the fused forward's bytes; coefficients are "
      f"{(naive.coef_read + naive.coef_write) * 4 / naive.bytes(eb):.2%} of its bytes")

# %% [markdown]
# ## FLOPs and arithmetic intensity
#
# Fusion changes how often data crosses memory, not the arithmetic. Most of the FLOPs are in
# the projection $v\varphi$: $2\,nC\,(n^2+2n)$ per token forward, twice that backward ($dx$
# and $d\varphi$). Next come $\mathcal{H}^{res}x$, $\mathcal{H}^{pre}x$ and the RMS. Sinkhorn
# works on $n\times n$ matrices, so its cost does not grow with $C$. Our backward recomputes
# the Sinkhorn iterations in registers instead of storing them, and that recomputation is
# included. **Arithmetic intensity** is FLOPs per byte moved.

# %%
from mhc_course.io_model import arithmetic_intensity, connection_flops, flops_per_token, residual_flops

parts = connection_flops(n, C)
for phase in ("forward", "backward"):
    print(f"{phase} FLOPs per token, n = {n}, C = {C}:")
    for name, f in parts[phase].items():
        print(f"  {name:<32}{f:>10,}")
f_fwd, f_all = flops_per_token(n, C), flops_per_token(n, C, backward=True)
points = [
    {"label": "plain residual", "intensity": arithmetic_intensity(residual_flops(C), schedules[0].bytes(eb))},
    {"label": "naive HC, forward", "intensity": arithmetic_intensity(f_fwd, naive.bytes(eb))},
    {"label": "fused, forward", "intensity": arithmetic_intensity(f_fwd, fwd.bytes(eb))},
    {"label": "fused, fwd+bwd", "intensity": arithmetic_intensity(f_all, fwd_bwd.bytes(eb))},
]
for p in points:
    print(f"arithmetic intensity, {p['label']:<18}: {p['intensity']:6.2f} FLOP/byte")

# %% [markdown]
# ## The roofline and the floor
#
# A kernel needs at least $\text{bytes}/B$ seconds to move its data at bandwidth $B$, and
# $\text{FLOPs}/P$ seconds to compute at peak throughput $P$. Its best attainable throughput
# is therefore $\min(P,\ I \cdot B)$ for intensity $I$: the *roofline*. Where the two roofs
# meet is the *ridge point* $P/B$. A kernel with $I$ below the ridge is bandwidth-bound, and
# its time floor is $\text{bytes}/B$, whatever the arithmetic.
#
# The committed file records the copy bandwidth measured on the benchmark's GPU in the same
# run: a large device-to-device copy, counting bytes read plus bytes written. It may also
# record a measured matrix-multiply throughput. The next cell prints what it holds. It also
# measures this machine's copy bandwidth and matrix-multiply throughput live, so you can place
# the same points on a roofline you measured yourself.

# %%
from mhc_course.io_model import measure_copy_bandwidth, measure_matmul_tflops, ridge_point

print(f"committed file: {bench.describe()}")
peaks = bench.matmul_tflops()
print("matrix throughput in the committed file: "
      + (", ".join(f"{k} {v:.0f} TFLOP/s" for k, v in peaks.items()) if peaks else "not measured in that run"))
if DEVICE == "cuda":  # a GPU measures large sizes in milliseconds
    live_dtype, copy_mib, matmul_size = torch.bfloat16, 1024, 8192
else:
    live_dtype, copy_mib, matmul_size = torch.float32, pick(ci=16, default=128), pick(ci=512, default=1024)
live_bw = measure_copy_bandwidth(DEVICE, mib=copy_mib)
live_tflops = measure_matmul_tflops(DEVICE, size=matmul_size, dtype=live_dtype)
here = torch.cuda.get_device_name(0) if DEVICE == "cuda" else "this CPU"
print(f"measured live on {here}: copy bandwidth {live_bw:.1f} GB/s, "
      f"{str(live_dtype).removeprefix('torch.')} matmul {live_tflops:.3g} TFLOP/s, "
      f"ridge point {ridge_point(live_bw, live_tflops):.3g} FLOP/byte")

# %%
from mhc_course.viz.kernels import roofline_figure

device_name = bench.meta["device"]
roofs = [{"label": f"{device_name}: copy bandwidth (committed)", "bandwidth_gbs": bench.bandwidth_gbs,
          "peak_tflops": None}]
roofs += [{"label": f"{device_name}: {k} matmul (committed)", "bandwidth_gbs": bench.bandwidth_gbs,
           "peak_tflops": v} for k, v in peaks.items()]
roofs.append({"label": f"{here} (measured live)", "bandwidth_gbs": live_bw, "peak_tflops": live_tflops})
roofline_figure(roofs, points, title=f"Roofline: the connection at n = {n}, C = {C}, bf16 bytes")

# %%
for roof in roofs[1:]:
    ridge = ridge_point(roof["bandwidth_gbs"], roof["peak_tflops"])
    bound = [p["label"] for p in points if p["intensity"] < ridge]
    print(f"{roof['label']}: ridge {ridge:.3g} FLOP/byte; bandwidth-bound there: {', '.join(bound) or 'none'}")

# %% [markdown]
# **What you should see:** diamonds for the four schedules on the first roof (the benchmarked
# GPU's bandwidth roof), with their intensities in the legend. The lines under the figure print
# the ridge point of every roof whose compute ceiling was measured, and which schedules sit
# left of it (bandwidth-bound). The connection's intensity is a few FLOPs per byte, because
# nearly every element it loads is used in only a handful of multiply-adds. A GPU's matrix
# units are built for matrix products, whose intensity grows with the matrix size, so a GPU's
# ridge lies far to the right of these points (run the lesson on a GPU to measure it live).
# A laptop CPU has much less arithmetic per byte of bandwidth, so its live ridge may fall
# among the points: there the same connection would be compute-bound. On the GPU the time
# floor is therefore the bytes divided by the bandwidth. For the benchmark's $T$ tokens, that
# floor should equal the file's own "floor" row:

# %%
from mhc_course.io_model import floor_ms

for width in bench.widths():
    row = bench.floor(width)
    mine = [floor_ms(t.bytes(eb), row["T"], bench.bandwidth_gbs) for t in (fused_forward_traffic(n, width),
                                                                           fused_forward_backward_traffic(n, width))]
    print(f"C = {width}, T = {row['T']}: floor forward {mine[0]:.4f} ms (file: {row['fwd_ms']:.4f}), "
          f"forward+backward {mine[1]:.4f} ms (file: {row['fwd_bwd_ms']:.4f})")

# %% [markdown]
# ## The fused kernels
#
# `mhc_course.kernels.mhc_connection(x, phi, bias, alpha, layer)` runs the whole connection
# around a sublayer in few passes over memory (read `kernels/connection.py`):
#
# - **Forward, kernel 1 (coefficients + pre).** One program owns a block of tokens. It scans
#   $x$ once, accumulating the sum of squares and $x\varphi$ on the matrix units. Then it
#   divides by the RMS *after* the matmul, as the paper does. The gates, $\sigma$, $2\sigma$
#   and the Sinkhorn iterations run in registers. A second scan over the same tokens writes
#   $h = \mathcal{H}^{pre}x$; measured on the H100, it costs about what a read from memory does
#   (the tokens' rows do not stay in L2 cache between the scans, `benchmarks/NOTES.md`).
# - **The sublayer** runs on $h$ under its own autograd graph.
# - **Forward, kernel 2 (post+res)** writes $x_{next} = \mathcal{H}^{res}x + \mathcal{H}^{post\top}f$.
# - **Backward:** one pass over $g$ writes $\partial L/\partial f$; the sublayer's backward
#   runs; a token pass reduces $d\mathcal{H}^{res}, d\mathcal{H}^{post}, d\mathcal{H}^{pre}$
#   over $C$ and back-propagates through $\sigma$, $2\sigma$ and Sinkhorn, recomputing the
#   iterations on-chip instead of storing them; a channel pass writes $\partial L/\partial x$
#   and $\partial L/\partial\varphi$. When $x$ came from another fused connection, that pass
#   also writes the earlier connection's $\partial L/\partial f$ from the $\partial L/\partial x$
#   it holds, and the earlier connection skips its first pass (`kernels/chain.py`).
#
# That backward reads $g$ and $x$ in more than one pass, so it moves more than the minimal
# $(3n+3)C$ counted above (`io_model.kernel_pass_steps` lists every pass of forward and backward:
# $(10n+6)C$ per token in all, $(9n+6)C$ for a connection between two others); the benchmark
# times one connection alone, and its bandwidth share is measured against the minimum.
# The paper computes $x\varphi$ in tf32. With bf16 activations, our kernel instead splits
# $\varphi$ into two bf16 parts and sums both products in float32, which keeps more of
# $\varphi$'s mantissa than tf32 (see `kernels/coefficients_fwd.py`).
#
# The hand-over between connections moves work, it does not change the result. Below, the passes
# `io_model` counts for a connection alone and for one between two others, then three fused
# connections in a row run twice: as they are, and inside `chain.unfolded()`, which makes every
# connection run its own $\partial L/\partial f$ pass. The gradients of the input and of every
# $\varphi$ come out the same, up to the order of float32 sums.

# %%
from mhc_course.kernels import mhc_connection
from mhc_course.kernels.chain import unfolded

from mhc_course.io_model import kernel_pass_steps

for chained in (False, True):
    steps = kernel_pass_steps(4, 1, chained=chained)
    print(f"{'between two others' if chained else 'alone':>18}: "
          + ", ".join(f"{st.name} {st.act_read + st.act_write}·C" for st in steps)
          + f" → {sum(st.act_read + st.act_write for st in steps)}·C per token (n = 4)")


def three_in_a_row(x, params, layers):
    """Gradients of x and of each connection's φ after three fused connections in a row."""
    x = x.detach().clone().requires_grad_()
    phis = [p[0].detach().clone().requires_grad_() for p in params]
    y = x
    for phi, (_, bias, alpha), layer in zip(phis, params, layers, strict=True):
        y = mhc_connection(y, phi, bias, alpha, layer)[0]
    (y * torch.linspace(-1, 1, y.shape[-1], device=DEVICE)).sum().backward()
    return [x.grad] + [phi.grad for phi in phis]


torch.manual_seed(0)
n_demo, c_demo = 4, 16
x_demo = torch.randn(2, 3, n_demo, c_demo, device=DEVICE)
k_demo = n_demo * n_demo + 2 * n_demo
params_demo = [(torch.randn(n_demo * c_demo, k_demo, device=DEVICE) / (n_demo * c_demo) ** 0.5,
                torch.randn(k_demo, device=DEVICE), torch.rand(3, device=DEVICE) + 0.2) for _ in range(3)]
layers_demo = [torch.nn.Sequential(torch.nn.Linear(c_demo, c_demo), torch.nn.Tanh()).to(DEVICE) for _ in range(3)]
handed_over = three_in_a_row(x_demo, params_demo, layers_demo)
with unfolded():
    own_passes = three_in_a_row(x_demo, params_demo, layers_demo)
for name, a, b in zip(["x", "φ₁", "φ₂", "φ₃"], handed_over, own_passes, strict=True):
    print(f"d{name}: largest difference {(a - b).abs().max().item():.1e} (largest entry {b.abs().max().item():.2f})")

# %% [markdown]
# ## How the kernels are tested
#
# A kernel can be fast and wrong. The course's kernel tests (`tests/test_kernels.py`, and
# `benchmarks/check_kernels_gpu.py` at benchmark sizes on a GPU) follow three rules, collected
# in `mhc_course.kernel_harness`:
#
# 1. **Fresh random inputs** for every comparison, never zeros or ones. A zero input hides a
#    missing term, and a symmetric $\mathcal{H}^{res}$ hides a transpose.
# 2. **Relative error against float64:** $\|ours - ref\| / \|ref\|$, where the reference runs
#    in float64 on exactly the values the kernel got. The tolerance depends on the kernel's
#    dtype: float32 kernels agree to rounding, bf16 ones only to bf16's 8-bit mantissa.
# 3. **Poisoned outputs.** Inside `poisoned()`, `torch.empty` returns NaN-filled tensors, so
#    an output element that a kernel never writes stays NaN and cannot pass.
#
# Why poison? A kernel whose launch grid misses the last block of channels leaves those
# elements holding whatever was in the buffer before. PyTorch's caching allocator on a GPU
# readily hands out the block just freed by a tensor of the same size. If that tensor was the
# reference output, the stale values are the right answer, and the test passes. Below, one of
# the deliberately broken kernels of exercise 6.2 writes into such a buffer:

# %%
from mhc_course import mhc_post_res
from mhc_course.exercises.l06_kernels import BROKEN, post_res_inputs
from mhc_course.kernel_harness import TOLERANCE, poisoned, relative_error

stale_tail = BROKEN["unwritten tail, in a buffer that already holds the right values"]
x, f, h_post, h_res = post_res_inputs(3, 4, 40)
want = mhc_post_res(x, f, h_post, h_res)
plain = relative_error(stale_tail(x, f, h_post, h_res), want)
with poisoned():
    caught = relative_error(stale_tail(x, f, h_post, h_res), want)
print(f"tolerances by dtype: { {str(k).removeprefix('torch.'): v for k, v in TOLERANCE.items()} }")
print(f"kernel that skips the last block: relative error {plain:.1e} without poisoning "
      f"({'passes' if plain < TOLERANCE[torch.float32] else 'fails'}), {caught} with poisoning "
      f"({'passes' if caught < TOLERANCE[torch.float32] else 'fails'})")

# %% [markdown]
# Now the harness on the course's kernels: every contract function and the fused connection,
# forward and every input gradient, with outputs poisoned. On a CPU it runs in the
# interpreter at tiny sizes in float32. On a GPU it runs compiled at larger sizes, in float32
# and bf16, and includes widths that are not a multiple of any block size.

# %%
from mhc_course.kernel_harness import OPS, compare_op, harness_table

if DEVICE == "cuda":
    shapes = pick(ci=[(1024, 4, 1000)], default=[(4096, 4, 2048), (2048, 4, 2047), (2048, 2, 777)])
    dtypes = [torch.float32, torch.bfloat16]
else:
    shapes = pick(ci=[(8, 4, 24)], default=[(8, 4, 24), (12, 2, 40)])
    dtypes = [torch.float32]
rows = [compare_op(op, T_, n_, C_, dtype, DEVICE, seed=i)
        for i, (T_, n_, C_) in enumerate(shapes) for dtype in dtypes for op in OPS]
print(harness_table(rows))
print(f"{sum(r.ok for r in rows)} of {len(rows)} comparisons within tolerance")

# %% [markdown]
# ## The committed GPU benchmark
#
# `benchmarks/bench_connection.py` times one connection around an identity sublayer
# ($f = h$), so that only the connection is measured. It covers forward and forward+backward,
# for T tokens of $n$ streams in bf16, with `triton.testing.do_bench` (median). All rows run
# side by side in one process: a plain residual add, the eager PyTorch reference,
# `torch.compile` of it, public mHC implementations where installed, ours, and the floor at
# the measured copy bandwidth. "% of copy" is the minimal byte count divided by the time,
# relative to the copy bandwidth: the floor is 100%. **These numbers come from the committed
# file, not from your machine:**

# %%
print(bench.describe())
print(f"file: {bench.path.name}")
print(f"{'C':>6}  {'implementation':<34}{'fwd ms':>9}{'fwd+bwd ms':>12}{'fwd % copy':>12}{'f+b % copy':>12}")
for r in bench.rows:
    if "skipped" in r:
        print(f"{r['C']:>6}  {r['row']:<34}skipped: {r['skipped']}")
        continue
    pct = (f"{r['fwd_pct_copy']:>11.1f}%{r['fwd_bwd_pct_copy']:>11.1f}%" if "fwd_pct_copy" in r else
           f"{'(floor)':>12}{'(floor)':>12}")
    print(f"{r['C']:>6}  {r['row']:<34}{r['fwd_ms']:>9.3f}{r['fwd_bwd_ms']:>12.3f}{pct}")

# %%
from mhc_course.bench_results import EAGER, OURS, RESIDUAL
from mhc_course.viz.kernels import results_figure

results_figure(bench)

# %%
for width in bench.widths():
    ours, eager, floor = bench.find(width, OURS), bench.find(width, EAGER), bench.floor(width)
    mhc_rows = [r for r in bench.measured(width) if not r["row"].startswith(RESIDUAL)]
    fastest = {k: min(mhc_rows, key=lambda r: r[k])["row"] for k in ("fwd_ms", "fwd_bwd_ms")}  # noqa: B023
    print(f"C = {width}: ours is {eager['fwd_ms'] / ours['fwd_ms']:.1f}× faster than eager forward and "
          f"{eager['fwd_bwd_ms'] / ours['fwd_bwd_ms']:.1f}× forward+backward; ours takes "
          f"{ours['fwd_ms'] / floor['fwd_ms']:.2f}× / {ours['fwd_bwd_ms'] / floor['fwd_bwd_ms']:.2f}× the floor; "
          f"fastest mHC row: forward {fastest['fwd_ms']!r}, fwd+bwd {fastest['fwd_bwd_ms']!r}")

# %% [markdown]
# **What you should see:** on the left, time per implementation on a log scale, with the floor
# as its own bar. On the right, each implementation's share of the copy bandwidth, with a
# dashed line at 100%. The plain residual add moves only $3C$ elements per token in one
# kernel, and in the forward it comes close to the copy bandwidth. The printed lines give, per
# width, how far ours is from eager PyTorch and from the floor, and which mHC row is fastest.
# Compare how far ours is from its floor forward and forward+backward: the backward reads $g$
# and $x$ in more than one pass, so it moves more bytes than the minimum the floor counts.
#
# ## Live timing (GPU only)
#
# With a CUDA GPU, the next cell times ours and the eager reference on your GPU, the same way
# the benchmark does. Without one it says so, and the numbers above remain the only timings
# in this lesson.

# %%
from mhc_course.io_model import time_connection

if DEVICE == "cuda":
    import triton

    T_live, C_live = pick(ci=4096, default=16384), bench.widths()[0]
    live = time_connection(T_live, n, C_live)
    print(f"LIVE on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, Triton {triton.__version__}: "
          f"T = {T_live}, n = {n}, C = {C_live}, bf16, identity sublayer")
    for name, t in live.items():
        print(f"  {name:<16} forward {t['fwd_ms']:.3f} ms, forward+backward {t['fwd_bwd_ms']:.3f} ms")
    print(f"  ours vs eager, live: {live['eager reference']['fwd_ms'] / live['ours']['fwd_ms']:.1f}× forward, "
          f"{live['eager reference']['fwd_bwd_ms'] / live['ours']['fwd_bwd_ms']:.1f}× forward+backward")
    c_ours, c_eager = bench.find(C_live, OURS), bench.find(C_live, EAGER)
    print(f"  committed ({bench.meta['device']}, {bench.meta['date']}, T = {c_ours['T']}): "
          f"{c_eager['fwd_ms'] / c_ours['fwd_ms']:.1f}× forward, "
          f"{c_eager['fwd_bwd_ms'] / c_ours['fwd_bwd_ms']:.1f}× forward+backward")
else:
    m = bench.meta
    print(f"No CUDA device here: no live timing. Every timing in this lesson comes from {bench.path.name} "
          f"({m['device']}, {m['date']}, torch {m['torch']}, Triton {m['triton']}).")

# %% [markdown]
# ## Widget: bytes per token and the time they cost
#
# Choose the number of streams $n$, the width $C$ and the activation dtype. The left panel
# shows the bytes per token of four schedules: the plain residual, the unfused connection
# (the paper's naive count), and our fused forward and forward+backward (their minima). The
# right panel divides those bytes by the benchmark's measured copy bandwidth, for its $T$
# tokens: a predicted floor. Where the file benchmarked that $n$, $C$ and dtype, the measured
# times stand next to the predictions: residual add, eager reference (an unfused
# implementation), and ours.
#
# **What you should see:** every bar grows with $C$, and all but the residual's also grow with
# $n$. The unfused forward stands well above the fused forward. The measured bars sit above
# their predictions. The eager reference sits much further above the unfused prediction than
# ours does above its fused one, because eager PyTorch launches many more kernels than the
# steps of the naive count and upcasts to float32 on the way (the ratios are printed below the
# widget). At a width, $n$ or dtype that was not benchmarked, only the predictions are drawn.

# %%
from mhc_course.viz.kernels import traffic_state, traffic_widget

fig = traffic_widget(bench, n=n, C=C, dtype="bfloat16")

# %%
for width in bench.widths():
    s = traffic_state(bench, n, width, "bfloat16")
    ratios = ", ".join(f"{name.replace('<br>', ' ')} {m / p:.1f}×"
                       for name, m, p in zip(s["schedules"], s["measured_ms"], s["predicted_ms"], strict=True))
    print(f"C = {width}, measured / predicted: {ratios}")

# %% [markdown]
# ## Exercises
#
# **Exercise 6.1 (the post+res kernel).** Write the body of a Triton kernel computing
# $out[t, i, c] = \sum_j \mathcal{H}^{res}[t, i, j]\, x[t, j, c] + \mathcal{H}^{post}[t, i]\, f[t, c]$.
# All tensors are contiguous: `x` and `out` $(T, N, C)$, `f` $(T, C)$, `post` $(T, N)$,
# `res` $(T, N, N)$. The check launches your kernel on a grid of $T \times \lceil C/BC\rceil$
# programs: program $(t, b)$ writes every stream $i$ of token $t$ for the channels
# $b\cdot BC, \dots, b\cdot BC + BC - 1$ that are below $C$. $N$ and $BC$ are powers of two
# (`tl.constexpr`), and $C$ is not a multiple of $BC$. The check runs your kernel in the
# interpreter on a CPU (compiled on a GPU) on fresh inputs, with the output poisoned with NaN,
# and compares with `mhc_course.mhc_post_res`. If your kernel fails to compile or run, the
# check prints the error.

# %%
import triton
import triton.language as tl

from mhc_course.exercises.checking import show_solution
from mhc_course.exercises.l06_kernels import (
    check_post_res_kernel,
    check_post_res_test,
    check_unfused_forward_bytes,
    solution_post_res_kernel,
    solution_post_res_test,
    solution_unfused_forward_bytes,
)


@triton.jit
def post_res_kernel(x_ptr, f_ptr, post_ptr, res_ptr, out_ptr, C, N: tl.constexpr, BC: tl.constexpr):
    # program (t, b): out[t, i, c] for every stream i and the channels c of block b
    raise NotImplementedError


check_post_res_kernel(post_res_kernel)

# %% [markdown]
# **Exercise 6.2 (a test for it).** Write `test_post_res(post_res)`. It gets an implementation
# with the signature of `mhc_course.mhc_post_res`, for `x` of shape $(T, n, C)$, and must
# raise (e.g. `AssertionError`) when that implementation is wrong. The check runs your test on
# our kernel, which must pass, and on the broken kernels in `BROKEN`, each of which must be
# caught: one reads $\mathcal{H}^{res}$ transposed, one forgets $\mathcal{H}^{post}f$, and two
# never write the last partial block of 16 channels. Use `post_res_inputs(T, n, C)` for fresh
# inputs, `relative_error` and `poisoned()` from `mhc_course.kernel_harness`, and keep the
# sizes tiny (a few tokens, $C$ up to 64): on a CPU every call runs in the interpreter.

# %%
def test_post_res(post_res) -> None:
    raise NotImplementedError


check_post_res_test(test_post_res)

# %% [markdown]
# **Exercise 6.3 (optional: counting bytes).** Suppose $\mathcal{H}^{pre}x$ were its own kernel
# instead of being fused into the coefficient kernel: three forward kernels (coefficients;
# pre; post+res) around the sublayer. Return the activation bytes per token they move, as a
# function of $n$, $C$ and the bytes per element. Count only activations, as the
# $(3n+2)\cdot C$ count does.

# %%
def unfused_forward_bytes(n: int, C: int, element_bytes: int) -> int:
    raise NotImplementedError


check_unfused_forward_bytes(unfused_forward_bytes)

# %% [markdown]
# The reference solutions, checked in CI, so you can compare once you are done:

# %%
print(show_solution(solution_post_res_kernel.fn))
print(show_solution(solution_post_res_test))
print(show_solution(solution_unfused_forward_bytes))
print(check_post_res_kernel(solution_post_res_kernel))
print(check_post_res_test(solution_post_res_test))
print(check_unfused_forward_bytes(solution_unfused_forward_bytes))

# %% [markdown]
# ## Recap
#
# - The connection does only a few FLOPs per byte it moves, far below a GPU's ridge point, so
#   its speed is set by bytes, not FLOPs. The time floor is bytes divided by the measured copy
#   bandwidth.
# - Unfused, the paper counts $(5n+1)C + n^2 + 2n$ elements read and $(3n+1)C + n^2 + 2n$
#   written per token. The fused kernels need at least $(3n+2)C$ forward and $(6n+5)C$
#   forward+backward: the coefficients and $\mathcal{H}^{pre}x$ in one kernel, post+res in
#   another, and Sinkhorn recomputed in registers in the backward.
# - Kernels are tested against a float64 reference on fresh random inputs, with a relative
#   tolerance by dtype and NaN-poisoned outputs, so unwritten elements cannot pass.
# - Benchmarks name their device, versions and date, run every implementation side by side,
#   and report the share of the measured copy bandwidth. This lesson says which timings are
#   committed and which are live.
#
# Next: **07 · Memory, recomputation, scheduling**: what the $n$ streams cost in activation
# memory, and how recomputing the connection in the backward pays less.
