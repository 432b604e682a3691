"""``diverseg blockiness``: per-image blockiness in the released scorer's ``path<TAB>value`` format."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from ..files import check_output_file
from ..quality.blockiness import write_blockiness_tsv

EPILOG = """example:
  diverseg blockiness photos/ extra.png -o scores.tsv --workers 2
  # scores.tsv: one 'path<TAB>value' line per image ('nan' where undefined or unreadable);
  # the reason for every nan goes to stderr, with a summary line at the end."""

def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "blockiness",
        help="score the JPEG blockiness of images (released scorer's TSV format)",
        description="Score per-image JPEG blockiness B(x) exactly as the DiverSeg scorer does.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (recursive)")
    parser.add_argument("-o", "--output", metavar="OUT.tsv", help="write here instead of stdout")
    parser.add_argument("--workers", type=int, default=1, help="processes to score with (default 1)")
    parser.set_defaults(func=run)


def _progress(pairs, total: int):
    """A progress bar on stderr; the reason of every nan is printed above it."""
    for path, result in tqdm(pairs, total=total, unit="img", file=sys.stderr):
        if not result.ok:
            tqdm.write(f"{path}: {result.reason}", file=sys.stderr)
        yield path, result


def run(args: argparse.Namespace) -> int:
    if args.output is not None:  # before scoring: a folder given as the file fails now, not at the end
        check_output_file("output", args.output)
    summary = write_blockiness_tsv(args.paths, args.output, workers=args.workers, monitor=_progress)
    print(f"blockiness: {summary}", file=sys.stderr)
    return 0 if summary.errors < summary.total else 1
