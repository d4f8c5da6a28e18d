"""`n2m corpus build | verify | stats`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return v


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 0")
    return v


def _jobs(text: str) -> int:
    v = _nonneg_int(text)
    if not 1 <= v <= 64:
        raise argparse.ArgumentTypeError(f"{text!r}: jobs must be from 1 to 64")
    return v


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="n2m corpus", description="Build, verify and describe the training corpus.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compose, render, mix and cache a corpus (resumable)")
    b.add_argument("--out", type=Path, required=True, help="corpus directory")
    b.add_argument("--hours", type=_positive_float, required=True, help="hours of audio (fractions allowed)")
    b.add_argument("--seed", type=_nonneg_int, required=True)
    b.add_argument("--jobs", type=_jobs, default=1, help="worker processes (default 1)")
    b.add_argument("--styles", default="", help="comma-separated subset of styles (default: all)")
    b.add_argument("--soundfonts", default="", help="comma-separated soundfont names (default: all installed)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--audio48k", action="store_true",
                   help="render at 48 kHz and keep the 48 kHz mono mix too (training targets of the "
                        "superres stage; about 40%% more disk)")
    v = sub.add_parser("verify", help="measure that the corpus is what its labels say")
    v.add_argument("corpus", type=Path)
    v.add_argument("--clips", type=int, default=240, help="how many clips to check (default 240)")
    v.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    v.add_argument("--jobs", type=_jobs, default=1)
    s = sub.add_parser("stats", help="distribution of styles, tempi, keys, instruments, durations")
    s.add_argument("corpus", type=Path)
    s.add_argument("--plot", type=Path, default=None, help="PNG path (default: CORPUS/stats.png)")
    return ap


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.cmd == "build":
        from .build import BuildConfig, BuildError, build, print_summary
        from .styles import STYLES
        from .synth import SynthError

        styles = tuple(s.strip() for s in args.styles.split(",") if s.strip()) or STYLES
        sfs = tuple(s.strip() for s in args.soundfonts.split(",") if s.strip())
        cfg = BuildConfig(out=args.out, hours=args.hours, seed=args.seed, jobs=args.jobs, styles=styles,
                          soundfonts=sfs, quiet=args.quiet, audio48k=args.audio48k)
        try:
            summary = build(cfg)
        except (BuildError, SynthError) as exc:
            print(f"n2m corpus build: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\nn2m corpus build: cancelled; complete shards are kept. Run the same command to resume.",
                  file=sys.stderr)
            return 130
        print_summary(summary, args.out)
        return 0
    if args.cmd == "verify":
        from .verify import main_verify

        return main_verify(args)
    if args.cmd == "stats":
        from .stats import main_stats

        return main_stats(args)
    return 2
