"""``diverseg build``: make the DiverSeg subsets I, P, IP (curated, or rebuilt from the official lists)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import DiversegError
from ..files import check_output_dir
from ..subsets.build import build
from ..subsets.presets import SUBSET_PRESETS
from .options import (
    add_score_options,
    add_select_options,
    add_shard_options,
    add_source_options,
    score_kwargs,
    select_kwargs,
    shard_kwargs,
    source_options,
)
from .push import add_push_to_hub_options, push_to_hub_from_args

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
        if not sep or part not in SUBSET_PRESETS or not spec:
            raise DiversegError(f"{option} for IP takes PART=VALUE with PART I or P, got {value!r}")
        parts[part] = spec
    return parts


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build", help="build DiverSeg-I/-P/-IP into a dataset folder",
        description="Build a DiverSeg subset: score + select + publish with the paper's settings, or rebuild "
                    "the official list exactly from your own ImageNet/PASS copy (--from-list).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", choices=list(SUBSET_PRESETS), help="I (ImageNet-1k), P (PASS) or IP (both)")
    parser.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder, e.g. diverseg")
    parser.add_argument("--source", action="append", metavar="SRC",
                        help="image folder, .parquet, .tar or Hub id (default: the config's Hub dataset; "
                             "for IP: I=SRC and P=SRC)")
    parser.add_argument("--from-list", action="append", metavar="LIST",
                        help="official list (DiverSeg-I_list.txt...): copy exactly those images, no scoring "
                             "(for IP: I=LIST and P=LIST)")
    add_source_options(parser, positional=False)
    add_score_options(parser, default_scorers="the paper's blockiness,sam")
    add_select_options(parser)
    parser.add_argument("--no-quality-gate", action="store_true", help="do not estimate the source quality")
    add_shard_options(parser.add_argument_group("publishing"))
    add_push_to_hub_options(parser)
    parser.set_defaults(func=run)


def build_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.subsets.build.build` from the parsed command line."""
    select = select_kwargs(args)
    if args.no_quality_gate:
        select["min_quality"] = None
    score = score_kwargs(args)
    return {
        "source": _per_part(args.source, "--source"),
        "from_list": _per_part(args.from_list, "--from-list"),
        "scorers": score.pop("scorers", None),
        "scorer_options": score.pop("scorer_options", None),
        "select_options": select,
        "source_options": source_options(args),
        **shard_kwargs(args),
        **score,
    }


def run(args: argparse.Namespace) -> int:
    kwargs = build_kwargs(args)
    sources = kwargs["source"] if isinstance(kwargs["source"], dict) else {"": kwargs["source"]}
    check_output_dir("out", args.out, {f"source {part}".strip(): spec for part, spec in sources.items()})
    result = build(args.config, args.out, **kwargs)
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
    push_to_hub_from_args(args, args.out)
    return 0
