"""Where the time of one fused mHC connection goes, kernel by kernel, and which blocks suit each.

Times every kernel of ``mhc_course.kernels.mhc_connection`` alone (do_bench medians) for a
few block configurations, at T tokens, n = 4, bf16, and reports each kernel's achieved
bandwidth over the bytes it must move. Also times the whole forward and forward+backward, so
the gap between them and the sum of the kernels is the host-side overhead. GPU only.

    python benchmarks/profile_kernels.py --width 2048 --out profile.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math

import torch
import triton
from mhc_course.kernels.coefficients_bwd import launch_channel_pass, launch_token_pass
from mhc_course.kernels.coefficients_fwd import launch_coefficients_fwd
from mhc_course.kernels.layout import padded_width
from mhc_course.kernels.stream_kernels import launch_post_res_bwd, launch_post_res_fwd
from triton.testing import do_bench

from mhc_course import kernels as tk

N = 4
# Candidates: coefficients (BT, BK, BC, warps), token and channel passes (BT, BC, warps). The
# fastest are not always free of register spills: ptxas -v on Triton 3.9's sm_90 code shows
# spills for the coefficients (64, 128, 64, 4) block and for the two-stream channel pass at every
# block below (172 bytes at (16, 64, 4), 908 at (32, 64, 4), the fastest on the H100).
FWD_BLOCKS = ((64, 128, 128, 4), (64, 128, 64, 4), (128, 128, 64, 8), (32, 128, 64, 4), (64, 64, 64, 4))
TOKEN_BLOCKS = ((8, 128, 4), (8, 64, 4), (4, 128, 2), (16, 128, 8), (16, 64, 4), (8, 256, 4))
CHANNEL_BLOCKS = ((32, 64, 4), (16, 64, 4), (32, 64, 8), (64, 64, 8), (16, 128, 4))
CHANNEL_SPLITS = (2, 4, 8)


def bench(fn) -> float:
    """Median ms, or inf when the configuration fails to compile or run (printed)."""
    try:
        return do_bench(fn, warmup=20, rep=80, return_mode="median")
    except Exception as exc:  # a block configuration can exceed registers or shared memory
        print(f"  failed: {type(exc).__name__}: {str(exc)[:120]}")
        return math.inf


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=16384)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--out", default="profile.json")
    parser.add_argument("--blocks-out", help="write the fastest blocks per kernel as MHC_COURSE_KERNEL_BLOCKS JSON")
    parser.add_argument("--whole-only", action="store_true", help="time only the whole connection, no sweeps")
    args = parser.parse_args()
    T, C = args.tokens, args.width
    dev, bf = "cuda", torch.bfloat16
    k = N * N + 2 * N
    x = torch.randn(T, N, C, device=dev).to(bf)
    phi = torch.randn(N * C, k, device=dev) / math.sqrt(N * C)
    bias, alpha = torch.randn(k, device=dev), torch.full((3,), 0.5, device=dev)
    nz = padded_width(N)
    f32 = dict(device=dev, dtype=torch.float32)
    z, r = torch.empty(T, nz, **f32), torch.empty(T, **f32)
    pre, post, res = torch.empty(T, N, **f32), torch.empty(T, N, **f32), torch.empty(T, N, N, **f32)
    h = torch.empty(T, C, device=dev, dtype=bf)
    f = torch.randn(T, C, device=dev).to(bf)
    g = torch.randn(T, N, C, device=dev).to(bf)
    out, dx = torch.empty_like(x), torch.empty_like(x)
    df, dh = torch.empty_like(f), torch.randn(T, C, device=dev).to(bf)
    dy, s = torch.empty_like(z), torch.empty_like(r)
    unit = C * T * 2  # bytes of one (T, C) bf16 activation
    rows = []

    def record(kernel, cfg, ms, units):
        rows.append({"kernel": kernel, "blocks": cfg, "ms": ms, "gbs": units * unit / ms / 1e6})
        print(f"{kernel:<44}{str(cfg):<22}{ms:8.4f} ms {units * unit / ms / 1e6:8.0f} GB/s", flush=True)

    x2 = x.view(T, N * C)
    outs = (z, r, pre, post, res, h)
    sweeps = not args.whole_only
    for cfg in () if not sweeps else FWD_BLOCKS:
        for with_pre, units, dot in ((False, N, "bf16x2"), (True, 2 * N + 1, "bf16x2")):
            ms = bench(lambda: launch_coefficients_fwd(x2, phi, alpha, bias, outs, N, 20, 1e-6,  # noqa: B023
                                                       with_pre=with_pre, blocks=cfg, dot=dot))  # noqa: B023
            record(f"coefficients_fwd{'+pre' if with_pre else ''} {dot}", cfg, ms, units)
    for cfg in ((8, 256, 8), (8, 256, 4), (4, 256, 4)) if sweeps else ():
        record("post_res_fwd", cfg, bench(lambda: launch_post_res_fwd(x, f, post, res, out, cfg)), 2 * N + 1)  # noqa: B023
        record("post_res_bwd (df only)", cfg,
               bench(lambda: launch_post_res_bwd(g, x, f, post, res, df, None, cfg)), N + 1)  # noqa: B023
    for cfg in TOKEN_BLOCKS if sweeps else ():
        parts = torch.empty(k + 3, triton.cdiv(T, cfg[0]), **f32)
        record("token_pass (reduce)", cfg, bench(lambda: launch_token_pass(  # noqa: B023
            z, r, alpha, bias, None, (g, x, f, dh), (dy, s, parts), N, C, 20, cfg)), 2 * N + 2)  # noqa: B023
    given = (torch.randn(T, N, **f32), torch.randn(T, N, **f32), torch.randn(T, N, N, **f32))
    for iters in (1, 20) if sweeps else ():
        cfg = (16, 64, 4)
        parts = torch.empty(k + 3, triton.cdiv(T, 16), **f32)
        record(f"token_pass (given, iters={iters})", cfg,
               bench(lambda: launch_token_pass(z, r, alpha, bias, given, None, (dy, s, parts), N, C, iters,  # noqa: B023
                                               cfg)), 0)  # noqa: B023
    for (bt, bc, warps), splits in itertools.product(CHANNEL_BLOCKS, CHANNEL_SPLITS if sweeps else ()):
        cfg = (bt, bc, warps)
        dparts = torch.empty(splits, N * C, k, **f32)
        record("channel_pass (fused)", (*cfg, splits), bench(lambda: launch_channel_pass(  # noqa: B023
            x, phi, dy, s, (g, dh, pre, res), dx, dparts, N, cfg)), 3 * N + 1)  # noqa: B023
        if N <= 4:  # all streams in one program, also writing the previous connection's dF (kernels/chain.py)
            record("channel_pass (all streams + previous dF)", (*cfg, splits), bench(lambda: launch_channel_pass(  # noqa: B023
                x, phi, dy, s, (g, dh, pre, res), dx, dparts, N, cfg, streams_per_program=N,  # noqa: B023
                prev=(post, df))), 3 * N + 2)

    xs = x.clone().requires_grad_()
    ps = [t.clone().requires_grad_() for t in (phi, bias, alpha)]
    record("whole forward", None, bench(lambda: tk.mhc_connection(xs, *ps, lambda t: t)), 3 * N + 2)
    gg = torch.randn_like(x)
    record("whole forward+backward", None,
           bench(lambda: tk.mhc_connection(xs, *ps, lambda t: t)[0].backward(gg)), 6 * N + 5)
    with open(args.out, "w") as fh:
        json.dump({"T": T, "C": C, "n": N, "device": torch.cuda.get_device_name(0), "rows": rows}, fh, indent=1)
    best = {}
    for row in rows:
        if math.isfinite(row["ms"]) and (row["kernel"] not in best or row["ms"] < best[row["kernel"]]["ms"]):
            best[row["kernel"]] = row
    if args.blocks_out:  # the fastest configuration of each kernel the fused connection runs
        pick = {"coefficients_fwd": "coefficients_fwd+pre bf16x2", "post_res_fwd": "post_res_fwd",
                "post_res_bwd": "post_res_bwd (df only)", "coefficients_bwd_token": "token_pass (reduce)"}
        pick["coefficients_bwd_channel"] = "channel_pass (fused)"
        pick["coefficients_bwd_channel_all"] = "channel_pass (all streams + previous dF)"
        chosen = {kind: list(best[name]["blocks"]) for kind, name in pick.items() if name in best}
        with open(args.blocks_out, "w") as fh:
            json.dump(chosen, fh)
    print("\nbest per kernel:")
    for name, row in best.items():
        print(f"{name:<44}{str(row['blocks']):<22}{row['ms']:8.4f} ms {row['gbs']:8.0f} GB/s")


if __name__ == "__main__":
    main()
