"""Where one model step's GPU time goes: every kernel of bench_model's forward+backward, for the
residual GPT and mHC on our Triton kernels (a benchmark, CUDA only).

For each row: the step's median time (``do_bench``, as bench_model times it, no profiler), and
the device time of every kernel over a few steps under the torch profiler, grouped (our
connection kernels, matrix products, attention, norms, the rest). The profiled steps' own time
(CUDA events) less the sum of their kernels is time the GPU spent between kernels. The rows run
``--repeats`` times, alternating, so the spread between runs of one row shows in the same process.

For our connection kernels it also counts the bytes each moves (``io_model.kernel_pass_steps``)
and the bandwidth each reaches inside the step, and asks: if every one of them ran at the copy
bandwidth measured in the same process, and nothing else changed, what would mHC's step cost
over residual's?

    python benchmarks/profile_step.py --out benchmarks/results/profile_step_h100.json \\
        --md benchmarks/results/profile_step_h100.md
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import sys

import torch
from bench_model import build, median_ms, step_fn, version
from bench_model import parse_args as bench_args
from torch.profiler import ProfilerActivity, profile

from mhc_course.io_model import measure_copy_bandwidth
from mhc_course.step_profile import GROUPS, at_copy_bandwidth, bandwidth_for, group_times

ROWS = ("residual", "mhc-triton")
TARGET = 0.15  # issue 5: mHC within +15% of residual


def kernel_times(step, steps: int) -> tuple[float, dict[str, dict[str, float]]]:
    """(ms per profiled step, device ms and calls per step of every kernel name) over ``steps`` steps."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start.record()
        for _ in range(steps):
            step()
        end.record()
        torch.cuda.synchronize()
    agg: dict[str, dict[str, float]] = collections.defaultdict(lambda: {"ms": 0.0, "calls": 0.0})
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            agg[ev.name]["ms"] += ev.device_time_total / 1e3 / steps
            agg[ev.name]["calls"] += 1 / steps
    return start.elapsed_time(end) / steps, dict(agg)


def markdown(result: dict) -> str:
    runs = result["runs"]
    cols = [(i, row) for i, run in enumerate(runs, 1) for row in run["rows"]]
    lines = [f"# Where a bench_model step's GPU time goes ({result['device']}, {result['date']})", "",
             f"torch {result['versions']['torch']}, Triton {result['versions']['triton']}; {result['config']}; "
             f"copy bandwidth in this process {result['copy_gbs'] / 1e3:.2f} TB/s.", "",
             "| ms per step | " + " | ".join(f"{row} (run {i})" for i, row in cols) + " |",
             "| --- | " + " | ".join("---:" for _ in cols) + " |"]

    def line(label, value):
        lines.append(f"| {label} | " + " | ".join(f"{value(runs[i - 1]['rows'][row]):.2f}" for i, row in cols) + " |")

    line("step (do_bench median)", lambda r: r["step_ms"])
    line("profiled steps (CUDA events)", lambda r: r["profiled_step_ms"])
    for group, _ in GROUPS:
        line(group, lambda r, g=group: r["groups"].get(g, 0.0))
    line("between kernels (profiled step − its kernels)", lambda r: r["profiled_step_ms"] - sum(r["groups"].values()))
    for i, run in enumerate(runs, 1):
        s = run["summary"]
        lines += ["", f"Run {i}, our connection kernels in the mHC step:", "",
                  "| kernel | calls | ms per step | GB moved | TB/s | ms at copy bandwidth |",
                  "| --- | ---: | ---: | ---: | ---: | ---: |"]
        for k in s["connection_kernels"]:
            lines.append(f"| {k['kernel']} | {k['calls']} | {k['ms']:.3f} | {k['gb']:.2f} | {k['tbps']:.2f} | "
                         f"{k['ms_at_copy']:.3f} |")
        lines += ["", f"mHC over residual (do_bench steps): {100 * s['overhead']:+.1f}%. With each of these kernels "
                  f"at copy bandwidth and nothing else changed: {s['mhc_step_ms_if_at_copy']:.2f} ms, "
                  f"{100 * s['overhead_if_at_copy']:+.1f}%. For {s['target']:+.0%} they would need "
                  f"{s['gbs_for_target'] / 1e3:.2f} TB/s on average; they reach {s['tbps_all']:.2f}."]
    return "\n".join(lines) + "\n"


def profile_row(row: str, args: argparse.Namespace, device: torch.device, steps: int) -> dict:
    model, run = build(row, args, device)
    step = step_fn(model, run, args, device)
    step()
    profiled_ms, kernels = kernel_times(step, steps)
    groups = group_times(kernels)
    out = {"step_ms": median_ms(step, device, args), "profiled_step_ms": profiled_ms, "groups": groups,
           "kernels": kernels}
    print(f"{row}: step {out['step_ms']:.2f} ms, profiled {profiled_ms:.2f} ms, kernels {sum(groups.values()):.2f} ms",
          flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="path of the raw JSON results")
    p.add_argument("--md", help="also write the markdown tables here")
    p.add_argument("--profiled-steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2, help="runs of the rows, alternating")
    own, rest = p.parse_known_args(argv)
    args = bench_args(["--out", own.out, *rest])  # bench_model's model and size options
    if not torch.cuda.is_available():
        print("profile_step needs a CUDA GPU: it profiles the kernels of a training step", file=sys.stderr)
        return 1
    device = torch.device("cuda")
    copy_gbs = measure_copy_bandwidth(device, mib=256)
    runs = []
    for _ in range(own.repeats):
        rows = {}
        for row in ROWS:
            rows[row] = profile_row(row, args, device, own.profiled_steps)
            torch.cuda.empty_cache()
        sizes = (args.n, args.width, args.batch * args.seq)
        steps = (rows["residual"]["step_ms"], rows["mhc-triton"]["step_ms"], rows["mhc-triton"]["kernels"])
        summary = at_copy_bandwidth(*steps, copy_gbs, *sizes)
        summary.update(target=TARGET, gbs_for_target=bandwidth_for(TARGET, *steps, *sizes))
        runs.append({"rows": rows, "summary": summary})
    result = {
        "device": torch.cuda.get_device_name(), "date": datetime.date.today().isoformat(),
        "versions": {"torch": torch.__version__, "triton": version("triton")},
        "config": f"C = {args.width}, {args.heads} heads, {args.depth} layers, seq {args.seq}, batch {args.batch}, "
                  f"n = {args.n}, {args.precision}",
        "sizes": {"n": args.n, "C": args.width, "tokens": args.batch * args.seq},
        "copy_gbs": copy_gbs, "runs": runs,
    }
    with open(own.out, "w") as f:
        json.dump(result, f, indent=1)
    md = markdown(result)
    if own.md:
        with open(own.md, "w") as f:
            f.write(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
