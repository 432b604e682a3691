"""``diverseg select``: score table -> selection (selected keys + selection.json)."""

from __future__ import annotations

import argparse
import sys

from ..select import select
from .options import add_select_options, select_kwargs

EPILOG = """examples:
  diverseg select scores/ --out sel/ --max-blockiness 10
  diverseg select scores/ --out sel/ --theta-masks 100 --min-quality 0.9
  diverseg select scores/ --out sel/ --keep 0.2 --by sam_masks   # theta chosen to keep 20%"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select", help="choose images from a score table (no image I/O)",
        description="Phase 2: apply blockiness, theta, retention and quality rules to a score table.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", metavar="SCORES_DIR", help="score table folder from diverseg score")
    parser.add_argument("--out", required=True, metavar="SELECTION", help="selection folder")
    add_select_options(parser)
    parser.set_defaults(func=run)


def quality_line(quality: dict) -> str:
    """One line for a recorded quality estimate (``QualityEstimate.to_dict()`` plus the gate's fields).

    Example:
        >>> quality_line({"quality": 0.955, "kl": {"100": 0.1, "50": 9.0}, "n": 10})
        'estimated JPEG quality of the source 95.5% (10 images; KL q100 0.1, q50 9)'
    """
    kl = ", ".join(f"q{q} {v:.3g}" for q, v in quality.get("kl", {}).items())
    gate = "" if quality.get("min_quality") is None else f"; gate {quality['min_quality']:g}: " + (
        "passed" if quality.get("passed") else "below")
    return f"estimated JPEG quality of the source {quality['quality']:.1%} ({quality.get('n')} images; KL {kl}){gate}"


def run(args: argparse.Namespace) -> int:
    result = select(args.scores, args.out, **select_kwargs(args))
    rules = result.rules()
    print(f"select: {result}" + (f"; kept where {rules}" if rules else ""), file=sys.stderr)
    if result.quality:
        print(f"quality: {quality_line(result.quality)}", file=sys.stderr)
    return 0
