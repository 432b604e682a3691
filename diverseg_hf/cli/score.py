"""``diverseg score``: source -> score table (resumable Parquet shards + scores.json)."""

from __future__ import annotations

import argparse
import sys

from ..score import score
from .options import add_score_options, add_source_options, score_kwargs, source_from_args

EPILOG = """examples:
  diverseg score photos/ --out scores/ --workers 2
  diverseg score ILSVRC/imagenet-1k --split train --out in1k-scores --scorers blockiness,sam \\
      --sam-model facebook/sam-vit-huge --gpus 0,1 --batch-size 16
  # re-running the same command resumes; --overwrite starts afresh."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score", help="score every image of a source into a score table",
        description="Phase 1: decode each image once, score it, write a resumable Parquet score table.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_source_options(parser)
    parser.add_argument("--out", required=True, metavar="SCORES_DIR", help="score table folder")
    add_score_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    summary = score(source_from_args(args), args.out, **score_kwargs(args))
    print(f"score: {summary}", file=sys.stderr)
    return 0
