"""Command line: ``mhc-course doctor`` (or ``python -m mhc_course doctor``)."""

from __future__ import annotations

import argparse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mhc-course", description="The mHC course's tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("doctor", help="check this machine: versions, device, Triton mode, widgets")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "doctor":
        from .doctor import main as doctor

        return doctor()
    raise AssertionError(f"unhandled command {args.command!r}")
