"""``diverseg sample``: write the built-in sample corpus (rendered PNGs plus JPEG re-encodings)."""

from __future__ import annotations

import argparse
import sys

from ..files import check_output_dir
from ..quality.sample import DEFAULT_QUALITIES, write_sample
from .options import non_negative_int

EPILOG = """example (start here):
  diverseg sample demo
  diverseg curate demo --out mysubset --name mine --scorers blockiness --max-blockiness 10 \\
      --format parquet,webdataset
  # keeps the 12 pristine PNGs, drops their JPEG copies (blockiness about 20 at q95, 200 at q50)"""


def _qualities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(q) for q in text.split(",") if q.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sample", help="write the built-in sample corpus to try the method on (no download)",
        description="Render object-rich pristine PNG scenes and JPEG re-encodings of some of them "
                    "(deterministic, seeded, no network): a corpus on which curate keeps the pristine images.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", metavar="DIR", help="folder to write (new, or holding only a previous sample)")
    parser.add_argument("--scenes", type=int, default=12, help="pristine PNG scenes (default 12)")
    parser.add_argument("--compressed", type=int, default=4, metavar="N",
                        help="scenes also written as JPEG at each quality (default 4)")
    parser.add_argument("--qualities", type=_qualities, default=DEFAULT_QUALITIES, metavar="Q,Q",
                        help="JPEG qualities of the copies (default 95,75,50)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed, 0 or more (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir("out", args.out)
    files = write_sample(args.out, scenes=args.scenes, compressed=args.compressed, qualities=args.qualities,
                         seed=args.seed)
    jpegs = sum(f.suffix == ".jpg" for f in files)
    print(f"sample: {len(files) - jpegs} pristine PNGs and {jpegs} JPEG re-encodings "
          f"(q{', q'.join(map(str, args.qualities))}) in {args.out}", file=sys.stderr)
    return 0
