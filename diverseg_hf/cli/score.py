"""``diverseg score``: source -> score table (resumable Parquet shards + scores.json)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..engines.ray import DEFAULT_ROWS_PER_BLOCK, ray_engine
from ..errors import DiversegError
from ..score import score
from ..sources import DEFAULT_UNIT_SIZE, KINDS, open_source

EPILOG = """examples:
  diverseg score photos/ --out scores/ --workers 2
  diverseg score ILSVRC/imagenet-1k --split train --out in1k-scores --scorers blockiness,sam \\
      --sam-model facebook/sam-vit-huge --gpus 0,1 --batch-size 16
  # re-running the same command resumes; --overwrite starts afresh."""


def add_source_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("source")
    group.add_argument("source", metavar="SOURCE",
                       help="image folder, .parquet file(s), .tar shard(s), or Hugging Face dataset id")
    group.add_argument("--source-kind", choices=KINDS, help="override the detected source kind")
    group.add_argument("--hub-config", help="dataset config (Hub sources)")
    group.add_argument("--split", default="train", help="dataset split (Hub sources; default train)")
    group.add_argument("--revision", help="dataset revision (Hub sources)")
    group.add_argument("--image-column", help="image column (Parquet/Hub; default: detected)")
    group.add_argument("--key-column", help="id column used as key (Parquet/Hub)")
    group.add_argument("--unit-size", type=int, default=DEFAULT_UNIT_SIZE,
                       help=f"images per unit of a folder source (default {DEFAULT_UNIT_SIZE})")


def add_score_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument("--scorers", default="blockiness", help="comma-separated scorers (default blockiness)")
    group.add_argument("--sam-model", help="model id or path for the sam scorer")
    group.add_argument("--detect-model", help="model id or path for the detect scorer")
    group.add_argument("--device", help="device of GPU scorers (default cuda when available)")
    group.add_argument("--dtype", help="dtype of GPU scorers (e.g. float16, bfloat16)")
    group.add_argument("--gpus", help="comma-separated GPU indices: one process per GPU")
    group.add_argument("--batch-size", type=int, help="images per scorer call")
    group.add_argument("--workers", type=int, default=1, help="worker processes for CPU scorers (default 1)")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="overwrite", action="store_false", default=False,
                      help="skip units already complete (default)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true", help="discard earlier results")
    group.add_argument("--limit", type=int, help="score only the first N images")
    add_engine_options(parser, group)


def add_engine_options(parser: argparse.ArgumentParser, group: argparse._ArgumentGroup) -> None:
    """``--engine local|ray`` and the Ray cluster options (score, curate, build)."""
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine (default); ray: a Ray cluster (needs the [ray] extra)")
    ray_group = parser.add_argument_group(
        "ray engine (--engine ray; --workers = actors, --batch-size = images per scorer call)")
    ray_group.add_argument("--ray-address", metavar="ADDR",
                           help="HOST:PORT of a running cluster (ray start --head) or auto; default: a local one")
    ray_group.add_argument("--gpus-per-worker", type=float, default=0, metavar="G", help="GPUs per actor (default 0)")
    ray_group.add_argument("--rows-per-block", type=int, default=DEFAULT_ROWS_PER_BLOCK, metavar="R",
                           help=f"images per Ray block, the work of one actor call (default {DEFAULT_ROWS_PER_BLOCK})")


def engine_from_args(args: argparse.Namespace):
    """The engine ``score(engine=...)`` takes: None for the local one, or the Ray engine with its options."""
    if args.engine == "ray":
        return ray_engine(address=args.ray_address, gpus_per_worker=args.gpus_per_worker,
                          rows_per_block=args.rows_per_block)
    if args.ray_address or args.gpus_per_worker:
        raise DiversegError("--ray-address and --gpus-per-worker need --engine ray")
    return None


def source_from_args(args: argparse.Namespace):
    return open_source(args.source, kind=args.source_kind, unit_size=args.unit_size, config=args.hub_config,
                       split=args.split, revision=args.revision, image_column=args.image_column,
                       key_column=args.key_column)


def score_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, dict[str, Any]] = {}
    if args.sam_model:
        options["sam"] = {"model": args.sam_model}
    if args.detect_model:
        options["detect"] = {"model": args.detect_model}
    try:
        gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
    except ValueError:
        raise DiversegError(f"--gpus must be comma-separated integers, got {args.gpus!r}") from None
    return {
        "engine": engine_from_args(args),
        "scorers": [s.strip() for s in args.scorers.split(",") if s.strip()],
        "scorer_options": options,
        "device": args.device,
        "dtype": args.dtype,
        "gpus": gpus,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "overwrite": args.overwrite,
        "limit": args.limit,
    }


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
