"""Phase 3: selection -> dataset folder of original-byte shards, the score table, figures and a card.

What it writes into ``DATASET_DIR`` for config ``NAME`` (the layout is :class:`~diverseg_hf.storage.DatasetDir`'s):
Parquet shards (key, image as the ``datasets`` Image feature, scores), WebDataset tars
(``<key>.<ext>`` original bytes + ``<key>.json`` scores and format), the whole score table as split
``NAME`` of the ``scores`` config, histograms, the registry entry and the card (all configs).

Image bytes are copied untouched (sha256 checked against the score table); shards are cut by the
score table's byte counts before any image is read, and written deterministically (no timestamps,
fixed tar headers), so publishing the same selection again gives byte-identical files. Shard files
carry the config's *generation* (a digest of the selection, the score table and the shard plan) in
their names, are written atomically and several at a time (``workers``), and a re-run skips those
already written; the card and the registry switch to the new generation only when all its files
exist, and the old generation's files are deleted last. See :mod:`diverseg_hf.storage.dataset_dir`
for why every reader sees either the old config or the new one entirely. The score table is only ever read
one unit at a time (the ``scores`` config, the generation digest, the figures' columns), so memory does not
grow with it beyond the figures' 8 bytes a row per drawn column.

Example:
    >>> parse_size("500MB"), parse_size("2GiB"), parse_size(1024)
    (500000000, 2147483648, 1024)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from ..cards.entries import config_entry, config_figures, figure_columns, published_features
from ..cards.licenses import check_license
from ..cards.render import license_for, render_card
from ..errors import DiversegError, ParameterError, check_at_least
from ..files import check_output_dir, holds_lock
from ..hub.published import KIND as PUBLISHED
from ..hub.published import open_published
from ..sources import Source, Unit, reopen_source
from ..storage import DatasetDir, ParquetShardWriter, ScoreTable, load_selection
from ..storage.dataset_dir import REGISTRY
from ..storage.formats import SHARD_FORMATS
from .shard_copy import CopyContext, CopyTask, ShardJob, image_extension, plan_tasks, run_tasks, tar_image_extension

logger = logging.getLogger(__name__)

SCORES_SHARD_ROWS = 500_000
#: Bumped when the bytes written for the same selection change, so that a new generation is written.
LAYOUT_VERSION = 3  # 3: the score table is hashed unit by unit (not as one batch)
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)


def parse_size(size: str | int) -> int:
    """``"500MB"`` -> bytes (KB/MB/GB decimal, KiB/MiB/GiB binary), as ``push_to_hub`` reads it."""
    match = _SIZE.match(str(size))
    if not match:
        raise DiversegError(f"cannot read size {size!r}; use e.g. 500MB or 1GiB")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    if number == 0:
        raise ParameterError("shard_size", f"must be more than 0 bytes, got {size!r}")
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    return max(1, int(number * scale))


def plan_shards(sizes: Sequence[int], shard_size: int, units: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` row ranges of at most ``shard_size`` bytes (at least one row each).

    With ``units`` (the source unit of each row, in order), a shard also ends where a unit ends unless the
    whole next unit still fits in it, so that shards of different units can be written apart (a unit
    larger than a shard starts a shard and is cut by rows, as without ``units``).

    Example:
        >>> plan_shards([4, 4, 4, 9, 1], 8)
        [(0, 2), (2, 3), (3, 4), (4, 5)]
        >>> plan_shards([2, 2, 2, 2, 2, 9, 9, 1], 8, units=[0, 0, 1, 1, 1, 2, 2, 3])
        [(0, 2), (2, 5), (5, 6), (6, 7), (7, 8)]
    """
    shards: list[tuple[int, int]] = []
    start, total = 0, 0
    unit_bytes: dict[int, int] = {}
    for i, size in enumerate(sizes):
        if units is not None:
            unit_bytes[units[i]] = unit_bytes.get(units[i], 0) + size
    for i, size in enumerate(sizes):
        new_unit = units is not None and i > start and units[i] != units[i - 1]
        if (new_unit and total + unit_bytes[units[i]] > shard_size) or (i > start and total + size > shard_size):
            shards.append((start, i))
            start, total = i, 0
        total += size
    if len(sizes) > start:
        shards.append((start, len(sizes)))
    return shards


class _HashSink:
    """A write-only file that feeds what is written to a hash (for ``pa.PythonFile``)."""

    def __init__(self, digest: Any):
        self.digest = digest
        self.closed = False

    def write(self, data: Any) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def generation(table: pa.Table, scores: Iterable[pa.Table] | None, shards: Sequence[tuple[int, int]]) -> str:
    """The digest that names a config's files: the selected rows, the score table (its units, in order; one
    unit at a time is held) and the shard plan.

    Example:
        >>> t = pa.table({"key": ["a", "b"]})
        >>> generation(t, None, [(0, 2)]) == generation(t, None, [(0, 2)]) != generation(t, None, [(0, 1), (1, 2)])
        True
    """
    digest = hashlib.sha256(f"diverseg-publish-{LAYOUT_VERSION}:{json.dumps(list(shards))}".encode())
    for parts in ([table], scores):
        if parts is None:
            digest.update(b"none")
            continue
        writer = None
        for part in parts:  # one Arrow IPC stream of one record batch a part, hashed as it is serialised
            part = part.replace_schema_metadata(None).combine_chunks()
            if writer is None:
                writer = pa.ipc.new_stream(pa.PythonFile(_HashSink(digest), mode="w"), part.schema)
            writer.write_table(part)
        if writer is not None:
            writer.close()
    return digest.hexdigest()[:10]


@dataclass
class PublishResult:
    """Files written by :func:`publish` and the config's statistics."""

    out: Path
    name: str
    num_examples: int
    num_bytes: int
    files: list[Path] = field(default_factory=list)


def check_publish_arguments(name: str, formats: Sequence[str], shard_size: str | int,
                            out: str | os.PathLike, workers: int = 1,
                            license: str | None = None) -> tuple[list[str], int]:
    """Check what :func:`publish` is given before any work; returns (formats, shard size in bytes).

    Example:
        >>> check_publish_arguments("my-subset", ["parquet"], "500MB", "/tmp/ds")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: config name 'my-subset' must be letters, digits or _ (and not 'scores')
    """
    formats = list(dict.fromkeys(formats))
    if not formats or any(f not in SHARD_FORMATS for f in formats):
        raise ParameterError("formats", f"must be a comma-separated subset of {', '.join(SHARD_FORMATS)}")
    if not _NAME.match(name) or name == "scores":
        raise DiversegError(f"config name {name!r} must be letters, digits or _ (and not 'scores')")
    check_at_least("workers", workers)
    check_output_dir("out", out)
    check_license(license)
    return formats, parse_size(shard_size)


def _selection_source(source: str | Source | None, info: dict[str, Any]) -> Source:
    """The source to copy bytes from: ``source``, or the one the selection recorded."""
    if isinstance(source, Source):
        return source
    if not source and info["source"].get("kind") == PUBLISHED:  # a re-threshold of a published config
        return open_published(info["source"])
    try:
        # a given source replaces the recorded path; its recorded options (split, columns) still apply
        return reopen_source({**info["source"], "spec": str(source)} if source else info["source"])
    except DiversegError as exc:
        raise DiversegError(f"cannot open the selection's source: {exc} (pass --source)") from None


def _unit_of_rows(info: dict[str, Any], table: pa.Table, units: list[Unit]) -> list[int] | None:
    """Index in ``units`` of the unit each selected row comes from, from the score table's unit files
    (None when that cannot be told: then one task reads every unit)."""
    position = {u.id: i for i, u in enumerate(units)}
    try:
        store = ScoreTable.open(info["scores_dir"])
        wanted = table.column("key").combine_chunks()
        unit_of: dict[str, int] = {}
        for unit, part in zip(store.units, store.iter_units(["key"])):  # one unit's keys at a time
            index = position[unit["id"]]
            keys = part.column("key")
            unit_of.update((k, index) for k in keys.filter(pc.is_in(keys, value_set=wanted)).to_pylist())
        return [unit_of[k] for k in wanted.to_pylist()]
    except (DiversegError, KeyError, OSError, TypeError, ValueError):
        return None


def _shard_path(dataset: DatasetDir, fmt: str, name: str, index: int, count: int, gen: str) -> Path:
    """Where shard ``index`` of ``count`` of config ``name`` in format ``fmt`` goes."""
    shard = SHARD_FORMATS[fmt]
    return shard.config_dir(dataset.root, name) / shard.shard_name(index, count, generation=gen)


def _copy_tasks(dataset: DatasetDir, name: str, gen: str, formats: list[str], units: list[Unit], table: pa.Table,
                unit_of: list[int] | None, shards: list[tuple[int, int]]) -> list[CopyTask]:
    """The shards whose files are missing, grouped into tasks that share no source unit."""
    jobs: dict[int, ShardJob] = {}
    for i, (a, b) in enumerate(shards):
        paths = {fmt: _shard_path(dataset, fmt, name, i, len(shards), gen) for fmt in formats}
        missing = {fmt: str(path) for fmt, path in paths.items() if not path.exists()}
        if missing:
            jobs[i] = ShardJob(i, table.slice(a, b - a), missing)
    if unit_of is None:
        return [CopyTask(tuple(units), tuple(jobs.values()))] if jobs else []
    groups = plan_tasks([(i, unit_of[shards[i][0]], unit_of[shards[i][1] - 1]) for i in jobs])
    return [CopyTask(tuple(units[unit_of[shards[g[0]][0]]: unit_of[shards[g[-1]][1] - 1] + 1]),
                     tuple(jobs[i] for i in g)) for g in groups]


def _figure_data(store: ScoreTable | None, table: pa.Table, info: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The columns the card's figures draw over the whole score table (float64, read unit by unit: 8 bytes a
    row each) and whether each row was kept; without a score table, those of the selected rows."""
    if store is None:
        return figure_columns(table, info), np.ones(table.num_rows, dtype=bool)
    names = [c for c in figure_columns(store.schema().empty_table(), info)]
    total = sum(store.counts[unit["id"]]["rows"] for unit in store.units)
    columns = {c: np.empty(total, dtype=np.float64) for c in names}
    kept = np.empty(total, dtype=bool)
    wanted = table.column("key").combine_chunks()
    start = 0
    for part in store.iter_units(["key", *names]):
        stop = start + part.num_rows
        kept[start:stop] = pc.is_in(part.column("key"), value_set=wanted).to_numpy(zero_copy_only=False)
        for c, values in figure_columns(part, info).items():
            columns[c][start:stop] = values
        start = stop
    return columns, kept


def _shard_tables(parts: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The rows of ``parts`` cut into tables of ``rows`` rows (the last may be shorter; none when there are
    no rows); at most one output table and one part are held at a time."""
    pending: list[pa.Table] = []
    held = 0
    for part in parts:
        pending.append(part)
        held += part.num_rows
        while held >= rows:
            joined = pa.concat_tables(pending)
            yield joined.slice(0, rows)
            pending, held = [joined.slice(rows)], held - rows
    if held:
        yield pa.concat_tables(pending)


def _ipc_nbytes(part: pa.Table) -> int:
    """The Arrow size of ``part`` once through Arrow IPC (which drops the all-valid null bitmaps a Parquet read
    may give): the size the split's ``num_bytes`` counted when it was taken from the cached whole table."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, part.schema) as writer:
        writer.write_table(part)
    return pa.ipc.open_stream(sink.getvalue()).read_all().nbytes


def _write_scores(store: ScoreTable, dataset: DatasetDir, name: str, gen: str) -> dict[str, Any]:
    """The whole score table as split ``name`` of the ``scores`` config, written shard by shard from the
    table's units (at most one shard's rows held)."""
    features = published_features(store.schema(), with_image=False)
    schema = features.arrow_schema
    total = sum(store.counts[unit["id"]]["rows"] for unit in store.units)
    count = max(1, -(-total // SCORES_SHARD_ROWS))
    unit_bytes: list[int] = []  # each unit's Arrow size, as the split's num_bytes has always counted it

    def parts() -> Iterator[pa.Table]:
        for part in store.iter_units(list(features)):
            part = part.select(list(features)).cast(schema).replace_schema_metadata(schema.metadata)
            unit_bytes.append(_ipc_nbytes(part))
            yield part

    size = 0
    for n, rows in enumerate(_shard_tables(parts(), SCORES_SHARD_ROWS)):
        path = dataset.scores_dir(name) / DatasetDir.parquet_shard_name(n, count, generation=gen)
        if not path.exists():
            with ParquetShardWriter(path, schema) as writer:
                writer.write_table(rows)
        size += path.stat().st_size
    return {
        "split": name,
        "path": DatasetDir.scores_pattern(name, generation=gen),
        "features": features._to_yaml_list(),
        "split_info": {"name": name, "num_bytes": sum(unit_bytes), "num_examples": total},
        "download_size": size,
    }


@holds_lock("out")
def publish(
    selection: str | os.PathLike,
    out: str | os.PathLike,
    name: str,
    source: str | Source | None = None,
    formats: Sequence[str] = ("parquet",),
    shard_size: str | int = "500MB",
    license: str | None = None,
    gated: bool | None = None,
    include_scores: bool = True,
    description: str | None = None,
    progress: bool = True,
    repo: str | None = None,
    workers: int = 1,
) -> PublishResult:
    """Publish the images of a selection as config ``name`` of the dataset folder ``out``.

    ``source`` defaults to the one recorded in the selection. Other configs already in ``out`` are
    kept (the card is re-rendered for all of them; ``repo`` is the Hub id its loading examples name,
    default the folder's name). ``workers`` processes write shards at once. A publish that was
    killed resumes: the shards it finished are kept. Returns the files written.

    Example:
        >>> publish("/no/sel", "/tmp/ds", "mine")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/sel is not a complete selection (no selection.json); run diverseg select
    """
    formats, limit = check_publish_arguments(name, formats, shard_size, out, workers, license)
    table, info = load_selection(selection)
    if table.num_rows == 0:
        raise DiversegError("the selection is empty: nothing to publish")
    if len(set(table.column("key").to_pylist())) != table.num_rows:
        raise DiversegError("the selection has duplicate keys; the source's keys must be unique")
    src = _selection_source(source, info)
    if src.kind != "published":  # build IP publishes from the configs of its own output folder
        check_output_dir("out", out, {"source": src.spec})
    store = ScoreTable.open(info["scores_dir"]) if include_scores else None
    if store is not None:
        store.schema()  # checks that the table is complete before anything is written
    dataset = DatasetDir(out)
    features = published_features(table.schema, with_image=True)
    units = src.units()
    unit_of = _unit_of_rows(info, table, units)
    shards = plan_shards(table.column("bytes").to_pylist(), limit, unit_of)
    gen = generation(table, store.iter_units() if store is not None else None, shards)
    dataset.begin_publish(name, gen)

    score_cols = [c for c in features if c not in ("key", "image")]
    formats_column = table.column("format").to_pylist()
    rescore = f"diverseg score {shlex.quote(src.spec)} --out {shlex.quote(str(info['scores_dir']))}"
    context = CopyContext(features.arrow_schema, tuple(score_cols), tar_image_extension(formats_column), rescore)
    tasks = _copy_tasks(dataset, name, gen, formats, units, table, unit_of, shards)
    done = table.num_rows - sum(t.num_rows for t in tasks)
    with tqdm(total=table.num_rows, initial=done, unit="img", desc="publish", disable=not progress,
              dynamic_ncols=True) as bar:
        run_tasks(tasks, context, workers, bar.update)
    files = [_shard_path(dataset, fmt, name, i, len(shards), gen) for fmt in formats for i in range(len(shards))]
    num_bytes = sum(p.stat().st_size for p in files if p.suffix == ".parquet") or \
        sum(p.stat().st_size for p in files)

    scores_entry = _write_scores(store, dataset, name, gen) if store is not None else None
    extensions = {image_extension(f) for f in formats_column}
    entry = config_entry(name, info, table, features, formats, extensions, score_cols, num_bytes,
                         license_for(name, license, gated), description, scores_entry,
                         generation=gen, tar_extension=context.tar_extension)
    entry["plots"] = config_figures(dataset, name, *_figure_data(store, table, info), info)
    render_card(dataset.root, dataset.register(entry), repo=repo)
    dataset.finish_publish(name)
    logger.info("publish: %d images in %d shards -> %s", table.num_rows, len(shards), out)
    return PublishResult(out, name, table.num_rows, num_bytes, files)


def rerender_card(dataset_dir: str | os.PathLike, repo: str | None = None) -> Path:
    """Render the card of ``dataset_dir`` again from its config registry, e.g. with the Hub ``repo`` id
    its loading examples should name before a push.

    Example:
        >>> rerender_card("/no/such/dir")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/such/dir has no published configs (no .diverseg/configs.json)
    """
    dataset = DatasetDir(dataset_dir)
    configs = dataset.configs()
    if not configs:
        raise DiversegError(f"{dataset_dir} has no published configs (no {REGISTRY})")
    return render_card(dataset.root, configs, repo=repo)
