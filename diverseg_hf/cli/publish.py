"""``diverseg publish``: selection -> dataset folder (original-byte shards, scores config, card)."""

from __future__ import annotations

import argparse
import sys

from ..publish.from_selection import publish
from .options import add_publish_options, publish_kwargs
from .push import add_push_to_hub_options, push_to_hub_from_args

EPILOG = """examples:
  diverseg publish sel/ --out mysubset/ --name mine --format parquet,webdataset --shard-size 500MB --workers 2
  diverseg publish sel-in1k/ --source ILSVRC/imagenet-1k --out diverseg/ --name I   # ImageNet terms, gated
  # then: datasets.load_dataset("mysubset", "mine")"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "publish", help="copy selected images' original bytes into a dataset folder with a card",
        description="Phase 3: byte-exact Parquet/WebDataset shards, the score table and a dataset card.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("selection", metavar="SELECTION", help="selection folder from diverseg select")
    parser.add_argument("--source", help="the source (default: the one recorded in the selection)")
    parser.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder")
    add_publish_options(parser)
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes writing shards at once (default 1); a killed publish re-run resumes")
    add_push_to_hub_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = publish(args.selection, args.out, source=args.source, workers=args.workers,
                     **publish_kwargs(args))
    print(f"publish: {result.num_examples} images, {len(result.files)} files -> {result.out}", file=sys.stderr)
    push_to_hub_from_args(args, args.out)
    return 0
