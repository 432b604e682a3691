"""``diverseg build``: make the DiverSeg subsets I, P, IP (curated, or rebuilt from the official lists)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..build import SUBSETS, build, built_configs
from ..errors import DiversegError
from ..sources import KINDS
from .push import add_push_to_hub_options, push_to_hub_from_args
from .score import add_engine_options, engine_from_args

EPILOG = """examples:
  diverseg build I --out diverseg --source /data/imagenet/train --from-list DiverSeg-I_list.txt
  diverseg build P --out diverseg --source /data/pass --from-list DiverSeg-P_list.txt
  diverseg build IP --out diverseg            # the union of I and P already in diverseg/
  diverseg build I --out diverseg --device cuda --batch-size 16   # score ILSVRC/imagenet-1k as the paper did
  # then: datasets.load_dataset("diverseg", "I")  (from the parent folder of diverseg/)
  #       diverseg push diverseg my-org/diverseg --gated manual"""


def _per_part(values: list[str] | None, option: str) -> str | dict[str, str] | None:
    """``--source X`` -> "X"; repeated ``--source I=X --source P=Y`` (for IP) -> {"I": "X", "P": "Y"}."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0].split("/", 1)[0]:
        return values[0]
    parts: dict[str, str] = {}
    for value in values:
        part, sep, spec = value.partition("=")
        if not sep or part not in SUBSETS or not spec:
            raise DiversegError(f"{option} for IP takes PART=VALUE with PART I or P, got {value!r}")
        parts[part] = spec
    return parts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build", help="build DiverSeg-I/-P/-IP into a dataset folder",
        description="Build a DiverSeg subset: score + select + publish with the paper's settings, or rebuild "
                    "the official list exactly from your own ImageNet/PASS copy (--from-list).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", choices=list(SUBSETS), help="I (ImageNet-1k), P (PASS) or IP (both)")
    parser.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder, e.g. diverseg")
    parser.add_argument("--source", action="append", metavar="SRC",
                        help="image folder, .parquet, .tar or Hub id (default: the config's Hub dataset; "
                             "for IP: I=SRC and P=SRC)")
    parser.add_argument("--from-list", action="append", metavar="LIST",
                        help="official list (DiverSeg-I_list.txt...): copy exactly those images, no scoring "
                             "(for IP: I=LIST and P=LIST)")
    parser.add_argument("--source-kind", choices=KINDS, help="override the detected source kind")
    parser.add_argument("--split", help="dataset split (Hub sources; default train)")
    parser.add_argument("--hub-config", help="dataset config (Hub sources)")
    parser.add_argument("--key-column", help="id column used as key (Parquet/Hub sources)")
    group = parser.add_argument_group("scoring and selection (without --from-list)")
    group.add_argument("--scorers", help="comma-separated scorers (default: the paper's blockiness,sam)")
    group.add_argument("--sam-model", help="SAM model id or path (default facebook/sam-vit-huge)")
    group.add_argument("--theta-masks", type=float, help="keep images with sam_masks >= N (default 100)")
    group.add_argument("--min-quality", type=float, help="dataset quality gate (default 0.9)")
    group.add_argument("--no-quality-gate", action="store_true", help="do not estimate the source quality")
    group.add_argument("--basis", help="basis for the quality estimate (default: the DF2K basis)")
    group.add_argument("--device", help="device of GPU scorers (e.g. cuda)")
    group.add_argument("--batch-size", type=int, help="images per scorer call")
    group.add_argument("--workers", type=int, help="worker processes for CPU scorers (default 1)")
    group.add_argument("--limit", type=int, help="score only the first N images")
    add_engine_options(parser, group)
    out = parser.add_argument_group("publishing")
    out.add_argument("--format", default="parquet", help="parquet, or parquet,webdataset")
    out.add_argument("--shard-size", default="500MB", help="maximum bytes per shard (default 500MB)")
    add_push_to_hub_options(parser)
    parser.set_defaults(func=run)


def build_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.build.build` from the parsed command line."""
    select: dict[str, Any] = {}
    if args.theta_masks is not None:
        select["thetas"] = {"sam_masks": args.theta_masks}
    if args.no_quality_gate:
        select["min_quality"] = None
    elif args.min_quality is not None:
        select["min_quality"] = args.min_quality
    if args.basis:
        select["basis"] = args.basis
    source_options = {"kind": args.source_kind, "split": args.split, "config": args.hub_config,
                      "key_column": args.key_column}
    return {
        "source": _per_part(args.source, "--source"),
        "from_list": _per_part(args.from_list, "--from-list"),
        "scorers": [s.strip() for s in args.scorers.split(",") if s.strip()] if args.scorers else None,
        "scorer_options": {"sam": {"model": args.sam_model}} if args.sam_model else None,
        "select_options": select,
        "source_options": {k: v for k, v in source_options.items() if v is not None},
        "formats": [f.strip() for f in args.format.split(",") if f.strip()],
        "shard_size": args.shard_size,
        "repo": args.push_to_hub,
        "engine": engine_from_args(args),
        **{k: v for k, v in {"device": args.device, "batch_size": args.batch_size, "workers": args.workers,
                             "limit": args.limit}.items() if v is not None},
    }


def run(args: argparse.Namespace) -> int:
    result = build(args.config, args.out, **build_kwargs(args))
    for part in [*result.parts.values(), result]:
        line = f"build: {part.num_examples} images published as {part.config!r} -> {part.out}"
        if part.listed is not None:
            line += (f" ({part.listed} listed, {len(part.missing)} not found, {len(part.unreadable)} unreadable;"
                     f" report {part.report})")
        print(line, file=sys.stderr)
        for path in part.missing[:20]:
            print(f"build: not found: {path}", file=sys.stderr)
        if len(part.missing) > 20:
            print(f"build: ... and {len(part.missing) - 20} more not found (see the report)", file=sys.stderr)
        for item in part.unreadable[:20]:
            print(f"build: unreadable: {item['path']}: {item['reason']}", file=sys.stderr)
    args.gated = bool({"I", "IP"} & set(built_configs(args.out)))  # ImageNet terms: gate the repo
    push_to_hub_from_args(args, args.out)
    return 0
