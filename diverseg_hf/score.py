"""Phase 1: source -> score table (one Parquet shard per source unit), resumable exactly once.

:func:`score` opens the source, records what made the table (source, scorers and settings, limit,
units) in a :class:`~diverseg_hf.storage.ScoreTable`, and hands the units not yet committed to an
engine (:class:`~diverseg_hf.engines.LocalEngine` by default, or the Ray engine), which runs
:func:`diverseg_hf.scoring.run.score_unit` on each and commits the results through the table.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from PIL import Image
    >>> src = pathlib.Path(tempfile.mkdtemp())
    >>> Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(src / "flat.png")
    >>> summary = score(str(src), pathlib.Path(tempfile.mkdtemp()) / "scores", progress=False)
    >>> summary.rows, summary.undefined
    (1, 1)
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engines import Engine, EngineOptions, engine_options, resolve_engine
from .errors import DiversegError, check_at_least
from .files import check_output_dir, holds_lock
from .scoring.specs import build_scorers, scorer_specs
from .sources import DEFAULT_UNIT_SIZE, Source, open_source
from .storage import ScoreTable, table_schema

logger = logging.getLogger(__name__)

#: Scorer options and settings that change how fast a table is made, never its values: a resumed run may
#: change them (e.g. a smaller --batch-size after running out of memory); the header records the latest.
TUNING = frozenset({"batch_size", "points_per_batch", "image_batch_size", "upscale_batch", "compile"})


def without_tuning(header: dict[str, Any]) -> dict[str, Any]:
    """``header`` without the :data:`TUNING` entries of its scorers: what must match when a table resumes.

    The columns' directions (``lower_is_better``) are left out too: they follow the scorer's code, not the
    values, and tables written before they were recorded resume.

    Example:
        >>> without_tuning({"scorers": [{"name": "sam", "options": {"batch_size": 8, "dtype": "bfloat16"}}]})
        {'scorers': [{'name': 'sam', 'options': {'dtype': 'bfloat16'}, 'settings': {}}]}
    """
    def strip(values: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in values.items() if k not in TUNING}

    scorers = [{**{k: v for k, v in s.items() if k != "lower_is_better"}, "options": strip(s.get("options", {})),
                "settings": strip(s.get("settings", {}))} for s in header.get("scorers", [])]
    return {**header, "scorers": scorers}


@dataclass
class ScoreSummary:
    """Counts of a score run: rows scored, undefined (NaN + reason), errors by kind."""

    out: Path
    rows: int
    scored: int
    undefined: int
    errors: int
    errors_by_kind: dict[str, int]
    units_done_before: int

    def __str__(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.errors_by_kind.items())
        return (f"{self.rows} images: {self.scored} scored, {self.undefined} undefined, "
                f"{self.errors} errors" + (f" ({kinds})" if kinds else ""))


@holds_lock("out")
def score(
    source: str | Source,
    out: str | os.PathLike,
    scorers: Sequence[str] = ("blockiness",),
    scorer_options: dict[str, dict[str, Any]] | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    gpus: Sequence[int] | None = None,
    batch_size: int | None = None,
    points_per_batch: int | None = None,
    image_batch_size: int | None = None,
    compile: bool = False,
    workers: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
    limit: int | None = None,
    unit_size: int = DEFAULT_UNIT_SIZE,
    hub_config: str | None = None,
    split: str = "train",
    progress: bool = True,
    engine: str | EngineOptions | Engine | None = None,
) -> ScoreSummary:
    """Score every record of ``source`` into a score table at ``out`` (resumable).

    ``scorer_options`` maps a scorer name to constructor options (e.g. ``{"sam": {"model": ...}}``).
    The engine options ``device``, ``dtype``, ``batch_size`` (images per scorer call), ``points_per_batch``,
    ``image_batch_size`` and ``compile`` (torch.compile) go to each scorer that accepts them
    (:data:`diverseg_hf.scoring.base.ENGINE_OPTIONS`) and are recorded with its options in the table.
    CPU scorers run over ``workers`` processes (default 1); GPU scorers in this process on ``device``,
    or one process per GPU with ``gpus=[0, 1]``. ``engine``: ``"local"`` (default) or ``"ray"``, an
    :class:`~diverseg_hf.engines.EngineOptions` (the keyword arguments above, where given, override
    its fields) or an engine object. Models load only in the processes that score.

    Example:
        >>> score("/no/such/folder", "/tmp/x")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no such file or folder: /no/such/folder
    """
    if limit is not None:
        check_at_least("limit", limit)
    check_output_dir("out", out)
    runner = resolve_engine(engine, workers=workers, gpus=gpus, device=device, dtype=dtype, batch_size=batch_size,
                            points_per_batch=points_per_batch, image_batch_size=image_batch_size, compile=compile)
    runner.check()  # e.g. the [ray] extra, before the table exists
    specs = scorer_specs(list(scorers), scorer_options, runner.options.scorer_options())
    src = source if isinstance(source, Source) else open_source(
        source, unit_size=unit_size, config=hub_config, split=split)
    check_output_dir("out", out, {"source": src.spec})
    if resume and not overwrite:
        _check_same_commit(src, out)
    units = src.units(limit)
    if not units:
        raise DiversegError(f"source {src.spec} has no records")
    probe_scorers = build_scorers(specs)  # settings only: no model is loaded here
    header = {
        "source": src.describe(),
        "limit": limit,
        "scorers": [
            {"name": s.name, "options": opts, "settings": s.settings(), "columns": s.columns,
             "lower_is_better": sorted(s.lower_is_better)}
            for s, (_, opts) in zip(probe_scorers, specs)
        ],
        "columns": table_schema(probe_scorers).names,
    }
    header = json.loads(json.dumps(header, default=str))
    unit_list = [{"id": u.id, "size": u.size, "max_records": u.max_records, "fingerprint": u.fingerprint()}
                 for u in units]
    table = ScoreTable.create(Path(out), header, unit_list, overwrite=overwrite, resume=resume,
                              compared=without_tuning)
    before = len(table.done())
    todo = [u for u in units if u.id not in table.done()]
    if before:
        logger.info("resuming: %d of %d units already complete", before, len(units))
    expected = [u.size if u.max_records is None else min(u.max_records, u.size or math.inf) for u in todo]
    total = None if any(s is None for s in expected) else int(sum(expected))  # type: ignore[arg-type]
    runner.run(todo, specs, table.commit, total=total, progress=progress)
    totals = table.totals()
    summary = ScoreSummary(out=Path(out), units_done_before=before, **totals)
    logger.info("score: %s", summary)
    return summary


def _check_same_commit(src: Source, out: str | os.PathLike) -> None:
    """Refuse to resume a table of a Hub source that has moved on since (saying how to finish it)."""
    try:
        recorded = ScoreTable.open(out).header.get("source", {})
    except DiversegError:
        return  # no table yet
    old, new = recorded.get("revision"), src.options.get("revision")
    if src.kind == "hub" == recorded.get("kind") and recorded.get("spec") == src.spec and old and new and old != new:
        raise DiversegError(f"{src.spec} moved from commit {old} to {new} since {out} was started; pass "
                            f"--revision {old} to finish on the recorded commit, or --overwrite to start afresh")


def score_with_ray(
    source: Any,
    out: str | os.PathLike,
    scorers: Sequence[str] = ("blockiness",),
    *,
    resume: bool = True,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    unit_size: int = DEFAULT_UNIT_SIZE,
    hub_config: str | None = None,
    split: str = "train",
    progress: bool = True,
    **options: Any,
) -> ScoreSummary:
    """:func:`score` on a Ray cluster: same table, same resume, many GPUs.

    ``options`` are the fields of :class:`~diverseg_hf.engines.EngineOptions`: ``address`` (``HOST:PORT``
    of a running cluster, ``auto``, or None for a throw-away local cluster), ``workers`` actors with
    ``gpus_per_worker`` GPUs each scoring blocks of ``rows_per_block`` records, ``batch_size`` images per
    scorer call, ``timeout_s``, ``max_retries``, ``runtime_env``... The other arguments are :func:`score`'s.

    Example:
        >>> score_with_ray("photos/", "scores/", workers=2, address="head:6379")  # doctest: +SKIP
    """
    return score(source, out, scorers, scorer_options, resume=resume, overwrite=overwrite, limit=limit,
                 unit_size=unit_size, hub_config=hub_config, split=split, progress=progress,
                 engine=engine_options("ray", **options))
