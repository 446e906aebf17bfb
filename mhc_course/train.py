"""The trainer: a small GPT on the offline corpus, comparing residual, HC and mHC connections.

One run: AdamW with linear warmup and cosine decay, bf16 autocast on GPU, optional gradient
clipping (off by default: clipping would hide HC's blow-ups, which the comparison is about),
periodic validation, and ``OUT/log.jsonl`` with one JSON record every ``log_every`` steps:

    step, lr, loss, val_loss, grad_norm,
    amax_fwd, amax_bwd                  composite gains of the whole identity path (all layers),
    layer_amax_fwd, layer_amax_bwd      each connection's own H_res gains (lists, layer order),
    composite_amax_fwd, composite_amax_bwd   gains of the product up to each layer (lists),
    tokens_per_s, peak_mem_mb, peak_mem_kind, elapsed_s

Gains are the paper's "Amax Gain Magnitude": max absolute row sum (forward) and column sum
(backward) of H_res, averaged over the tokens of that step's batch.

A run whose loss becomes non-finite stops at that record (HC without clipping can diverge).

Checkpoints (model, optimizer, scheduler, every RNG state, step) go to ``OUT/checkpoint.pt``
every ``ckpt_every`` steps and at the end, written atomically. ``resume=True`` continues the
same loss curve: a run split by a stop and a resume logs exactly what one uninterrupted run
logs (on CPU; timings aside). Under ``torchrun`` the run is data-parallel (see
``mhc_course.distributed``): the global batch is split across processes, rank 0 logs and saves.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from .data import VOCAB_SIZE, TextData, load_text_data
from .distributed import Dist, setup, teardown
from .metrics import gain_profile
from .model import GPT, GPTConfig

TRAIN_PROFILES = ("ci", "cpu", "gpu")
DTYPES = ("auto", "fp32", "bf16")
LOG_NAME, CKPT_NAME, CONFIG_NAME = "log.jsonl", "checkpoint.pt", "config.json"
# Fields a resumed run may change without changing the loss curve.
RESUMABLE_CHANGES = ("stop_at", "ckpt_every", "device", "compile")
TIMING_FIELDS = ("tokens_per_s", "peak_mem_mb", "peak_mem_kind", "elapsed_s")


@dataclass
class TrainConfig:
    """Everything that defines a run; the defaults are the ``cpu`` profile. ``batch_size`` is global:
    split across processes. AdamW's betas (0.9, 0.95) and weight decay 0.1 are the paper's."""

    connection: str = "mhc"
    n: int | None = None
    depth: int = 12
    width: int = 64
    heads: int = 4
    seq_len: int = 64
    batch_size: int = 16
    steps: int = 600
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 30
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    clip_grad: float | None = None
    log_every: int = 25
    eval_batches: int = 4
    ckpt_every: int = 200
    seed: int = 0
    data: str | None = None
    val_fraction: float = 0.1
    backend: str = "torch"
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    dropout: float = 0.0
    stop_at: int | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "eval_batches", "ckpt_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must lie in [0, steps={self.steps}), got {self.warmup}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"beta1 and beta2 must lie in [0, 1), got {self.beta1}, {self.beta2}")
        if self.clip_grad is not None and not self.clip_grad > 0:
            raise ValueError(f"clip_grad must be > 0 (or None for no clipping), got {self.clip_grad}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.stop_at is not None and not 1 <= self.stop_at <= self.steps:
            raise ValueError(f"stop_at must lie in [1, steps={self.steps}], got {self.stop_at}")
        self.model_config()  # validates the model's sizes and wiring

    def model_config(self, stream_dtype: str | None = None) -> GPTConfig:
        return GPTConfig(
            vocab_size=VOCAB_SIZE, seq_len=self.seq_len, depth=self.depth, width=self.width, heads=self.heads,
            connection=self.connection, n=self.n, backend=self.backend, dropout=self.dropout,
            stream_dtype=stream_dtype,
        )


# Sizes per profile; anything else keeps TrainConfig's default. Measured (2 pinned cores of a Xeon
# server for ci and cpu, one H100 for gpu): ci about 10 s a run with start-up; cpu 1.0 min residual,
# 2.5 min HC, 5.6 min mHC (torch reference); gpu 0.052–0.074 / 0.27–0.36 / 0.099–0.120 s a step for residual /
# HC (eager, bound by kernel launches) / mHC (Triton kernels), bf16 streams, over the six runs of
# benchmarks/time_train_steps.py in benchmarks/results (training_logs.step_time_runs). The corpus holds 0.67 M training
# bytes, so the gpu profile's 400 steps of 16 384 tokens already pass over it about ten times.
PROFILE_SETTINGS: dict[str, dict[str, Any]] = {
    "ci": dict(depth=2, width=32, heads=2, seq_len=32, batch_size=8, steps=20, warmup=4, lr=3e-3,
               log_every=5, eval_batches=2, ckpt_every=10),
    "cpu": dict(depth=12, width=64, heads=4, seq_len=64, batch_size=16, steps=600, warmup=30, lr=3e-3,
                log_every=25, eval_batches=4, ckpt_every=200),
    "gpu": dict(depth=24, width=512, heads=8, seq_len=512, batch_size=32, steps=400, warmup=40, lr=1.5e-3,
                log_every=20, eval_batches=8, ckpt_every=200),
}


def profile_config(profile: str, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a profile ("ci", "cpu" or "gpu"), with ``overrides`` (None values ignored).

    Overriding ``steps`` alone caps the profile's warmup at a tenth of the new step count."""
    if profile not in TRAIN_PROFILES:
        raise ValueError(f"profile must be one of {TRAIN_PROFILES}, got {profile!r}")
    names = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"unknown TrainConfig field(s) {unknown}")
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = {**PROFILE_SETTINGS[profile], **given}
    if "steps" in given and "warmup" not in given:  # keep the warmup a small share of a shortened run
        settings["warmup"] = min(settings["warmup"], given["steps"] // 10)
    return TrainConfig(**settings)


def lr_factor(step: int, warmup: int, steps: int, min_ratio: float) -> float:
    """Multiplier of the peak lr for optimizer step ``step`` (0-based): linear warmup over
    ``warmup`` steps, then a cosine from 1 down to ``min_ratio`` at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: GPT, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on the sublayers' matrices and the embeddings only. Norm weights and every
    connection parameter are left undecayed: decay would pull HC's A_r and mHC's H_res logits
    away from the identity they start at."""
    conn = {id(p) for p in model.connection_parameters()}
    decay, rest = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 and id(p) not in conn else rest).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def read_log(out: str | Path) -> list[dict[str, Any]]:
    """The records of ``OUT/log.jsonl`` (a torn last line from an interrupted write is skipped)."""
    path = Path(out) / LOG_NAME
    if not path.is_file():
        raise ValueError(f"no training log at {str(path)!r}")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _truncate_log(out: Path, last_step: int) -> None:
    """Keep only records up to ``last_step``: the resumed run writes the rest again."""
    path = out / LOG_NAME
    if not path.exists():
        return
    kept = [r for r in read_log(out) if r["step"] <= last_step]
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    os.replace(tmp, path)


def _check_resumable(saved: dict[str, Any], cfg: TrainConfig) -> None:
    now = asdict(cfg)
    changed = [k for k in now if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
    diff = [f"{k}: {saved.get(k)!r} -> {now[k]!r}" for k in changed]
    if diff:
        raise ValueError(
            "the checkpoint was made with different settings; resume with the same ones "
            f"(only {', '.join(RESUMABLE_CHANGES)} may change): " + "; ".join(diff)
        )


def _peak_memory(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB on Linux
    return rss / (2**20 if sys.platform == "darwin" else 1024), "cpu_max_rss"


class _Run:
    """State of one training run in this process (see ``train``)."""

    def __init__(self, cfg: TrainConfig, out: Path, d: Dist, data: TextData) -> None:
        self.cfg, self.out, self.d, self.data = cfg, out, d, data
        self.rows = d.rows(cfg.batch_size)
        use_bf16 = cfg.dtype == "bf16" or (cfg.dtype == "auto" and d.device.type == "cuda")
        torch.manual_seed(cfg.seed)
        # Under bf16 autocast the residual streams are kept in bf16 too (the paper's bf16 activations).
        self.model = GPT(cfg.model_config("bfloat16" if use_bf16 else None)).to(d.device)
        self.opt = torch.optim.AdamW(
            param_groups(self.model, cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2)
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, cfg.warmup, cfg.steps, cfg.min_lr_ratio)
        )
        self.data_gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        self.autocast = (
            torch.autocast(d.device.type, dtype=torch.bfloat16) if use_bf16 else nullcontext()
        )
        net: nn.Module = self.model
        if d.active:
            ids = [d.device.index] if d.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        self.net = torch.compile(net) if cfg.compile else net

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step, "config": asdict(self.cfg), "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "rng": checkpoint.rng_state(self.data_gen),
        }

    def restore(self, state: dict[str, Any]) -> None:
        _check_resumable(state["config"], self.cfg)
        if self.cfg.stop_at is not None and self.cfg.stop_at < state["step"]:
            raise ValueError(f"stop_at={self.cfg.stop_at} is before the checkpoint's step {state['step']}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"], self.data_gen)
        self.step = state["step"]

    def batch(self, split: str, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of the next global batch."""
        x, y = self.data.batch(split, self.cfg.batch_size, self.cfg.seq_len, generator)
        return x[self.rows].to(self.d.device), y[self.rows].to(self.d.device)

    @torch.no_grad()
    def val_loss(self) -> float:
        """Mean loss over ``eval_batches`` fixed validation batches (the same ones every time)."""
        self.model.eval()
        g = torch.Generator().manual_seed(self.cfg.seed + 1)
        total = torch.zeros((), device=self.d.device)
        for _ in range(self.cfg.eval_batches):
            x, y = self.batch("val", g)
            with self.autocast:
                total += self.model(x, y)[1]
        self.model.train()
        return self.d.mean(total / self.cfg.eval_batches).item()

    def gains(self) -> dict[str, Any]:
        """Per-layer and composite H_res gains of the last recorded forward, averaged over all
        tokens of the global batch."""
        prof = gain_profile([m.double() for m in self.model.h_res_maps()])  # products in float64
        keys = ("layer_fwd", "layer_bwd", "composite_fwd", "composite_bwd")
        packed = self.d.mean(torch.stack([prof[k] for k in keys])).cpu().tolist()
        lf, lb, cf, cb = packed
        return {"amax_fwd": cf[-1], "amax_bwd": cb[-1], "layer_amax_fwd": lf, "layer_amax_bwd": lb,
                "composite_amax_fwd": cf, "composite_amax_bwd": cb}

    def train_step(self, record: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the batch loss and the gradient norm before clipping."""
        x, y = self.batch("train", self.data_gen)
        self.model.record_h_res(record)
        with self.autocast:
            _, loss = self.net(x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.clip_grad is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.clip_grad)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        self.opt.step()
        self.sched.step()
        self.step += 1
        return loss.detach(), grad_norm.detach()


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) training; write ``OUT/log.jsonl``, ``OUT/checkpoint.pt``, ``OUT/config.json``.

    Returns the log's records (on rank 0; other ranks return an empty list). Raises ValueError
    for bad settings, unreadable data, an ``out`` that already holds a run (without ``resume``)
    or a missing/incompatible checkpoint (with it).
    """
    out = Path(out)
    ckpt_path, log_path = out / CKPT_NAME, out / LOG_NAME
    if not resume and (ckpt_path.exists() or log_path.exists()):
        raise ValueError(f"{str(out)!r} already holds a run: resume it (--resume) or choose another output directory")
    data = load_text_data(cfg.data, cfg.val_fraction)
    data.check_fits(cfg.seq_len)
    d = setup(cfg.device)
    try:
        if d.device.type == "cuda":
            torch.set_float32_matmul_precision("high")  # tf32 for the fp32 matmuls, as the paper's φ
            torch.cuda.reset_peak_memory_stats(d.device)
        run = _Run(cfg, out, d, data)
        if resume:
            run.restore(checkpoint.load(ckpt_path))
        if d.is_main:
            out.mkdir(parents=True, exist_ok=True)
            if resume:
                _truncate_log(out, run.step)
            else:
                _write_config(run)
        d.barrier()
        _loop(run, progress)
        d.barrier()
        return read_log(out) if d.is_main else []
    finally:
        teardown(d)


def _write_config(run: _Run) -> None:
    info = {
        "train": asdict(run.cfg), "model": run.model.cfg.to_dict(), "parameters": run.model.num_parameters(),
        "world_size": run.d.world, "device": str(run.d.device), "torch": torch.__version__,
        "data": list(run.data.sources), "train_tokens": len(run.data.train), "val_tokens": len(run.data.val),
    }
    if run.d.device.type == "cuda":
        info["device_name"] = torch.cuda.get_device_name(run.d.device)
    (run.out / CONFIG_NAME).write_text(json.dumps(info, indent=2) + "\n")


def _loop(run: _Run, progress: bool) -> None:
    cfg, d = run.cfg, run.d
    last = cfg.stop_at or cfg.steps
    tokens_per_step = cfg.batch_size * cfg.seq_len
    t_start = t_mark = time.perf_counter()
    step_mark = run.step
    log = open(run.out / LOG_NAME, "a") if d.is_main else None  # noqa: SIM115 (closed below)
    bar = tqdm(total=cfg.steps, initial=run.step, disable=not (progress and d.is_main), dynamic_ncols=True,
               desc=f"{cfg.connection} n={run.model.cfg.n}")
    try:
        while run.step < last:
            step = run.step + 1
            record = step % cfg.log_every == 0 or step == last
            lr = run.sched.get_last_lr()[0]
            loss, grad_norm = run.train_step(record)
            if record:
                if d.device.type == "cuda":
                    torch.cuda.synchronize(d.device)
                now = time.perf_counter()
                rec = {"step": step, "lr": lr, "loss": d.mean(loss).item(), "grad_norm": grad_norm.item()}
                rec.update(run.gains())
                run.model.record_h_res(False)
                rec["val_loss"] = run.val_loss()
                mem, kind = _peak_memory(d.device)
                rec.update(tokens_per_s=(step - step_mark) * tokens_per_step / (now - t_mark), peak_mem_mb=mem,
                           peak_mem_kind=kind, elapsed_s=now - t_start)
                bar.set_postfix_str(f"loss {rec['loss']:.3f} val {rec['val_loss']:.3f} amax {rec['amax_fwd']:.3g}")
                if log is not None:
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                if not math.isfinite(rec["loss"]):
                    if d.is_main:
                        bar.write(f"loss is {rec['loss']} at step {step}: the run diverged, stopping", file=sys.stderr)
                    break
            if step % cfg.ckpt_every == 0 or step == last:
                if d.is_main:
                    checkpoint.save_atomic(run.state(), run.out / CKPT_NAME)
                d.barrier()
            bar.update(1)
            if record:
                t_mark, step_mark = time.perf_counter(), step
    finally:
        bar.close()
        if log is not None:
            log.close()


def deterministic_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A log record without its timing and memory fields: what two equal runs must share."""
    return {k: v for k, v in record.items() if k not in TIMING_FIELDS}
