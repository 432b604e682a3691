"""``diverseg publish``: selection -> dataset folder (original-byte shards, scores config, card)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..publish import publish
from .push import add_push_to_hub_options, push_to_hub_from_args

EPILOG = """examples:
  diverseg publish sel/ --out mysubset/ --name mine --format parquet,webdataset --shard-size 500MB
  diverseg publish sel-in1k/ --source ILSVRC/imagenet-1k --out diverseg/ --name I   # ImageNet terms, gated
  # then: datasets.load_dataset("mysubset", "mine")"""


def add_publish_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("publishing")
    group.add_argument("--name", required=True, metavar="CONFIG", help="config (subset) name, e.g. I, P, mine")
    group.add_argument("--format", default="parquet", help="parquet, webdataset or both (comma-separated)")
    group.add_argument("--shard-size", default="500MB", help="maximum bytes per shard (default 500MB)")
    group.add_argument("--license", help="licence id of a custom config (presets: I, IP ImageNet; P cc-by-4.0)")
    gate = group.add_mutually_exclusive_group()
    gate.add_argument("--gated", dest="gated", action="store_true", default=None, help="mark the config gated")
    gate.add_argument("--no-gated", dest="gated", action="store_false", help="do not mark it gated")
    group.add_argument("--no-scores", dest="include_scores", action="store_false",
                       help="do not publish the score table as the `scores` config")
    group.add_argument("--description", help="one paragraph describing the subset, for the card")


def publish_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"name": args.name, "formats": [f.strip() for f in args.format.split(",") if f.strip()],
            "shard_size": args.shard_size, "license": args.license, "gated": args.gated,
            "include_scores": args.include_scores, "description": args.description,
            "repo": args.push_to_hub}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish", help="copy selected images' original bytes into a dataset folder with a card",
        description="Phase 3: byte-exact Parquet/WebDataset shards, the score table and a dataset card.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("selection", metavar="SELECTION", help="selection folder from diverseg select")
    parser.add_argument("--source", help="the source (default: the one recorded in the selection)")
    parser.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder")
    add_publish_options(parser)
    add_push_to_hub_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = publish(args.selection, args.out, source=args.source, **publish_kwargs(args))
    print(f"publish: {result.num_examples} images, {len(result.files)} files -> {result.out}", file=sys.stderr)
    push_to_hub_from_args(args, args.out)
    return 0
