"""``diverseg select``: score table -> selection (selected keys + selection.json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import DiversegError
from ..files import check_output_dir, folder_lock
from ..rethreshold import select_published
from ..select import select
from .options import add_select_options, select_kwargs

EPILOG = """examples:
  diverseg select scores/ --out sel/ --max-blockiness 10
  diverseg select scores/ --out sel/ --theta-masks 100 --min-quality 0.9
  diverseg select scores/ --out sel/ --keep 0.2 --by sam_masks   # theta chosen to keep 20%
  diverseg select mysubset/ --config mine --out sel/ --max-blockiness 5   # re-threshold a published subset
  diverseg select me/mysubset --config mine --out sel/ --max-blockiness 20 # (a Hub repo), then diverseg publish"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "select", help="choose images from a score table (no image I/O)",
        description="Phase 2: apply blockiness, theta, retention and quality rules to a score table.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", metavar="SCORES_DIR",
                        help="score table folder from diverseg score; with --config, a published dataset "
                             "(dataset folder or Hub repo id) whose `scores` config is read (no GPU)")
    parser.add_argument("--config", metavar="NAME",
                        help="the published config to re-threshold: a stricter rule publishes from its own "
                             "images, a looser one from the source it was made from")
    parser.add_argument("--revision", metavar="REV", help="Hub revision of the published dataset")
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


def _select(args: argparse.Namespace):
    """Select from a score table, or (``--config``) from a published dataset's ``scores`` config."""
    if args.config:
        return select_published(args.scores, args.out, config=args.config, revision=args.revision,
                                **select_kwargs(args))
    if not (Path(args.scores) / "scores.json").exists() and (Path(args.scores) / "README.md").exists():
        raise DiversegError(f"{args.scores} is a published dataset, not a score table: pass --config NAME")
    return select(args.scores, args.out, **select_kwargs(args))


def run(args: argparse.Namespace) -> int:
    check_output_dir("out", args.out, {"score table": args.scores})
    with folder_lock(args.out):  # one writer at a time; a read-only folder fails here, before any work
        result = _select(args)
    rules = result.rules()
    print(f"select: {result}" + (f"; kept where {rules}" if rules else ""), file=sys.stderr)
    if result.quality:
        print(f"quality: {quality_line(result.quality)}", file=sys.stderr)
    return 0
