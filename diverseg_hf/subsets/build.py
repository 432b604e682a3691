"""``build``: make the DiverSeg subsets I (ImageNet-1k), P (PASS) and IP (both) in a dataset folder.

Two ways to make a subset (presets in :mod:`diverseg_hf.subsets.presets`):

- **curate** (default): score the source with the paper's scorers, select with its thresholds
  (SAM masks >= 100, dataset quality gate) and publish, all through :func:`diverseg_hf.curate.curate`;
- **from a list** (``from_list=``): rebuild the official subset exactly from the user's own copy of
  the source, without scoring (each listed image is decoded once, to report broken files; matching
  rules in :mod:`diverseg_hf.subsets.official_lists`); bytes are copied untouched. Listed files that are not
  found, or found but unreadable, are reported in ``DATASET_DIR/.diverseg/<CONFIG>/from_list_report.json``
  (and logged), never silently dropped.

``IP`` is the union of ``I`` and ``P``: parts already in the folder are reused (no re-scoring), others
are built first; its rows are read back from the published ``I`` and ``P`` shards with keys
namespaced ``I/...`` and ``P/...``.

Example:
    >>> build("X", "/tmp/ds")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: unknown config 'X'; choose from I, P, IP
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..curate import curate
from ..errors import DiversegError
from ..files import holds_lock, write_json_atomic
from ..publish.from_selection import publish
from ..select import select
from ..sources import Source, Unit
from ..sources.published import PublishedSource, open_published
from ..storage import DatasetDir, ScoreTable, parquet_schema, read_parquet_table
from .official_lists import LIST_SCHEMA, ListSource, match_list, read_list
from .presets import SubsetPreset, open_subset_source, paper_select_options, subset_preset

logger = logging.getLogger(__name__)

REPORT = "from_list_report.json"


@dataclass
class BuildResult:
    """What :func:`build` made: the config, its image count, and for list builds what was not found."""

    config: str
    out: Path
    num_examples: int
    listed: int | None = None
    missing: list[str] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    report: Path | None = None
    parts: dict[str, BuildResult] = field(default_factory=dict)


def _build_from_list(sub: SubsetPreset, out: Path, list_path: str | os.PathLike, src: Source,
                     publish_options: dict[str, Any]) -> BuildResult:
    entries = read_list(list_path)
    progress = publish_options.get("progress", True)
    units, unit_rows, report = match_list(entries, src, progress)
    work = DatasetDir(out).work_dir(sub.name)
    header = {"source": {**src.describe(), "list": str(Path(list_path).resolve())}, "limit": None,
              "scorers": [], "columns": LIST_SCHEMA.names}
    table = ScoreTable.create(work / "scores", header, [{"id": u.id, "size": u.size, "max_records": None}
                                                         for u in units], overwrite=True)
    for unit, rows in zip(units, unit_rows):
        table.commit(unit.id, pa.Table.from_pylist(rows, schema=LIST_SCHEMA))
    unreadable = [{"path": r["list_path"], "reason": r["error"]} for rows in unit_rows for r in rows if r["error"]]
    report.update(config=sub.name, list=str(list_path), source=src.describe(), unreadable=unreadable,
                  published=report["found"] - len(unreadable))
    write_json_atomic(work / REPORT, report)
    if report["missing"] or unreadable:
        logger.warning("%s: %d of %d listed images not found, %d unreadable (first: %s); see %s", sub.name,
                       len(report["missing"]), len(entries), len(unreadable),
                       (report["missing"] or [u["path"] for u in unreadable])[0], work / REPORT)
    if report["published"] == 0:
        raise DiversegError(f"none of the {len(entries)} images of {list_path} were found in {src.spec}; "
                            f"see {work / REPORT}")
    select(work / "scores", work / "selection")
    listed_source = ListSource(src.spec, list(units), {"list": str(list_path)})
    description = (f"The official {sub.title} list ({len(entries):,} images), rebuilt from `{src.spec}` "
                   "with the original image bytes, without scoring.")
    if report["missing"] or unreadable:
        description += (f" {len(report['missing']):,} listed images were not found in that copy and "
                        f"{len(unreadable):,} were unreadable.")
    published = publish(work / "selection", out, sub.name, source=listed_source, include_scores=False,
                        description=description, **publish_options)
    return BuildResult(sub.name, out, published.num_examples, listed=len(entries), missing=report["missing"],
                       unreadable=unreadable, report=work / REPORT)


def _published(out: Path, name: str) -> PublishedSource:
    try:
        return open_published(out, name, prefix=f"{name}/")
    except DiversegError:
        message = f"{out} has no Parquet shards of config {name!r} (build it with --format parquet)"
        raise DiversegError(message) from None


def _build_union(sub: SubsetPreset, out: Path, publish_options: dict[str, Any]) -> BuildResult:
    """IP from the published shards of its parts: no image is scored or matched again."""
    units: list[Unit] = []
    tables: list[pa.Table] = []
    for part in sub.parts:
        for unit in _published(out, part).units():
            path = unit.path
            schema = parquet_schema(path)
            table = read_parquet_table(path, [c for c in schema.names if c != "image"])
            keys = pa.array([f"{part}/{k}" for k in table.column("key").to_pylist()], pa.string())
            table = table.set_column(table.schema.get_field_index("key"), "key", keys)
            tables.append(table.append_column("error", pa.nulls(table.num_rows, pa.string())))
            units.append(dataclasses.replace(unit, size=table.num_rows))
    tables = [t.replace_schema_metadata(None) for t in tables]
    union = pa.concat_tables(tables, promote_options="permissive")
    order = [c for c in union.column_names if c != "error"] + ["error"]
    union = union.select(order)
    work = DatasetDir(out).work_dir(sub.name)
    header = {"source": {"kind": "published", "spec": str(out), "parts": list(sub.parts)}, "limit": None,
              "scorers": [], "columns": union.column_names}
    store = ScoreTable.create(work / "scores", header, [{"id": u.id, "size": u.size, "max_records": None}
                                                        for u in units], overwrite=True)
    start = 0
    for unit in units:
        store.commit(unit.id, union.slice(start, unit.size))
        start += unit.size or 0
    select(work / "scores", work / "selection")
    description = (
        f"The union of configs {' and '.join(sub.parts)} ({union.num_rows:,} images); keys are prefixed with "
        "their config (`I/...`, `P/...`). See those configs for how each was selected.")
    published = publish(work / "selection", out, sub.name, source=PublishedSource(str(out), units, {}),
                        include_scores=False, description=description, **publish_options)
    return BuildResult(sub.name, out, published.num_examples)


def built_configs(out: str | os.PathLike) -> list[str]:
    """Names of the configs already published in the dataset folder ``out``."""
    return DatasetDir(out).config_names()


def _per_part(value: Any, part: str) -> Any:
    return value.get(part) if isinstance(value, Mapping) else value


@holds_lock("out_dir")
def build(
    config: str,
    out_dir: str | os.PathLike,
    *,
    source: str | Source | Mapping[str, str | Source] | None = None,
    from_list: str | os.PathLike | Mapping[str, str | os.PathLike] | None = None,
    scorers: list[str] | None = None,
    scorer_options: dict[str, dict[str, Any]] | None = None,
    select_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
    formats: tuple[str, ...] | list[str] = ("parquet",),
    shard_size: str | int = "500MB",
    repo: str | None = None,
    progress: bool = True,
    **score_options: Any,
) -> BuildResult:
    """Build config ``config`` (``I``, ``P`` or ``IP``) of the DiverSeg dataset folder ``out_dir``.

    Without ``from_list``, curates ``source`` (default: the config's Hub dataset) with the paper's
    scorers (``scorers``/``scorer_options`` override them) and thresholds (``select_options``
    override them, e.g. ``{"min_quality": None}``); ``score_options`` go to
    :func:`diverseg_hf.score.score` (``device``, ``batch_size``, ``workers``, ``limit``...). With
    ``from_list``, rebuilds the official list from ``source`` without scoring. For ``IP``, ``source``
    and ``from_list`` may map ``"I"``/``"P"`` to each part's; parts already in ``out_dir`` are reused.
    ``source_options`` go to :func:`diverseg_hf.sources.open_source` (``split``, ``key_column``...).

    Example:
        >>> build("I", "diverseg", source="imagenet/train", from_list="DiverSeg-I_list.txt")  # doctest: +SKIP
        BuildResult(config='I', ..., num_examples=259..., missing=[...])
        >>> build("X", "/tmp/ds")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: unknown config 'X'; choose from I, P, IP
    """
    sub = subset_preset(config)
    out = Path(out_dir)
    publish_options: dict[str, Any] = {"formats": list(formats), "shard_size": shard_size, "repo": repo,
                                       "progress": progress}
    if sub.parts:
        done = built_configs(out)
        parts: dict[str, BuildResult] = {}
        for part in sub.parts:
            part_source, part_list = _per_part(source, part), _per_part(from_list, part)
            if part in done and part_source is None and part_list is None:
                logger.info("IP: reusing config %s already in %s", part, out)
                continue
            parts[part] = build(part, out, source=part_source, from_list=part_list, scorers=scorers,
                                scorer_options=scorer_options, select_options=select_options,
                                source_options=source_options, formats=formats, shard_size=shard_size, repo=repo,
                                progress=progress, **score_options)
        result = _build_union(sub, out, publish_options)
        result.parts = parts
        return result
    if isinstance(source, Mapping) or isinstance(from_list, Mapping):
        raise DiversegError(f"per-part sources and lists are for IP only, not {sub.name}")
    src = open_subset_source(sub, source, **(source_options or {}))
    if from_list is not None:
        unused = [name for name, value in (("scorers", scorers), ("scorer_options", scorer_options),
                                           ("select_options", select_options), *score_options.items()) if value]
        if unused:
            raise DiversegError(f"a list build scores nothing: {', '.join(unused)} cannot be used with from_list")
        return _build_from_list(sub, out, from_list, src, publish_options)
    names = list(scorers or sub.scorers)
    options = {k: dict(v) for k, v in sub.scorer_options.items() if k in names}
    for name, extra in (scorer_options or {}).items():
        options.setdefault(name, {}).update(extra)
    chosen = {**paper_select_options(sub, names), **(select_options or {})}
    result = curate(src, out, sub.name, score_options={"scorers": names, "scorer_options": options, **score_options},
                    select_options=chosen, **publish_options)
    return BuildResult(sub.name, out, result.published.num_examples)
