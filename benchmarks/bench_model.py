"""The whole GPT, forward + backward, with each connection implementation side by side (run on a CUDA GPU).

Workload (defaults): the course's GPT (``mhc_course.model``) at width C = 2048, 16 heads, 8 blocks
(16 connections), sequence 2048, batch 4, n = 4 streams, byte vocabulary. Precision ``bf16``: the
model's weights and activations in bf16, the connections' parameters (φ, b, α) in fp32, as the
paper's mixed precision (x in bf16, φ in tf32, α and b in fp32). ``--precision autocast`` instead
keeps fp32 weights under bf16 autocast with the residual streams in bf16, as the trainer does.

Rows, one process, one after another:

- ``residual``: the plain pre-norm GPT (n = 1), the baseline;
- ``mhc-triton``: mHC with ``backend="triton"`` (mhc_course.kernels);
- ``mhc-triton-unfolded``: the same, with each connection running its own dF pass instead of the
  next connection's channel pass writing it (``kernels/chain.py``), for the difference;
- ``mhc-torch``: mHC with the PyTorch reference, eager;
- ``mhc-liger``: mHC whose coefficients, pre and post+res come from Liger-Kernel's ops
  (``liger_mhc_coeffs``, ``liger_mhc_pre``, ``liger_mhc_post_res``). Liger's Sinkhorn starts
  with a row softmax and adds eps = 1e-6 to each normalisation: the same shapes and cost, not
  bit-identical mappings;
- ``mhc-torch-compile``: the reference model under ``torch.compile``.

Each row: median ms of one forward + backward (``triton.testing.do_bench``), tokens/s, the
ratio to the residual row, and the peak memory allocated during one step. A row whose backend
is unavailable (no CUDA, liger-kernel not installed, …) or that fails is reported with the
reason, never dropped. Raw JSON goes to ``--out``; a markdown table naming device, versions and
date is printed (and written to ``--md`` if given).

    python benchmarks/bench_model.py --out benchmarks/results/bench_model.json --md benchmarks/results/bench_model.md

``--cuda-graph`` captures each row's forward + backward in one CUDA graph and times its replay:
the same GPU work without the host's per-operation cost (Python, autograd, kernel launches), so
the difference between a row's eager and graph times is what the host adds. Before timing, the
parameter gradients of one replay are compared with an eager step's; a row whose graph gives
different gradients is reported as failed.

A CPU smoke check of the script itself (tiny sizes, plain timer, fp32):

    python benchmarks/bench_model.py --smoke --out /tmp/bench_model.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from importlib import metadata

import torch
from torch import Tensor

from mhc_course.mhc import MHC
from mhc_course.model import GPT, GPTConfig

# torch.compile last: it points Triton at torch's own ptxas for every kernel compiled after it in
# the process (benchmarks/NOTES.md), which would change the Triton rows that follow it.
ROWS = ("residual", "mhc-triton", "mhc-triton-unfolded", "mhc-torch", "mhc-liger", "mhc-torch-compile")


class LigerMHC(MHC):
    """An mHC connection that computes with Liger-Kernel's Triton ops instead of the reference.

    Same parameters as ``MHC`` (φ with columns [pre | post | res], b, α): Liger takes the three
    gates as separate scalars and needs x in bf16/fp16 unless ``allow_fp32``.
    """

    def coefficients(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        from liger_kernel.transformers.functional import liger_mhc_coeffs

        a = self.alpha
        return liger_mhc_coeffs(x, self.phi, self.bias, a[0], a[1], a[2], allow_fp32=x.dtype == torch.float32,
                                tmax=self.iters, rms_eps=self.eps)

    def pre(self, x: Tensor, h_pre: Tensor) -> Tensor:
        from liger_kernel.transformers.functional import liger_mhc_pre

        return liger_mhc_pre(x, h_pre)

    def post_res(self, x: Tensor, f: Tensor, h_post: Tensor, h_res: Tensor) -> Tensor:
        from liger_kernel.transformers.functional import liger_mhc_post_res

        return liger_mhc_post_res(x, f.to(x.dtype), h_post, h_res)


def version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def unavailable(row: str, device: torch.device) -> str | None:
    """Why a row cannot run here, or None."""
    if row.startswith("mhc-triton") and device.type != "cuda":
        return "no CUDA device: Triton kernels are timed on a GPU only (the CPU interpreter is for correctness)"
    if row == "mhc-liger":
        if device.type != "cuda":
            return "no CUDA device: Liger-Kernel's ops need a GPU"
        try:
            from liger_kernel.transformers.functional import liger_mhc_coeffs  # noqa: F401
        except Exception as exc:  # missing wheel, or a version without the mHC ops
            return f"liger-kernel unavailable ({version('liger-kernel')}): {type(exc).__name__}: {exc}"
    return None


def build(row: str, args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the model whose parameters are counted, the callable that is timed)."""
    connection = "residual" if row == "residual" else "mhc"
    cfg = GPTConfig(seq_len=args.seq, depth=args.depth, width=args.width, heads=args.heads, connection=connection,
                    n=1 if row == "residual" else args.n, backend="triton" if row.startswith("mhc-triton") else "torch",
                    stream_dtype="bfloat16" if args.precision == "autocast" else None)
    torch.manual_seed(0)
    model = GPT(cfg)
    if row == "mhc-liger":
        for block in model.blocks:
            for name in ("attn_conn", "mlp_conn"):
                old = getattr(block, name)
                new = LigerMHC(old.n, old.C, iters=old.iters, eps=old.eps)
                new.load_state_dict(old.state_dict())
                setattr(block, name, new)
    model = model.to(device)
    if args.precision == "bf16":
        model = model.to(torch.bfloat16)
        for conn in model.connections():
            conn.float()  # φ, b, α stay fp32
    run = torch.compile(model) if row == "mhc-torch-compile" else model
    return model, run


def step_fn(model: torch.nn.Module, run: torch.nn.Module, args: argparse.Namespace,
            device: torch.device, fold: bool = True) -> Callable[[], None]:
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 256, (args.batch, args.seq), generator=g).to(device)
    tgt = torch.randint(0, 256, (args.batch, args.seq), generator=g).to(device)
    use_autocast = args.precision == "autocast" and device.type == "cuda"

    if fold:
        fold_context = contextlib.nullcontext
    else:  # imported here: mhc_course.kernels needs Triton, which the other rows do not
        from mhc_course.kernels.chain import unfolded as fold_context

    def step() -> None:
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_autocast), fold_context():
            _, loss = run(idx, tgt)
        loss.backward()

    return step


def graphed(model: torch.nn.Module, step: Callable[[], None]) -> Callable[[], None]:
    """``step`` captured in a CUDA graph (after warm-up on a side stream); returns its replay.

    Raises RuntimeError when one replay's parameter gradients differ from an eager step's, e.g. if
    some kernel were launched outside the captured stream: by more than bf16's tolerance and more
    than four times what two eager steps differ by (the attention backward of cuDNN adds with
    atomics, so two eager steps need not agree to the bit either; a sum over every token such as
    a connection's dα then differed by 2.4% between a replay and an eager step on an H100)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()  # zero_grad(set_to_none) first: the gradients are allocated in the graph's pool
    params = [(name, p) for name, p in model.named_parameters() if p.grad is not None]
    captured = [p.grad for _, p in params]
    graph.replay()
    torch.cuda.synchronize()
    replayed = [g.float().clone() for g in captured]
    step()
    eager = [p.grad.float().clone() for _, p in params]
    step()

    def rel(a: Tensor, b: Tensor) -> float:
        return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()

    for (name, p), got, want in zip(params, replayed, eager, strict=True):
        err, spread = rel(got, want), rel(p.grad.float(), want)
        if not err < max(2e-2, 4 * spread):
            raise RuntimeError(f"CUDA graph replay gives other gradients than an eager step for {name} "
                               f"(relative error {err:.2e}; two eager steps differ by {spread:.2e})")
    return graph.replay


def median_ms(fn: Callable[[], None], device: torch.device, args: argparse.Namespace) -> float:
    if device.type == "cuda":
        from triton.testing import do_bench

        return do_bench(fn, warmup=args.warmup_ms, rep=args.rep_ms, return_mode="median")
    fn()
    times = []
    for _ in range(args.cpu_reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def measure(row: str, args: argparse.Namespace, device: torch.device) -> dict:
    reason = unavailable(row, device)
    if reason:
        return {"row": row, "status": "skipped", "reason": reason}
    model = run = fn = None
    try:
        model, run = build(row, args, device)
        fn = step_fn(model, run, args, device, fold=row != "mhc-triton-unfolded")
        fn()  # compile / autotune outside the timing
        peak = None
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated(device) / 2**30  # of an eager step, also with --cuda-graph
        if args.cuda_graph:
            fn = graphed(model, fn)
        ms = median_ms(fn, device, args)
        params = model.num_parameters()
        return {"row": row, "status": "ok", "median_ms": ms, "tokens_per_s": args.batch * args.seq / (ms * 1e-3),
                "peak_mem_gib": peak, "parameters": params}
    except Exception as exc:  # report the failure in its row and go on with the others
        return {"row": row, "status": "failed", "reason": f"{type(exc).__name__}: {str(exc)[:500]}"}
    finally:
        model = run = fn = None  # release this row's model and CUDA graph before the next row
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def markdown(result: dict) -> str:
    a = result["config"]
    env = result["environment"]
    lines = [
        f"Forward + backward of the course GPT: C = {a['width']}, {a['heads']} heads, {a['depth']} blocks, "
        f"seq {a['seq']}, batch {a['batch']}, n = {a['n']}, precision {a['precision']}"
        + ("; the step captured in a CUDA graph, its replay timed." if a.get("cuda_graph") else "."),
        f"Device: {env['device']}; torch {env['torch']}, triton {env['triton']}, liger-kernel {env['liger_kernel']}, "
        f"CUDA {env['cuda']}; {result['date']}.",
        "",
        "| row | status | median ms | × residual | tokens/s | peak memory (GiB) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    base = next((r["median_ms"] for r in result["rows"] if r["row"] == "residual" and r["status"] == "ok"), None)
    for r in result["rows"]:
        if r["status"] != "ok":
            lines.append(f"| {r['row']} | {r['status']}: {r['reason']} | | | | |")
            continue
        ratio = f"{r['median_ms'] / base:.2f}" if base else "n/a"
        mem = f"{r['peak_mem_gib']:.2f}" if r["peak_mem_gib"] is not None else "n/a (CPU)"
        lines.append(f"| {r['row']} | ok | {r['median_ms']:.2f} | {ratio} | {r['tokens_per_s']:,.0f} | {mem} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="path of the raw JSON results")
    p.add_argument("--md", help="also write the markdown table here")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {', '.join(ROWS)}")
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--depth", type=int, default=8)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--precision", choices=("bf16", "autocast"), default="bf16")
    p.add_argument("--warmup-ms", type=int, default=100, help="do_bench warmup (ms)")
    p.add_argument("--rep-ms", type=int, default=500, help="do_bench measurement time (ms)")
    p.add_argument("--cpu-reps", type=int, default=3, help="timed repetitions without CUDA")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, for checking the script on a CPU")
    p.add_argument("--cuda-graph", action="store_true", help="time the replay of the step captured in a CUDA graph")
    args = p.parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad or not rows:
        p.error(f"--rows must name some of {', '.join(ROWS)}, got {args.rows!r}")
    args.rows = rows
    if args.smoke:
        args.width, args.heads, args.depth, args.seq, args.batch = 64, 4, 2, 64, 2
    if args.cuda_graph and not torch.cuda.is_available():
        p.error("--cuda-graph needs a CUDA device")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        args.precision = "fp32"  # a CPU smoke check runs in fp32, the reference's precision there
    else:
        torch.set_float32_matmul_precision("high")  # tf32 for φ, as the paper
    env = {
        "device": (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"CPU ({platform.machine()}, {os.cpu_count()} cores)"),
        "torch": torch.__version__, "triton": version("triton"), "liger_kernel": version("liger-kernel"),
        "cuda": torch.version.cuda, "python": platform.python_version(),
    }
    result = {
        "benchmark": "bench_model", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "environment": env,
        "config": {k: getattr(args, k) for k in ("width", "heads", "depth", "seq", "batch", "n", "precision",
                                                 "cuda_graph")},
        "timing": "triton.testing.do_bench median" if device.type == "cuda" else f"median of {args.cpu_reps} runs",
        "rows": [],
    }
    for row in args.rows:
        result["rows"].append(measure(row, args, device))
        print(f"{row}: {result['rows'][-1]}", flush=True)
        with open(args.out, "w") as f:  # after every row: a run cut short keeps what it measured
            json.dump(result, f, indent=2)
    table = markdown(result)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
