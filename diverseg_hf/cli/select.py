"""``diverseg select``: score table -> selection (selected keys + selection.json)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import DiversegError
from ..select import select

EPILOG = """examples:
  diverseg select scores/ --out sel/ --max-blockiness 10
  diverseg select scores/ --out sel/ --theta-masks 100 --min-quality 0.9
  diverseg select scores/ --out sel/ --keep 0.2 --by sam_masks   # theta chosen to keep 20%"""


def add_select_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection")
    group.add_argument("--max-blockiness", type=float, help="keep images with blockiness <= X")
    group.add_argument("--theta-masks", type=float, help="keep images with sam_masks >= N (paper: 100)")
    group.add_argument("--theta-objects", type=float, help="keep images with det_objects >= N (paper: 18)")
    group.add_argument("--theta", action="append", default=[], metavar="COL=N",
                       help="keep images with COL >= N (repeatable; a bare N means sam_masks)")
    group.add_argument("--keep", type=float, metavar="FRACTION",
                       help="choose the theta on --by that keeps this fraction of the source")
    group.add_argument("--by", metavar="COL", help="count column for --keep (default sam_masks)")
    group.add_argument("--min-quality", type=float, help="refuse a source whose estimated quality is below Q")
    group.add_argument("--basis", help="basis for the quality estimate (default: the DF2K basis)")
    group.add_argument("--on-low-quality", choices=("error", "warn"), default="error",
                       help="what --min-quality does below the bar (default error)")


def select_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    thetas: dict[str, float] = {}
    if args.theta_masks is not None:
        thetas["sam_masks"] = args.theta_masks
    if args.theta_objects is not None:
        thetas["det_objects"] = args.theta_objects
    for item in args.theta:
        col, sep, value = item.partition("=") if "=" in item else ("sam_masks", "=", item)
        try:
            thetas[col.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not col.strip():
            raise DiversegError(f"--theta takes COL=N (or N for sam_masks), got {item!r}")
    return {"max_blockiness": args.max_blockiness, "thetas": thetas, "keep": args.keep, "by": args.by,
            "min_quality": args.min_quality, "basis": args.basis, "on_low_quality": args.on_low_quality}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select", help="choose images from a score table (no image I/O)",
        description="Phase 2: apply blockiness, theta, retention and quality rules to a score table.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", metavar="SCORES_DIR", help="score table folder from diverseg score")
    parser.add_argument("--out", required=True, metavar="SELECTION", help="selection folder")
    add_select_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = select(args.scores, args.out, **select_kwargs(args))
    print(f"select: {result}; thetas {result.thetas}", file=sys.stderr)
    return 0
