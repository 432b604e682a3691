"""``diverseg blockiness``: per-image blockiness in the released scorer's ``path<TAB>value`` format."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from ..blockiness import write_blockiness_tsv
from ..errors import DiversegError

EPILOG = """example:
  diverseg blockiness photos/ extra.png -o scores.tsv --workers 2
  # scores.tsv: one 'path<TAB>value' line per image ('nan' where undefined or unreadable);
  # the reason for every nan goes to stderr, with a summary line at the end."""

#: Library parameter names -> the flags that set them, for error messages.
FLAGS = {"workers": "--workers"}


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


def _with_flags(exc: DiversegError) -> DiversegError:
    """The library's message with a leading parameter name replaced by its flag."""
    text = str(exc)
    for name, flag in FLAGS.items():
        if text.startswith(f"{name} "):
            return DiversegError(flag + text[len(name) :])
    return exc


def _progress(pairs, total: int):
    """A progress bar on stderr; the reason of every nan is printed above it."""
    for path, result in tqdm(pairs, total=total, unit="img", file=sys.stderr):
        if not result.ok:
            tqdm.write(f"{path}: {result.reason}", file=sys.stderr)
        yield path, result


def run(args: argparse.Namespace) -> int:
    try:
        summary = write_blockiness_tsv(args.paths, args.output, workers=args.workers, monitor=_progress)
    except DiversegError as exc:
        raise _with_flags(exc) from None
    print(f"blockiness: {summary}", file=sys.stderr)
    return 0 if summary.errors < summary.total else 1
