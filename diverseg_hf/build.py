"""``build``: make the DiverSeg subsets I (ImageNet-1k), P (PASS) and IP (both) as a dataset folder.

Two ways to make a subset:

- **curate** (default): score the source with the paper's scorers, select with its thresholds
  (SAM masks >= 100, dataset quality gate) and publish, all through :func:`diverseg_hf.curate.curate`;
- **from a list** (``from_list=``): rebuild the official subset exactly from the user's own copy of
  the source, without scoring (each listed image is decoded once, to report broken files). Each list
  line (``n01440764/n01440764_18.JPEG``, PASS ``0/0a0bf4db55141fcfff5da2c8655f93.jpg``) is matched
  to a source image by its file name without suffix (the ImageNet-on-the-Hub form
  ``<name>_<synset>.JPEG`` is understood too); the published key is the list path without suffix
  (dot-free, :mod:`diverseg_hf.keys`); bytes are copied untouched. Listed files that are not found,
  or found but unreadable, are reported in ``DATASET_DIR/.diverseg/<CONFIG>/from_list_report.json``
  (and logged), never silently dropped.

``IP`` is the union of ``I`` and ``P``: parts already in the folder are reused (no re-scoring), others
are built first; its rows are read back from the published ``I`` and ``P`` shards with keys
namespaced ``I/...`` and ``P/...``.

Example:
    >>> SUBSETS["I"].source, SUBSETS["P"].source
    ('ILSVRC/imagenet-1k', 'yukimasano/pass')
    >>> list_name("train/n01440764/n01440764_18.JPEG"), list_name("n01440764_18_n01440764.JPEG")
    ('n01440764_18', 'n01440764_18')
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from .curate import curate, work_dir
from .errors import DiversegError
from .files import write_json_atomic
from .keys import decode_key, encode_key
from .publish import REGISTRY, publish
from .score import BASE_SCHEMA, ScoreTable, prepare_records
from .scoring import get_scorer_class
from .select import select
from .sources import FolderUnit, Record, Source, Unit, open_source

logger = logging.getLogger(__name__)

#: SAM automatic mask generation as the paper ran it (segment-anything's generator defaults, ViT-H).
PAPER_SAM = {"model": "facebook/sam-vit-huge", "points_per_side": 32, "pred_iou_thresh": 0.88,
             "stability_score_thresh": 0.95, "stability_score_offset": 1.0, "box_nms_thresh": 0.7,
             "mask_threshold": 0.0}
#: Dataset quality gate: the paper kept ImageNet (95.5%) and PASS (99.8%) and dropped Places365 (75.0%).
PAPER_MIN_QUALITY = 0.9
REPORT = "from_list_report.json"
_IMAGENET_HUB_NAME = re.compile(r"^(n\d{8})_(\d+)_(n\d{8})$")


@dataclass(frozen=True)
class Subset:
    """One DiverSeg config: default source, the paper's scorers and thresholds (licence: cards.py presets)."""

    name: str
    title: str
    source: str | None
    split: str = "train"
    key_column: str | None = None
    parts: tuple[str, ...] = ()
    scorers: tuple[str, ...] = ("blockiness", "sam")
    scorer_options: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"sam": PAPER_SAM})
    thetas: Mapping[str, float] = field(default_factory=lambda: {"sam_masks": 100})
    min_quality: float | None = PAPER_MIN_QUALITY


#: The three configs. I: ImageNet-1k train (gated on the Hub: accept its terms, log in). P: PASS as hosted
#: by its authors (a loading-script repo: datasets >= 4 cannot run it, so pass ``source=`` a local PASS
#: tree or a Parquet/tar copy). IP: the union of I and P.
SUBSETS: dict[str, Subset] = {
    "I": Subset("I", "DiverSeg-I (ImageNet-1k)", "ILSVRC/imagenet-1k"),
    "P": Subset("P", "DiverSeg-P (PASS)", "yukimasano/pass", key_column="hash"),
    "IP": Subset("IP", "DiverSeg-IP (ImageNet-1k + PASS)", None, parts=("I", "P")),
}


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


def subset(name: str) -> Subset:
    """The :class:`Subset` called ``name`` (``I``, ``P``, ``IP``; a ``DiverSeg-`` prefix is allowed)."""
    try:
        return SUBSETS[name.removeprefix("DiverSeg-")]
    except KeyError:
        raise DiversegError(f"unknown config {name!r}; choose from {', '.join(SUBSETS)}") from None


# ----------------------------------------------------------------------------- lists


def read_list(path: str | os.PathLike) -> list[str]:
    """Relative image paths of an official list file, one per line (blank lines and ``#`` comments skipped).

    Example:
        >>> read_list("/no/such/list.txt")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no such list file: /no/such/list.txt
    """
    path = Path(path)
    if not path.is_file():
        raise DiversegError(f"no such list file: {path}")
    entries: list[str] = []
    seen: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        rel = line.strip().replace("\\", "/")
        if not rel or rel.startswith("#"):
            continue
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise DiversegError(f"{path}:{number}: list paths must be relative, got {rel!r}")
        name = list_name(rel)
        if name in seen:
            raise DiversegError(f"{path}:{number}: {rel!r} has the same file name as {seen[name]!r}")
        seen[name] = rel
        entries.append(rel)
    if not entries:
        raise DiversegError(f"{path} lists no images")
    return entries


def list_name(path: str) -> str:
    """The name a list entry and a source image are matched by: the file name without suffix.

    ImageNet on the Hub names train images ``<name>_<synset>.JPEG``; the trailing synset is dropped.
    """
    stem = PurePosixPath(path).name.split(".", 1)[0]
    match = _IMAGENET_HUB_NAME.match(stem)
    if match and match.group(1) == match.group(3):
        return f"{match.group(1)}_{match.group(2)}"
    return stem


def list_key(path: str) -> str:
    """Published key of a list entry: its path without suffix, dot-free (``n01440764/n01440764_18``)."""
    pure = PurePosixPath(path)
    return encode_key(str(pure.with_name(pure.name.split(".", 1)[0])))


def _record_name(record: Record) -> str:
    """A source record's file name for matching: its image path when the source gives one, else its key."""
    path = record.extra.get("path") if record.extra else None
    return list_name(path or decode_key(record.key))


@dataclass(frozen=True)
class ListUnit(Unit):
    """A unit of another source, restricted to listed images and re-keyed by the list."""

    inner: Unit | None = None
    mapping: tuple[tuple[str, str], ...] = ()  # (source key, list key), in source order

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        to_list = dict(self.mapping)
        for record in self.inner.records(set(to_list)):  # type: ignore[union-attr]
            yield Record(to_list[record.key], record.data, record.origin, record.extra)


class ListSource(Source):
    """The listed images of a source, keyed by the list (what :func:`build` publishes with ``from_list``)."""

    kind = "list"


def _match_list(entries: list[str], src: Source, progress: bool) -> tuple[list[ListUnit], list[list[dict]], dict]:
    """One pass over ``src``: the listed records per unit (and their score-table rows), plus what is missing."""
    wanted = {list_name(e): e for e in entries}
    found: dict[str, str] = {}
    duplicates: list[dict[str, str]] = []
    units: list[ListUnit] = []
    unit_rows: list[list[dict]] = []
    bar = tqdm(total=len(entries), unit="img", desc="match list", disable=not progress, dynamic_ncols=True)
    for unit in src.units():
        keys = None
        if isinstance(unit, FolderUnit):  # names are known without reading: read only listed files
            keys = {k for f, k in zip(unit.files, unit.keys) if list_name(f) in wanted}
            if not keys:
                continue
        mapping: list[tuple[str, str]] = []
        rows: list[dict] = []
        for record in unit.records(keys):
            entry = wanted.get(_record_name(record))
            if entry is None:
                continue
            if entry in found:
                duplicates.append({"path": entry, "origin": record.origin, "used": found[entry]})
                continue
            found[entry] = record.origin
            mapping.append((record.key, list_key(entry)))
            rows.append(_row(list_key(entry), entry, record))
            bar.update()
        if mapping:
            units.append(ListUnit(f"list-{unit.id}", len(mapping), inner=unit, mapping=tuple(mapping)))
            unit_rows.append(rows)
    bar.close()
    report = {"listed": len(entries), "found": len(found),
              "missing": [e for e in entries if e not in found], "duplicates": duplicates}
    return units, unit_rows, report


def _row(key: str, entry: str, record: Record) -> dict[str, Any]:
    """Score-table row of a listed image: identity, size and decode check as in scoring, no scores."""
    (row,), _ = prepare_records([dataclasses.replace(record, key=key)], [])
    return {**row, "list_path": entry}


LIST_SCHEMA = pa.schema([*BASE_SCHEMA, pa.field("list_path", pa.string()), pa.field("error", pa.string())])


def _build_from_list(sub: Subset, out: Path, list_path: str | os.PathLike, src: Source,
                     publish_options: dict[str, Any]) -> BuildResult:
    entries = read_list(list_path)
    progress = publish_options.get("progress", True)
    units, unit_rows, report = _match_list(entries, src, progress)
    work = work_dir(out, sub.name)
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


# ----------------------------------------------------------------------------- the union IP


@dataclass(frozen=True)
class PublishedUnit(Unit):
    """Rows of one published Parquet shard, keys prefixed with their config (``I/...``)."""

    path: str = ""
    prefix: str = ""

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        pf = pq.ParquetFile(self.path)
        row = 0
        for batch in pf.iter_batches(batch_size=64, columns=["key", "image"]):
            for key, image in zip(batch.column("key").to_pylist(), batch.column("image").to_pylist()):
                yield Record(f"{self.prefix}{key}", image["bytes"], f"{Path(self.path).name}#row={row}")
                row += 1


class PublishedSource(Source):
    """Images of configs already published in a dataset folder."""

    kind = "published"


def _shards(out: Path, name: str) -> list[Path]:
    files = sorted((out / "data" / name).glob("train-*.parquet"))
    if not files:
        raise DiversegError(f"{out} has no Parquet shards of config {name!r} (build it with --format parquet)")
    return files


def _build_union(sub: Subset, out: Path, publish_options: dict[str, Any]) -> BuildResult:
    """IP from the published shards of its parts: no image is scored or matched again."""
    units: list[Unit] = []
    tables: list[pa.Table] = []
    for part in sub.parts:
        for i, path in enumerate(_shards(out, part)):
            table = pq.read_table(path).drop_columns(["image"])
            keys = pa.array([f"{part}/{k}" for k in table.column("key").to_pylist()], pa.string())
            table = table.set_column(table.schema.get_field_index("key"), "key", keys)
            tables.append(table.append_column("error", pa.nulls(table.num_rows, pa.string())))
            units.append(PublishedUnit(f"{part}-{i:05d}", table.num_rows, path=str(path), prefix=f"{part}/"))
    tables = [t.replace_schema_metadata(None) for t in tables]
    union = pa.concat_tables(tables, promote_options="permissive")
    order = [c for c in union.column_names if c != "error"] + ["error"]
    union = union.select(order)
    work = work_dir(out, sub.name)
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


# ----------------------------------------------------------------------------- build


def built_configs(out: str | os.PathLike) -> list[str]:
    """Names of the configs already published in the dataset folder ``out``."""
    path = Path(out) / REGISTRY
    return [c["name"] for c in json.loads(path.read_text())["configs"]] if path.exists() else []


def open_subset_source(sub: Subset, source: str | Source | None = None, **source_options: Any) -> Source:
    """The source of ``sub``: ``source`` (folder, Parquet, tar, Hub id) or the subset's default Hub dataset."""
    if isinstance(source, Source):
        return source
    spec = source or sub.source
    if spec is None:
        raise DiversegError(f"config {sub.name} has no default source; pass one")
    options = {"split": sub.split, "key_column": sub.key_column} if spec == sub.source else {}
    options.update({k: v for k, v in source_options.items() if v is not None})
    return open_source(spec, **options)


def _per_part(value: Any, part: str) -> Any:
    return value.get(part) if isinstance(value, Mapping) else value


def paper_select_options(sub: Subset, scorers: list[str]) -> dict[str, Any]:
    """The paper's thresholds for the columns ``scorers`` produce (a theta on a missing column is dropped)."""
    columns = {c for name in scorers for c in get_scorer_class(name).columns}
    thetas = {c: t for c, t in sub.thetas.items() if c in columns}
    for column in set(sub.thetas) - set(thetas):
        logger.warning("%s: no scorer gives %s; its threshold (>= %g) is not applied", sub.name, column,
                       sub.thetas[column])
    return {"thetas": thetas, "min_quality": sub.min_quality if "blockiness" in scorers else None}


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
    sub = subset(config)
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


__all__ = ["SUBSETS", "BuildResult", "ListSource", "Subset", "build", "built_configs", "list_key", "list_name",
           "read_list", "subset"]

