"""Seconds per optimizer step of the real trainer, one short run per connection (a benchmark, not a test).

Each row runs ``mhc_course.train`` itself (data, AdamW, autocast, logging, a checkpoint at the end)
for ``--steps`` steps at a training profile and reads the timing of the log's last record, which
covers the steps after the previous record: compilation, autotuning and the first steps fall in
the first record and are left out, and so is the validation (tokens/s is taken before it runs).

    python benchmarks/time_train_steps.py --profile gpu --rows residual,hc,mhc:triton,mhc:torch \\
        --out benchmarks/results/training/gpu_step_times_h100.jsonl

A row is ``connection[:backend][:n]``: ``mhc:triton:8`` is mHC on the Triton kernels with 8 streams.
One JSON line per row: profile, connection, overrides, parameters, seconds per step, tokens/s,
peak memory (GiB), device, torch and date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
from pathlib import Path

import torch

from mhc_course.train import CONFIG_NAME, TRAIN_PROFILES, profile_config, train


def parse_row(text: str) -> dict:
    """'mhc:triton:8' → {'connection': 'mhc', 'backend': 'triton', 'n': 8}."""
    parts = text.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise ValueError(f"a row is connection[:backend][:n], got {text!r}")
    row = {"connection": parts[0]}
    if len(parts) > 1 and parts[1]:
        row["backend"] = parts[1]
    if len(parts) > 2:
        row["n"] = int(parts[2])
    return row


def time_row(profile: str, row: dict, steps: int) -> dict:
    record_every = steps // 2
    cfg = profile_config(profile, steps=steps, log_every=record_every, ckpt_every=steps, eval_batches=1, **row)
    with tempfile.TemporaryDirectory() as out:
        records = train(cfg, out, progress=False)
        params = json.loads((Path(out) / CONFIG_NAME).read_text())["parameters"]
    last = records[-1]
    tokens = cfg.batch_size * cfg.seq_len
    return {
        "prof": profile, "conn": row["connection"], "over": {k: v for k, v in row.items() if k != "connection"},
        "params": params, "steps_timed": steps - record_every, "s_per_step": round(tokens / last["tokens_per_s"], 4),
        "tok_per_s": round(last["tokens_per_s"]), "peak_gib": round(last["peak_mem_mb"] / 1024, 2),
        "peak_kind": last["peak_mem_kind"],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__, "date": datetime.date.today().isoformat(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="gpu", choices=TRAIN_PROFILES)
    p.add_argument("--rows", default="residual,hc,mhc:triton,mhc:torch")
    p.add_argument("--steps", type=int, default=40, help="steps per row; the second half is timed")
    p.add_argument("--out", required=True, help="JSONL file to write (one line per row)")
    args = p.parse_args()
    if args.steps < 2:
        raise ValueError(f"--steps must be >= 2, got {args.steps}")
    rows = [parse_row(r) for r in args.rows.split(",")]
    with open(args.out, "w") as fh:
        for row in rows:
            result = time_row(args.profile, row, args.steps)
            print(json.dumps(result), flush=True)
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
