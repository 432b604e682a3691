"""``diverseg curate``: score + select + publish in one resumable command."""

from __future__ import annotations

import argparse
import sys

from ..curate import curate
from .options import (
    add_publish_options,
    add_score_options,
    add_select_options,
    add_source_options,
    publish_kwargs,
    score_kwargs,
    select_kwargs,
    source_from_args,
)
from .push import add_push_to_hub_options, push_to_hub_from_args
from .select import quality_line

EPILOG = """example:
  diverseg curate photos/ --out mysubset --name mine --scorers blockiness --max-blockiness 10 \\
      --format parquet,webdataset
  # intermediate files live in mysubset/.diverseg/mine/ (re-running resumes scoring);
  # then: datasets.load_dataset("mysubset", "mine")"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "curate", help="score, select and publish a source into a dataset folder",
        description="Run the three phases; intermediate files go to DATASET_DIR/.diverseg/CONFIG/.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser)
    parser.add_argument("--out", required=True, metavar="DATASET_DIR", help="dataset folder")
    add_score_options(parser)
    add_select_options(parser)
    add_publish_options(parser)
    add_push_to_hub_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = curate(source_from_args(args), args.out, score_options=score_kwargs(args),
                    select_options=select_kwargs(args), **publish_kwargs(args))
    print(f"score: {result.scores}", file=sys.stderr)
    rules = result.selection.rules()
    print(f"select: {result.selection}" + (f"; kept where {rules}" if rules else ""), file=sys.stderr)
    if result.selection.quality:
        print(f"quality: {quality_line(result.selection.quality)}", file=sys.stderr)
    published = result.published
    print(f"curate: {published.num_examples} images published as {published.name!r} -> {published.out}",
          file=sys.stderr)
    push_to_hub_from_args(args, args.out)
    return 0
