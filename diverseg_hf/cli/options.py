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
import dataclasses
from typing import Any

from ..engines import ENGINES, EngineOptions, engine_options
from ..errors import DiversegError
from ..scoring import get_scorer_class, scorer_names
from ..sources import DEFAULT_UNIT_SIZE, KINDS, open_source


def given(**kwargs: Any) -> dict[str, Any]:
    """The keyword arguments whose value is not None."""
    return {k: v for k, v in kwargs.items() if v is not None}


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (a bad one is argparse's one-line error).

    Example:
        >>> non_negative_int("3")
        3
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


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


def _int_list(value: str) -> list[int]:
    try:
        return [int(g) for g in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {value!r}") from None


def _default(name: str) -> Any:
    return {f.name: f.default for f in dataclasses.fields(EngineOptions)}[name]


#: The engine flags, each an :class:`~diverseg_hf.engines.EngineOptions` field: (flag, field, argparse keywords).
ENGINE_FLAGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--device", "device", {"help": "device of GPU scorers (default cuda when available)"}),
    ("--dtype", "dtype", {"help": "dtype of GPU scorers (e.g. float16, bfloat16)"}),
    ("--gpus", "gpus", {"type": _int_list, "help": "comma-separated GPU indices: one process per GPU"}),
    ("--batch-size", "batch_size", {"type": int, "help": "images per scorer call (and per model pass of the "
                                                         "sam/detect counters)"}),
    ("--points-per-batch", "points_per_batch", {"type": int, "help": "SAM point prompts per mask-decoder call"}),
    ("--image-batch-size", "image_batch_size", {"type": int, "help": "images per image-encoder pass, where it "
                                                                     "differs from --batch-size"}),
    ("--compile", "compile", {"action": "store_true", "default": None, "help": "torch.compile the models"}),
    ("--workers", "workers", {"type": int, "help": "worker processes for CPU scorers; with --engine ray, actors "
                                                   f"(default {_default('workers')})"}),
)
#: The Ray engine's flags (same shape as :data:`ENGINE_FLAGS`).
RAY_FLAGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("--ray-address", "address", {"metavar": "ADDR", "help": "HOST:PORT of a running cluster (ray start --head) "
                                                             "or auto; default: a local one"}),
    ("--gpus-per-worker", "gpus_per_worker", {"type": float, "metavar": "G",
                                              "help": f"GPUs per actor (default {_default('gpus_per_worker')})"}),
    ("--cpus-per-worker", "cpus_per_worker", {"type": float, "metavar": "C", "help": "CPUs per actor (default 1)"}),
    ("--rows-per-block", "rows_per_block", {"type": int, "metavar": "R", "help": "images per Ray block, the work "
                                            f"of one actor call (default {_default('rows_per_block')})"}),
    ("--timeout-s", "timeout_s", {"type": float, "metavar": "S", "help": "seconds without progress before the "
                                  f"run fails (default {_default('timeout_s'):g})"}),
    ("--max-retries", "max_retries", {"type": int, "metavar": "N", "help": "restarts of a crashed actor and "
                                      f"retries of its block (default {_default('max_retries')})"}),
)


def add_score_options(parser: argparse.ArgumentParser, default_scorers: str = "blockiness") -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument("--scorers", help=f"comma-separated scorers (default {default_scorers})")
    group.add_argument("--sam-model", help="model id or path for the sam scorer")
    group.add_argument("--detect-model", help="model id or path for the detect scorer")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument("--resume", dest="overwrite", action="store_false", default=None,
                      help="skip units already complete (default)")
    mode.add_argument("--overwrite", dest="overwrite", action="store_true", help="discard earlier results")
    group.add_argument("--limit", type=int, help="score only the first N images")
    add_engine_options(parser)


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--engine local|ray``, :data:`ENGINE_FLAGS` and :data:`RAY_FLAGS` (read back by :func:`engine_from_args`)."""
    group = parser.add_argument_group("engine")
    group.add_argument("--engine", choices=ENGINES,
                       help="local: this machine (default); ray: a Ray cluster (needs the [ray] extra)")
    ray_group = parser.add_argument_group("ray engine (--engine ray; --workers = actors, "
                                          "--batch-size = images per scorer call)")
    for target, flags in ((group, ENGINE_FLAGS), (ray_group, RAY_FLAGS)):
        for flag, field, kwargs in flags:
            target.add_argument(flag, dest=field, **kwargs)


def engine_from_args(args: argparse.Namespace) -> EngineOptions | None:
    """The :class:`EngineOptions` of the command line; None when every flag kept its default.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_engine_options(parser)
        >>> engine_from_args(parser.parse_args(["--engine", "ray", "--workers", "4"])).workers
        4
        >>> engine_from_args(parser.parse_args([])) is None
        True
    """
    options = engine_options(args.engine, **{field: getattr(args, field) for _, field, _ in ENGINE_FLAGS + RAY_FLAGS})
    return None if options == EngineOptions() else options


def score_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`diverseg_hf.score.score` (only those given); a CUDA ``--device`` this
    machine lacks is refused by :class:`EngineOptions`, in one line, before any scorer is built."""
    options: dict[str, dict[str, Any]] = {}
    if args.sam_model:
        options["sam"] = {"model": args.sam_model}
    if args.detect_model:
        options["detect"] = {"model": args.detect_model}
    return given(engine=engine_from_args(args), scorers=comma_list(args.scorers), scorer_options=options or None,
                 overwrite=args.overwrite, limit=args.limit)


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
