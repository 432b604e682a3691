"""``diverseg quality``: estimate the JPEG quality of a dataset from its blockiness distribution."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..quality.basis import BASIS_ENV, load_basis
from ..quality.estimate import DEFAULT_THRESHOLD, METHODS, estimate_quality, target_values

EPILOG = f"""examples:
  diverseg blockiness imagenet/train -o imagenet.tsv --workers 8
  diverseg quality imagenet.tsv                      # the paper's DF2K basis (shipped, offline)
  diverseg quality photos/ --workers 4 --json        # score a folder on the fly
  diverseg quality imagenet.tsv --basis my_basis/ --plot imagenet_quality.png
  diverseg quality imagenet.tsv --method mixture     # share of images per basis quality
  # the basis defaults to ${BASIS_ENV} when set; --json prints
  # {{"quality": 0.955, "kl": {{"100": .., "95": .., ...}}, "n": 1281167}}"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quality",
        help="estimate a dataset's JPEG quality from its blockiness values",
        description="Estimate the JPEG quality of a dataset (the DiverSeg source-selection gate): the target's "
        "blockiness distribution is compared (KDE + KL) with a basis of known JPEG qualities.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", metavar="TARGET", help="'path<TAB>value' scores file, or a folder of images")
    parser.add_argument(
        "--basis", metavar="DIR|FILE", help=f"basis folder or file (default: ${BASIS_ENV}, else the DF2K basis)"
    )
    parser.add_argument("--json", action="store_true", help="print the estimate as one JSON object")
    parser.add_argument("--plot", metavar="OUT.png", help="also save violins of target and basis")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD, help="drop target values at or above this (300)"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="released",
        help="'released' (the paper's KL weighting, default) or 'mixture' (fitted shares per quality)",
    )
    parser.add_argument("--workers", type=int, default=1, help="processes to score a folder with (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    values = target_values(args.target, workers=args.workers)
    basis = load_basis(args.basis)
    estimate = estimate_quality(values, basis, threshold=args.threshold, method=args.method)
    if args.plot:
        from ..quality.plots import plot_quality

        label = Path(args.target).resolve().name
        plot_quality(values, basis, args.plot, estimate, threshold=args.threshold, target_label=label)
    if args.json:
        print(json.dumps(estimate.to_dict()))
        return 0
    print(f"estimated JPEG quality: {100 * estimate.quality:.2f}%")
    print(
        f"target values used: {estimate.n} ({estimate.above_threshold} at or above {args.threshold:g} "
        f"and {estimate.nonfinite} non-finite dropped)"
    )
    print("KL divergence to each basis quality:" + ("  (mixture share)" if estimate.weights else ""))
    for quality, kl in estimate.kl.items():
        share = f"  {estimate.weights[quality]:8.4f}" if estimate.weights else ""
        print(f"  q{quality:<4d}{kl:12.6f}{share}")
    return 0
