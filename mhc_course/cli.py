"""Command line: ``mhc-course doctor`` and ``mhc-course train`` (or ``python -m mhc_course …``).

``train`` runs the trainer of ``mhc_course.train``; under ``torchrun --nproc_per_node=N`` the
same command trains data-parallel. Its ``--profile`` (ci | cpu | gpu) defaults from
``MHC_COURSE_PROFILE``, whose ``default`` maps to ``cpu``.
"""

from __future__ import annotations

import argparse
import os
import sys

from .connections import CONNECTIONS

PROFILE_FROM_COURSE = {"ci": "ci", "default": "cpu", "gpu": "gpu"}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def default_train_profile() -> str:
    """The training profile matching ``MHC_COURSE_PROFILE`` (ci → ci, default → cpu, gpu → gpu)."""
    from .profiles import profile

    return PROFILE_FROM_COURSE[profile()]


def _add_train(sub: argparse._SubParsersAction) -> None:
    from .train import TRAIN_PROFILES

    p = sub.add_parser(
        "train", help="train the small GPT with a residual, HC or mHC connection",
        description="Train the course's small GPT on the committed corpus (or --data FILE) and write "
        "OUT/log.jsonl, OUT/checkpoint.pt and OUT/config.json. Sizes come from --profile; the options "
        "below override them. Run it under `torchrun --nproc_per_node=N` to train data-parallel.",
    )
    p.add_argument("--connection", choices=CONNECTIONS, default="mhc", help="how sublayers join the streams")
    p.add_argument("--n", type=_positive_int, help="number of streams (default 1 for residual, 4 otherwise)")
    p.add_argument("--profile", choices=TRAIN_PROFILES,
                   help="sizes: ci (seconds), cpu (minutes on a laptop), gpu (one GPU, minutes); "
                   "default from MHC_COURSE_PROFILE (default → cpu)")
    p.add_argument("--out", required=True, help="output directory for the log, checkpoint and config")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--data", help="a UTF-8 text file to train on instead of the committed corpus")
    p.add_argument("--backend", choices=("torch", "triton"), default="torch", help="mHC implementation")
    p.add_argument("--clip-grad", type=_positive_float,
                   help="clip the gradient norm to this value (off by default: clipping hides HC's blow-ups)")
    p.add_argument("--steps", type=_positive_int, help="optimizer steps in the whole run")
    p.add_argument("--stop-at", type=_positive_int, help="stop after this step (continue later with --resume)")
    p.add_argument("--depth", type=_positive_int, help="transformer blocks")
    p.add_argument("--width", type=_positive_int, help="model width C")
    p.add_argument("--heads", type=_positive_int, help="attention heads")
    p.add_argument("--seq-len", type=_positive_int, help="tokens (bytes) per sequence")
    p.add_argument("--batch-size", type=_positive_int, help="sequences per step, over all processes")
    p.add_argument("--lr", type=_positive_float, help="peak learning rate")
    p.add_argument("--warmup", type=int, help="linear warmup steps")
    p.add_argument("--log-every", type=_positive_int, help="steps between log records (and validations)")
    p.add_argument("--ckpt-every", type=_positive_int, help="steps between checkpoints")
    p.add_argument("--eval-batches", type=_positive_int, help="validation batches per evaluation")
    p.add_argument("--seed", type=int, help="seed of the initialisation and the data order")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default: CUDA when available")
    p.add_argument("--dtype", choices=("auto", "fp32", "bf16"), help="auto: bf16 autocast on GPU, fp32 on CPU")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mhc-course", description="The mHC course's tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check this machine: versions, device, Triton mode, widgets")
    _add_train(sub)
    return parser


OVERRIDES = ("connection", "n", "data", "backend", "clip_grad", "steps", "stop_at", "depth", "width", "heads",
             "seq_len", "batch_size", "lr", "warmup", "log_every", "ckpt_every", "eval_batches", "seed", "device",
             "dtype", "compile")


def _train(args: argparse.Namespace) -> int:
    from .train import profile_config, train

    profile = args.profile or default_train_profile()
    cfg = profile_config(profile, **{k: getattr(args, k) for k in OVERRIDES})
    records = train(cfg, args.out, resume=args.resume, progress=not args.no_progress)
    if records:
        last = records[-1]
        print(
            f"{cfg.connection} n={cfg.model_config().n} ({profile}): step {last['step']}, loss {last['loss']:.4f}, "
            f"val_loss {last['val_loss']:.4f}, composite amax fwd {last['amax_fwd']:.4g} bwd {last['amax_bwd']:.4g}; "
            f"log in {os.path.join(args.out, 'log.jsonl')}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()
    if args.command == "train":
        try:
            return _train(args)
        except ValueError as exc:
            print(f"mhc-course train: error: {exc}", file=sys.stderr)
            return 2
    raise AssertionError(f"unhandled command {args.command!r}")
