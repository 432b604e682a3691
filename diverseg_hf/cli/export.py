"""``diverseg export``: a published subset as a DIV2K-style folder for BasicSR, HAT and SwinIR training."""

from __future__ import annotations

import argparse
import sys

from ..errors import DiversegError
from ..files import check_output_dir, folder_lock
from ..sr.export import export_basicsr

EPILOG = """example:
  diverseg export ./DiverSeg --config I --format basicsr --out ./DiverSeg_I_basicsr \\
      --scales 2,3,4 --subimages 480,240 --workers 2 [--lmdb]
  # HR/<name>.png (cropped to a multiple of every scale), LR_bicubic/X4/<name>x4.png (MATLAB bicubic
  # of that HR: exactly 4x smaller), original/<name>.<ext> (the original bytes), HR_sub/ and
  # LR_bicubic/X4_sub/ (<name>_s001.png ...), meta_info_HR[_sub].txt, key_map.jsonl (file names -> keys).
  # Re-run the same command to finish a killed export.
  # DATASET_DIR may be a Hub dataset id (user/name): only data/<config>/*.parquet is downloaded."""


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a subset for SR training code (BasicSR/HAT/SwinIR DIV2K-style folders)",
        description="Export one config of a published dataset as HR + bicubic LR folders in BasicSR's conventions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dataset", metavar="DATASET_DIR", help="published dataset folder or Hub dataset id")
    parser.add_argument("--config", required=True, help="subset config to export (e.g. I, P, IP)")
    parser.add_argument("--format", default="basicsr", choices=["basicsr"], help="output layout (basicsr)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (re-run to resume)")
    parser.add_argument("--scales", type=_ints, default=(2, 3, 4), help="LR scales, e.g. 2,3,4 (default)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("--subimages", type=_ints, metavar="CROP,STEP", help="also write sub-images, e.g. 480,240")
    parser.add_argument("--lmdb", action="store_true", help="also write BasicSR LMDBs (needs diverseg-hf[lmdb])")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.subimages is not None and len(args.subimages) != 2:
        raise DiversegError("--subimages takes CROP,STEP (e.g. 480,240)")
    check_output_dir("out", args.out, {"dataset": args.dataset})
    with folder_lock(args.out):  # one writer at a time; a read-only folder fails here, before any work
        report = export_basicsr(args.dataset, args.config, args.out, args.scales, args.workers, args.subimages,
                                args.lmdb, progress=not args.quiet)
    for key, reason in report.skipped:
        print(f"skipped {key}: {reason}", file=sys.stderr)
    print(f"export: {report.images} images, {report.subimages} sub-images, {len(report.skipped)} skipped -> "
          f"{report.out}", file=sys.stderr)
    return 0 if report.images else 1
