"""``diverseg sr-eval``: PSNR/SSIM of SR results against HR images, printed as papers report them."""

from __future__ import annotations

import argparse

from ..errors import DiversegError
from ..sr.evaluate import evaluate_folders

EPILOG = """example:
  diverseg sr-eval results/Set5_x4/ benchmarks/Set5/HR/ --scale 4 --name Set5
  # one line per image, then 'Set5 x4: PSNR/SSIM 32.63/0.9002 (...)'. SR files match HR files by
  # stem (baby.png <- baby.png, baby_x4_SR.png, babyx4.png); HR is mod-cropped to the SR size.
  # Convention: Y of rgb2ycbcr on [0,1] doubles, unrounded, 'scale' border pixels shaved, gray
  # files on their gray channel, SSIM as Wang et al. (--round-y: Y rounded to integers)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sr-eval",
        help="PSNR/SSIM of SR results against HR images (Y channel, border crop)",
        description="Evaluate super-resolved images against their HR originals by the literature's convention.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sr_dir", metavar="SR_DIR", help="folder of super-resolved images")
    parser.add_argument("hr_dir", metavar="HR_DIR", help="folder of ground-truth HR images")
    parser.add_argument("--scale", type=int, required=True, help="SR factor (also the border shaved)")
    parser.add_argument("--name", default="", help="benchmark name for the summary line (e.g. Set5)")
    parser.add_argument("--round-y", action="store_true", help="round Y to integers (MATLAB rgb2ycbcr on uint8)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.scale < 1:
        raise DiversegError("--scale must be a positive integer")
    table = evaluate_folders(args.sr_dir, args.hr_dir, args.scale, round_y=args.round_y, name=args.name)
    print(table.format())
    return 0 if len(table.scored) == len(table.rows) else 1
