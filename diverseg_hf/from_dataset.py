"""Publish a scored ``datasets.Dataset`` / ``IterableDataset`` as a DiverSeg config, without scoring again.

The dataset needs an image column and the score columns the scorers' map functions add (``blockiness``,
``sam_masks``, ``det_objects``, each scorer's columns as in the score table, with a ``<scorer>_error`` column
holding a reason or an empty string / None). :func:`publish_dataset` turns it into what the command line's
phases hand each other, under ``DATASET_DIR/.diverseg/NAME/`` as ``curate`` does: a score table (every row of
the dataset; the base columns ``sha256``, ``bytes``, ``width``, ``height``, ``format`` and decode errors
exactly as ``diverseg score`` records them, the image decoded once on the CPU for that) and a selection,
then runs the publish phase itself (:func:`~diverseg_hf.publish.from_selection.publish`). The shards hold the
rows' original bytes, never re-encoded, so for the same images, keys and rule the shards equal
``diverseg curate``'s (the ``origin`` column aside: it says ``dataset#row=N``).

Keys are those a Parquet source gets: the ``key`` (or ``__key__``, or ``key_column``) cell, made a relative
path key, a repeated key becoming ``key%23n``; without a key column, the row number (``00000012``).
``keep`` chooses the rows: None (all), a boolean column, a callable ``row -> bool`` (the row as the dataset
gives it, the image cell as ``{"bytes", "path"}``), or a mapping of :func:`diverseg_hf.select.select`'s rules
(``{"max_blockiness": 5.0, "thetas": {"sam_masks": 100}}``), applied by the same code as ``diverseg select``.
Rows with an error (an undecodable image, an undefined score) are never published, as with ``select``.

Example:
    >>> publish_dataset([], "/tmp/ds", name="my-subset")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: config name 'my-subset' must be letters, digits or _ (and not 'scores')
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import DiversegError, ParameterError
from .hub.push import push
from .keys import KeyCounter, path_key
from .publish.from_selection import PublishResult, check_publish_arguments, publish
from .scoring import get_scorer_class, scorer_names
from .scoring.run import prepare_records
from .select import select
from .sources import Record, Source, Unit
from .sources.base import IMAGE_COLUMN_NAMES, KEY_COLUMN_NAMES, cell_record
from .sources.hub import undecoded
from .storage import DatasetDir, ScoreTable, load_selection, table_schema, write_selection
from .version import __version__

#: Rows read from the dataset at a time.
BATCH_ROWS = 256
UNIT_ID = "rows-00000"

Keep = str | Callable[[dict[str, Any]], bool] | Mapping[str, Any] | None


@dataclass(frozen=True)
class DatasetUnit(Unit):
    """All rows of a dataset as one unit: records with the original bytes and Parquet-source keys."""

    rows: Any = field(default=None, compare=False, repr=False)
    image_column: str = "image"
    key_column: str | None = None

    def _iter(self, keys: Any) -> Iterator[Record]:
        columns = [self.image_column] + ([self.key_column] if self.key_column else [])
        for record, _ in self.records_of(_rows(self.rows.select_columns(columns))):
            yield record

    def records_of(self, rows: Iterable[dict[str, Any]]) -> Iterator[tuple[Record, dict[str, Any]]]:
        """(record, row) for each of the dataset's ``rows``, keyed as a Parquet source keys them."""
        unique = KeyCounter()
        for i, row in enumerate(rows):
            raw = row[self.key_column] if self.key_column else None
            key = unique(path_key(str(raw) if raw is not None else f"{i:08d}"))
            yield _record(key, row[self.image_column], i), row


class DatasetSource(Source):
    """A ``datasets`` dataset as a source of original image bytes (one unit; read again when published)."""

    kind = "dataset"

    def __init__(self, ds: Any, image_column: str, key_column: str | None):
        info = getattr(ds, "info", None)
        spec = getattr(info, "dataset_name", None) or getattr(info, "builder_name", None) or "dataset"
        self.unit = DatasetUnit(UNIT_ID, getattr(ds, "num_rows", None), rows=ds, image_column=image_column,
                                key_column=key_column)
        super().__init__(spec, [self.unit], {"image_column": image_column, "key_column": key_column})


def _rows(ds: Any) -> Iterator[dict[str, Any]]:
    """The rows of a Dataset or IterableDataset, read in batches."""
    for batch in ds.iter(batch_size=BATCH_ROWS):
        names = list(batch)
        yield from (dict(zip(names, values)) for values in zip(*(batch[n] for n in names)))


def _record(key: str, cell: Any, row: int) -> Record:
    """The record of an image cell (bytes or ``{bytes, path}``); a decoded image without its bytes is refused."""
    if hasattr(cell, "getexif"):  # a PIL image: its original bytes are gone
        raise DiversegError(f"row {row}: the image column holds decoded images, not their original bytes; "
                            "cast it first: ds = ds.cast_column(COLUMN, datasets.Image(decode=False))")
    return cell_record(key, cell, None, f"dataset#row={row}")  # a path-only cell is refused: bytes leave here


def _columns(ds: Any, image_column: str | None, key_column: str | None) -> tuple[Any, str, str | None]:
    """``ds`` with its image column giving bytes, the image and key column names: the image column is
    found and cast by the one column check (:func:`~diverseg_hf.sources.hub.undecoded`)."""
    names = list(ds.features) if ds.features is not None else list(next(iter(ds.take(1)), {}))
    if key_column is not None and key_column not in names:
        raise ParameterError("key_column", f"{key_column!r} is not a column of the dataset ({', '.join(names)})")
    if ds.features is None and image_column is None:  # a stream of unknown features: the first row's names
        image_column = next((n for n in IMAGE_COLUMN_NAMES if n in names), None)
    if ds.features is None and image_column not in names:
        raise DiversegError(f"the dataset has no image column among {', '.join(names)}; pass image_column=")
    ds, image_column = undecoded(ds, image_column, "the dataset")
    return ds, image_column, key_column or next((c for c in KEY_COLUMN_NAMES if c in names), None)


def _scorers(names: Sequence[str]) -> list[type]:
    """The registered scorers whose columns the dataset has, in the order their first column comes."""
    classes = [get_scorer_class(n) for n in scorer_names()]
    found = [s for s in classes if s.columns and all(c in names for c in s.columns)]
    if not found:
        known = ", ".join(c for s in classes for c in s.columns)
        raise DiversegError(f"the dataset has no score columns ({known}); score it first, e.g. "
                            "ds.map(scorer_map('blockiness'), batched=True)")
    return sorted(found, key=lambda s: names.index(next(iter(s.columns))))


def _score_table(src: DatasetSource, ds: Any, scorers: list[type], keep: Callable[[dict], bool] | None
                 ) -> tuple[pa.Table, set[str]]:
    """The score table of every row (base columns as ``diverseg score`` fills them, the dataset's scores,
    errors), built batch by batch, and the keys ``keep`` chooses."""
    schema = table_schema(scorers)
    parts: list[pa.Table] = []
    kept: set[str] = set()
    batch: list[tuple[Record, dict[str, Any]]] = []

    def flush() -> None:
        base, _ = prepare_records([r for r, _ in batch], [])
        for out, (_, row) in zip(base, batch):
            reasons = [out["error"]]  # the decode's, then each scorer's own
            for scorer in scorers:
                reason = None if out["error"] else row.get(f"{scorer.name}_error") or None
                for col in scorer.columns:  # a row the map could not score holds nulls, as in the score table
                    out[col] = None if out["error"] or reason else row[col]
                reasons.append(reason)
            out["error"] = "; ".join(filter(None, reasons)) or None
            if not out["error"] and (keep is None or keep(row)):  # a row with an error is never published
                kept.add(out["key"])
        parts.append(pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in base], schema=schema))
        batch.clear()

    for pair in src.unit.records_of(_rows(ds)):  # the dataset read once: bytes and scores together
        batch.append(pair)
        if len(batch) == BATCH_ROWS:
            flush()
    flush()
    return pa.concat_tables(parts), kept


def _write_scores(root: Path, src: DatasetSource, scorers: list[type], table: pa.Table) -> None:
    """``table`` as a score table folder, with the header ``diverseg score`` writes."""
    header = {"source": src.describe(), "limit": None, "columns": table.schema.names, "scorers": [
        {"name": s.name, "options": {}, "settings": {"scored_by": "datasets map"}, "columns": dict(s.columns),
         "lower_is_better": sorted(s.lower_is_better)} for s in scorers]}
    store = ScoreTable.create(root, header, [{"id": UNIT_ID, "size": table.num_rows, "max_records": None}],
                              overwrite=True)
    store.commit(UNIT_ID, table)


def _narrow(selection: Path, kept: set[str], rule: str) -> None:
    """Keep in the selection only the rows of ``kept`` and record the rule that chose them."""
    table, info = load_selection(selection)
    mask = pc.is_in(table.column("key"), value_set=pa.array(sorted(kept), pa.string()))
    narrowed = table.filter(mask)
    counts = info["counts"]
    counts["dropped"]["keep"] = table.num_rows - narrowed.num_rows
    counts["kept"] = narrowed.num_rows
    counts["kept_fraction"] = narrowed.num_rows / counts["rows"] if counts["rows"] else 0.0
    info["rules"]["filter"] = rule
    write_selection(selection, narrowed, info)


def _keep_rule(keep: Keep, names: Sequence[str]) -> tuple[Callable[[dict], bool] | None, dict[str, Any], str]:
    """(row test or None, select() rules, words for the card) of ``keep``."""
    if keep is None:
        return None, {}, "every row without an error"
    if isinstance(keep, Mapping):
        return None, dict(keep), "the rules below"
    if isinstance(keep, str):
        if keep not in names:
            raise ParameterError("keep", f"{keep!r} is not a column of the dataset ({', '.join(names)})")
        return (lambda row: bool(row[keep])), {}, f"the column `{keep}`"
    if callable(keep):
        return keep, {}, f"the function `{getattr(keep, '__qualname__', type(keep).__name__)}`"
    raise ParameterError("keep", "must be None, a boolean column name, a callable row -> bool or select() rules")


def publish_dataset(
    ds: Any,
    out: str | os.PathLike,
    *,
    name: str,
    keep: Keep = None,
    format: str | Sequence[str] = "parquet,webdataset",
    license: str | None = None,
    gated: bool | None = None,
    push_to_hub: str | None = None,
    private: bool = False,
    image_column: str | None = None,
    key_column: str | None = None,
    shard_size: str | int = "500MB",
    description: str | None = None,
    progress: bool = True,
) -> PublishResult:
    """Publish the rows of the scored dataset ``ds`` that ``keep`` chooses as config ``name`` of ``out``.

    See the module docstring for what ``ds`` and ``keep`` may be. ``format``, ``license``, ``gated``,
    ``shard_size`` and ``description`` are ``diverseg publish``'s; the ``scores`` config holds every row of
    ``ds``, and the card the rule, statistics, figures and, with blockiness, the source's quality estimate.
    ``push_to_hub="org/name"`` then pushes the folder as ``diverseg push --prune`` does
    (:func:`diverseg_hf.hub.push.push`; ``private`` when it creates the repo).

    Example:
        >>> import datasets  # doctest: +SKIP
        >>> ds = datasets.load_dataset("parquet", data_files="images.parquet", split="train")  # doctest: +SKIP
        >>> ds = ds.cast_column("image", datasets.Image(decode=False))  # doctest: +SKIP
        >>> ds = ds.map(diverseg_hf.scorer_map("blockiness"), batched=True)  # doctest: +SKIP
        >>> publish_dataset(ds, "mysubset", name="mine", keep={"max_blockiness": 5.0}).num_examples  # doctest: +SKIP
        812
    """
    formats = [f.strip() for f in format.split(",")] if isinstance(format, str) else list(format)
    check_publish_arguments(name, formats, shard_size, out)
    ds, image_column, key_column = _columns(ds, image_column, key_column)
    names = list(ds.features) if ds.features is not None else list(next(iter(ds.take(1)), {}))
    test, rules, rule = _keep_rule(keep, names)
    scorers = _scorers(names)
    src = DatasetSource(ds, image_column, key_column)
    table, kept = _score_table(src, ds, scorers, test)
    if not table.num_rows:
        raise DiversegError("the dataset has no rows: nothing to publish")
    work = DatasetDir(out).work_dir(name)
    _write_scores(work / "scores", src, scorers, table)
    select(work / "scores", work / "selection", estimate=True, **rules)  # as diverseg select applies them
    if test is not None:
        _narrow(work / "selection", kept, rule)
    n = load_selection(work / "selection")[0].num_rows
    description = description or (f"{n:,} images selected from a `datasets` dataset by {rule} "
                                  f"(diverseg_hf {__version__} publish_dataset).")
    result = publish(work / "selection", out, name, source=src, formats=formats, shard_size=shard_size,
                     license=license, gated=gated, description=description, progress=progress)
    if push_to_hub:
        push(out, push_to_hub, private=private, prune=True)
    return result
