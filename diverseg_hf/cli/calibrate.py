"""``diverseg calibrate``: build a quality-estimate basis from a pristine image corpus."""

from __future__ import annotations

import argparse

from ..files import check_output_dir, folder_lock
from ..quality.calibrate import DEFAULT_QUALITIES, calibrate

EPILOG = """example:
  diverseg calibrate DF2K_HR/ --out basis_df2k/ --qualities 100,95,85,75,50 --workers 4
  # writes basis_df2k/DF2K_HR.txt (q100 = originals), DF2K_HR_q95.txt, ... and basis.json;
  # then: diverseg quality scores.tsv --basis basis_df2k/"""


def _qualities(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="build basis distributions from a pristine corpus",
        description="Re-encode a pristine corpus as JPEG at each quality (q100 = the originals), score the "
        "blockiness of every version, and write a basis folder in the released TSV format.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reference", metavar="REFERENCE", help="folder of pristine images (recursive)")
    parser.add_argument("--out", required=True, metavar="BASIS_DIR", help="folder to write the basis to")
    parser.add_argument(
        "--qualities",
        type=_qualities,
        default=DEFAULT_QUALITIES,
        help="comma-separated JPEG qualities (default 100,95,85,75,50)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes to score with (default 1)")
    parser.add_argument("--name", help="basis name used in the file names (default: REFERENCE's folder name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_output_dir("out", args.out, {"reference": args.reference})
    with folder_lock(args.out):  # one writer at a time; a read-only folder fails here, before any scoring
        basis = calibrate(args.reference, args.out, qualities=args.qualities, workers=args.workers, name=args.name)
    for quality, values in basis.items():
        print(f"q{quality}: {values.size} images scored")
    print(f"basis written to {args.out}")
    return 0
