"""``diverseg blockiness``: per-image blockiness in the released scorer's ``path<TAB>value`` format."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

from ..blockiness import iter_blockiness
from ..errors import DiversegError
from ..images import find_image_files

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


def run(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise DiversegError("--workers must be at least 1")
    try:
        files = find_image_files(args.paths)
    except FileNotFoundError as exc:
        raise DiversegError(str(exc)) from None
    if not files:
        raise DiversegError(f"no image files found under {' '.join(args.paths)}")
    out_path = Path(args.output) if args.output else None
    tmp_path = out_path.with_name(out_path.name + ".partial") if out_path else None
    sink = open(tmp_path, "w") if tmp_path else sys.stdout  # noqa: SIM115 - closed below
    counts = {"scored": 0, "undefined": 0, "errors": 0}
    try:
        results = iter_blockiness((str(f) for f in files), workers=args.workers)
        for path, result in tqdm(zip(files, results), total=len(files), unit="img", file=sys.stderr):
            sink.write(f"{path}\t{result.value!r}\n" if result.ok else f"{path}\tnan\n")
            if result.ok:
                counts["scored"] += 1
            else:
                counts["errors" if result.error else "undefined"] += 1
                tqdm.write(f"{path}: {result.reason}", file=sys.stderr)
    finally:
        if tmp_path:
            sink.close()
    if tmp_path and out_path:
        os.replace(tmp_path, out_path)
    print(
        f"blockiness: {counts['scored']} scored, {counts['undefined']} undefined, {counts['errors']} errors",
        file=sys.stderr,
    )
    return 0 if counts["errors"] < len(files) else 1
