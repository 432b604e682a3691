"""Command-line options shared by several subcommands, and their translation into keyword arguments.

Options default to None (unless a default changes what a command does) so that only what the user
gave reaches the library, whose own defaults apply otherwise.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> add_select_options(parser)
    >>> select_kwargs(parser.parse_args(["--theta", "sam_masks=100", "--keep", "0.2", "--by", "det_objects"]))
    {'thetas': {'sam_masks': 100.0}, 'keep': 0.2, 'by': 'det_objects'}
"""

from __future__ import annotations

import argparse
from typing import Any

from ..engines.ray import DEFAULT_ROWS_PER_BLOCK, ray_engine
from ..errors import DiversegError
from ..scoring import get_scorer_class, scorer_names
from ..sources import DEFAULT_UNIT_SIZE, KINDS, open_source


def given(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments whose value is not None."""
    return {k: v for k, v in kwargs.items() if v is not None}


def comma_list(value: str | None) -> list[str] | None:
    """``"a, b"`` -> ``["a", "b"]``; None stays None."""
    return None if value is None else [s.strip() for s in value.split(",") if s.strip()]


# ----------------------------------------------------------------------------- source


def add_source_options(parser: argparse.ArgumentParser, positional: bool = True) -> None:
    """The source options (and the positional SOURCE unless the command takes it otherwise)."""
    group = parser.add_argument_group("source")
    if positional:
        group.add_argument("source", metavar="SOURCE",
                           help="image folder, .parquet file(s), .tar shard(s), or Hugging Face dataset id")
    group.add_argument("--source-kind", choices=KINDS, help="override the detected source kind")
    group.add_argument("--hub-config", help="dataset config (Hub sources)")
    group.add_argument("--split", help="dataset split (Hub sources; default train)")
    group.add_argument("--revision", help="dataset revision (Hub sources)")
    group.add_argument("--image-column", help="image column (Parquet/Hub; default: detected)")
    group.add_argument("--key-column", help="id column used as key (Parquet/Hub)")
    group.add_argument("--unit-size", type=int,
                       help=f"images per unit of a folder source (default {DEFAULT_UNIT_SIZE})")


def source_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.sources.open_source` besides the spec."""
    return given(kind=args.source_kind, unit_size=args.unit_size, config=args.hub_config, split=args.split,
                 revision=args.revision, image_column=args.image_column, key_column=args.key_column)


def source_from_args(args: argparse.Namespace):
    return open_source(args.source, **source_options(args))


# ----------------------------------------------------------------------------- scoring


def add_score_options(parser: argparse.ArgumentParser, default_scorers: str = "blockiness") -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument("--scorers", help=f"comma-separated scorers (default {default_scorers})")
    group.add_argument("--sam-model", help="model id or path for the sam scorer")
    group.add_argument("--detect-model", help="model id or path for the detect scorer")
    group.add_argument("--device", help="device of GPU scorers (default cuda when available)")
    group.add_argument("--dtype", help="dtype of GPU scorers (e.g. float16, bfloat16)")
    group.add_argument("--gpus", help="comma-separated GPU indices: one process per GPU")
    group.add_argument("--batch-size", type=int,
                       help="images per scorer call (and per model pass of the sam/detect counters)")
    group.add_argument("--points-per-batch", type=int, help="SAM point prompts per mask-decoder call")
    group.add_argument("--image-batch-size", type=int,
                       help="images per image-encoder pass, where it differs from --batch-size")
    group.add_argument("--compile", action="store_true", default=None, help="torch.compile the models")
    group.add_argument("--workers", type=int, help="worker processes for CPU scorers (default 1)")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="overwrite", action="store_false", default=None,
                      help="skip units already complete (default)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true", help="discard earlier results")
    group.add_argument("--limit", type=int, help="score only the first N images")
    _add_engine_options(parser, group)


def _add_engine_options(parser: argparse.ArgumentParser, group: argparse._ArgumentGroup) -> None:
    """``--engine local|ray`` and the Ray cluster options."""
    group.add_argument("--engine", choices=("local", "ray"), default="local",
                       help="local: this machine (default); ray: a Ray cluster (needs the [ray] extra)")
    ray_group = parser.add_argument_group(
        "ray engine (--engine ray; --workers = actors, --batch-size = images per scorer call)")
    ray_group.add_argument("--ray-address", metavar="ADDR",
                           help="HOST:PORT of a running cluster (ray start --head) or auto; default: a local one")
    ray_group.add_argument("--gpus-per-worker", type=float, default=0, metavar="G", help="GPUs per actor (default 0)")
    ray_group.add_argument("--rows-per-block", type=int, default=DEFAULT_ROWS_PER_BLOCK, metavar="R",
                           help=f"images per Ray block, the work of one actor call (default {DEFAULT_ROWS_PER_BLOCK})")


def _engine(args: argparse.Namespace):
    """The engine ``score(engine=...)`` takes: None for the local one, or the Ray engine with its options."""
    if args.engine == "ray":
        return ray_engine(address=args.ray_address, gpus_per_worker=args.gpus_per_worker,
                          rows_per_block=args.rows_per_block)
    if args.ray_address or args.gpus_per_worker:
        raise DiversegError("--ray-address and --gpus-per-worker need --engine ray")
    return None


def score_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.score.score` (only those given)."""
    options: dict[str, dict[str, Any]] = {}
    if args.sam_model:
        options["sam"] = {"model": args.sam_model}
    if args.detect_model:
        options["detect"] = {"model": args.detect_model}
    try:
        gpus = [int(g) for g in args.gpus.split(",")] if args.gpus else None
    except ValueError:
        raise DiversegError(f"--gpus must be comma-separated integers, got {args.gpus!r}") from None
    return given(engine=_engine(args), scorers=comma_list(args.scorers), scorer_options=options or None,
                 device=args.device, dtype=args.dtype, gpus=gpus, batch_size=args.batch_size,
                 points_per_batch=args.points_per_batch, image_batch_size=args.image_batch_size, compile=args.compile,
                 workers=args.workers, overwrite=args.overwrite, limit=args.limit)


# ----------------------------------------------------------------------------- selection


def add_select_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection")
    lower = ", ".join(lower_is_better_columns()) or "none"
    group.add_argument("--max-blockiness", type=float,
                       help="keep images with blockiness <= X (the same as --theta blockiness=X)")
    group.add_argument("--theta-masks", type=float, help="keep images with sam_masks >= N (paper: 100)")
    group.add_argument("--theta-objects", type=float, help="keep images with det_objects >= N (paper: 18)")
    group.add_argument("--theta", action="append", default=[], metavar="COL=N",
                       help=f"keep images whose COL is at least as good as N: COL <= N where lower is better "
                            f"({lower}), COL >= N for the other columns (repeatable; a bare N means sam_masks)")
    group.add_argument("--keep", type=float, metavar="FRACTION",
                       help="choose the theta on --by that keeps this fraction of the source")
    group.add_argument("--by", metavar="COL", help="count column for --keep (default sam_masks)")
    group.add_argument("--min-quality", type=float, help="refuse a source whose estimated quality is below Q")
    group.add_argument("--basis", help="basis for the quality estimate (default: the DF2K basis)")
    group.add_argument("--on-low-quality", choices=("error", "warn"),
                       help="what --min-quality does below the bar (default error)")


def lower_is_better_columns() -> list[str]:
    """The columns the registered scorers declare lower-is-better (``Scorer.lower_is_better``).

    Example:
        >>> lower_is_better_columns()
        ['blockiness']
    """
    return sorted({col for name in scorer_names() for col in get_scorer_class(name).lower_is_better})


def _thetas(args: argparse.Namespace) -> dict[str, float]:
    thetas: dict[str, float] = {}
    if args.theta_masks is not None:
        thetas["sam_masks"] = args.theta_masks
    if args.theta_objects is not None:
        thetas["det_objects"] = args.theta_objects
    for item in args.theta:
        col, sep, value = item.partition("=") if "=" in item else ("sam_masks", "=", item)
        try:
            thetas[col.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not col.strip():
            raise DiversegError(f"--theta takes COL=N (or N for sam_masks), got {item!r}")
    return thetas


def select_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.select.select` (only those given)."""
    return given(max_blockiness=args.max_blockiness, thetas=_thetas(args) or None, keep=args.keep, by=args.by,
                 min_quality=args.min_quality, basis=args.basis, on_low_quality=args.on_low_quality)


# ----------------------------------------------------------------------------- publishing


def add_shard_options(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--format", default="parquet", help="parquet, webdataset or both (comma-separated)")
    group.add_argument("--shard-size", default="500MB", help="maximum bytes per shard (default 500MB)")


def add_publish_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("publishing")
    group.add_argument("--name", required=True, metavar="CONFIG", help="config (subset) name, e.g. I, P, mine")
    add_shard_options(group)
    group.add_argument("--license", help="licence id of a custom config (presets: I, IP ImageNet; P cc-by-4.0)")
    gate = group.add_mutually_exclusive_group()
    gate.add_argument("--gated", dest="gated", action="store_true", default=None, help="mark the config gated")
    gate.add_argument("--no-gated", dest="gated", action="store_false", help="do not mark it gated")
    group.add_argument("--no-scores", dest="include_scores", action="store_false",
                       help="do not publish the score table as the `scores` config")
    group.add_argument("--description", help="one paragraph describing the subset, for the card")


def shard_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {"formats": comma_list(args.format), "shard_size": args.shard_size, "repo": args.push_to_hub}


def publish_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.publish.from_selection.publish` besides the selection and folder."""
    return {"name": args.name, **shard_kwargs(args), "license": args.license, "gated": args.gated,
            "include_scores": args.include_scores, "description": args.description}
