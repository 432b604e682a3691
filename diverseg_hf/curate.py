"""score + select + publish in one call, intermediate files under ``DATASET_DIR/.diverseg/CONFIG/``.

Every argument of the three phases that can be checked before work is checked before scoring
(config name, formats, shard size, output folder, selection rules and the quality basis, scorer
names and extras, and that a chosen scorer makes every column a rule uses). An output folder inside
the source folder is refused: curate would read its own figures back as training images on the next run.

Re-running resumes scoring (complete units are kept); select and publish are cheap and re-run.

Example:
    >>> curate("/no/such/folder", "/tmp/ds", "mine")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: no such file or folder: /no/such/folder
    >>> curate("/no/such/folder", "/tmp/ds", "my-subset")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: config name 'my-subset' must be letters, digits or _ (and not 'scores')
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import Any

from .engines import resolve_engine
from .errors import ParameterError
from .files import check_output_dir, holds_lock
from .publish.from_selection import PublishResult, check_publish_arguments, publish
from .score import ScoreSummary, score
from .scoring import get_scorer_class
from .scoring.specs import scorer_specs
from .select import SelectionResult, blockiness_shorthand, check_select_arguments, rule_columns, select
from .sources import Source, open_source
from .storage import BASE_SCHEMA, DatasetDir


@dataclass
class CurateResult:
    """The three phases' results."""

    scores: ScoreSummary
    selection: SelectionResult
    published: PublishResult


@holds_lock("out")
def curate(
    source: str | Source,
    out: str | os.PathLike,
    name: str,
    score_options: dict[str, Any] | None = None,
    select_options: dict[str, Any] | None = None,
    **publish_options: Any,
) -> CurateResult:
    """Curate ``source`` into config ``name`` of the dataset folder ``out``.

    ``score_options``/``select_options``/``publish_options`` are the keyword arguments of
    :func:`~diverseg_hf.score.score`, :func:`~diverseg_hf.select.select` and
    :func:`~diverseg_hf.publish.from_selection.publish`. When blockiness is scored, the source's JPEG-quality
    estimate (default basis) is recorded in the selection and shown on the card.
    """
    _check_arguments(out, name, score_options or {}, select_options or {}, publish_options)
    src = source if isinstance(source, Source) else open_source(source)
    check_out_outside(src, out)
    work = DatasetDir(out).work_dir(name)
    progress = publish_options.get("progress", True)
    scores = score(src, work / "scores", progress=progress, **(score_options or {}))
    # the estimate is recorded wherever the table has blockiness values (select checks its columns)
    selection = select(work / "scores", work / "selection", estimate=True, **(select_options or {}))
    published = publish(work / "selection", out, name, source=src, **publish_options)
    return CurateResult(scores, selection, published)


#: score()'s keyword arguments that are engine options.
ENGINE_KEYWORDS = ("workers", "gpus", "device", "dtype", "batch_size", "points_per_batch", "image_batch_size",
                   "compile")


def _check_arguments(out: str | os.PathLike, name: str, score_options: dict[str, Any],
                     select_options: dict[str, Any], publish_options: dict[str, Any]) -> None:
    """The checks each phase makes of its arguments, all made before the first phase starts."""
    defaults = {k: p.default for k, p in inspect.signature(publish).parameters.items()}
    check_publish_arguments(name, publish_options.get("formats", defaults["formats"]),
                            publish_options.get("shard_size", defaults["shard_size"]), out,
                            license=publish_options.get("license"))
    by = check_select_arguments(**select_options)
    scorers = list(score_options.get("scorers", inspect.signature(score).parameters["scorers"].default))
    scorer_specs(scorers, score_options.get("scorer_options"))
    _check_rule_columns(scorers, select_options, by)
    engine = {k: score_options.get(k) for k in ENGINE_KEYWORDS}
    resolve_engine(score_options.get("engine"), **engine).check()  # e.g. the [ray] extra, before any folder


def _check_rule_columns(scorers: list[str], select_options: dict[str, Any], by: str | None) -> None:
    """Refuse a rule on a column that neither the score table's own columns nor any chosen scorer makes."""
    max_blockiness, thetas = blockiness_shorthand(select_options.get("max_blockiness"), select_options.get("thetas"))
    quality = select_options.get("min_quality") is not None or select_options.get("basis") is not None
    made = set(BASE_SCHEMA.names) | {col for name in scorers for col in get_scorer_class(name).columns}
    missing = [col for col in rule_columns(max_blockiness, thetas, by, quality) if col not in made]
    if missing:
        raise ParameterError("scorers", f"{', '.join(scorers)} make no column {', '.join(map(repr, missing))}, "
                             "which the selection rules use; add the scorer that makes it")


def check_out_outside(src: Source, out: str | os.PathLike) -> None:
    """Refuse an output folder that lies inside a local source folder (curate would read its own output).

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "a.png").write_bytes(b"x")
        >>> check_out_outside(open_source(str(root)), root / "curated")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: out .../curated lies inside the source folder ...; choose a folder outside it
    """
    check_output_dir("out", out, {"source": src.spec})
