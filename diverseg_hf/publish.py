"""Phase 3: selection -> dataset folder of original-byte shards, the score table, figures and a card.

What it writes into ``DATASET_DIR`` for config ``NAME`` (the layout is :class:`~diverseg_hf.storage.DatasetDir`'s):
Parquet shards (key, image as the ``datasets`` Image feature, scores), WebDataset tars
(``<key>.<ext>`` original bytes + ``<key>.json`` scores), the whole score table as split ``NAME`` of
the ``scores`` config, histograms, the registry entry and the card (all configs).

Image bytes are copied untouched (sha256 checked against the score table); shards are cut by the
score table's byte counts before any image is read, and written deterministically (no timestamps,
fixed tar headers), so publishing the same selection again gives byte-identical files. Shards are
staged in hidden folders and moved into place only when complete.

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
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from .card_entry import config_entry, config_figures, published_features
from .cards import license_for, render_card
from .errors import DiversegError, ParameterError
from .files import check_output_dir
from .sources import Record, Source, reopen_source
from .storage import DatasetDir, ParquetShardWriter, ScoreTable, TarShardWriter, load_selection
from .storage.dataset_dir import REGISTRY

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "webdataset")
ROW_GROUP_ROWS = 100
SCORES_SHARD_ROWS = 500_000
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_EXT = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "BMP": "bmp", "TIFF": "tiff",
        "GIF": "gif", "PPM": "ppm"}


def parse_size(size: str | int) -> int:
    """``"500MB"`` -> bytes (KB/MB/GB decimal, KiB/MiB/GiB binary), as ``push_to_hub`` reads it."""
    if isinstance(size, int):
        return size
    match = _SIZE.match(size)
    if not match:
        raise DiversegError(f"cannot read size {size!r}; use e.g. 500MB or 1GiB")
    number, unit = float(match.group(1)), (match.group(2) or "B").upper()
    scale = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
             "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    return max(1, int(number * scale))


def image_extension(fmt: str | None) -> str:
    """File extension for a PIL format name (``"JPEG"`` -> ``"jpg"``)."""
    return _EXT.get((fmt or "").upper(), (fmt or "bin").lower())


def plan_shards(sizes: Sequence[int], shard_size: int) -> list[tuple[int, int]]:
    """Consecutive ``[start, stop)`` row ranges of at most ``shard_size`` bytes (at least one row each).

    Example:
        >>> plan_shards([4, 4, 4, 9, 1], 8)
        [(0, 2), (2, 3), (3, 4), (4, 5)]
    """
    shards: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > shard_size:
            shards.append((start, i))
            start, total = i, 0
        total += size
    if len(sizes) > start:
        shards.append((start, len(sizes)))
    return shards


@dataclass
class PublishResult:
    """Files written by :func:`publish` and the config's statistics."""

    out: Path
    name: str
    num_examples: int
    num_bytes: int
    files: list[Path] = field(default_factory=list)


def _json_row(row: dict[str, Any]) -> bytes:
    clean = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()


def _records_in_order(source: Source, table: pa.Table) -> Iterator[tuple[int, Record]]:
    """Yield (row index, record) for every selected key, in table order, checking sha256."""
    keys = table.column("key").to_pylist()
    hashes = table.column("sha256").to_pylist()
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise DiversegError("the selection has duplicate keys; the source's keys must be unique")
    want = set(keys)
    expected = 0
    for unit in source.units():
        for record in unit.records(want):
            i = index[record.key]
            if i != expected:
                raise DiversegError(f"source changed since scoring: {record.key!r} is out of order; re-score it")
            if hashlib.sha256(record.data).hexdigest() != hashes[i]:
                raise DiversegError(f"source changed since scoring: {record.key!r} has other bytes; re-score it")
            yield i, record
            expected += 1
    if expected != len(keys):
        raise DiversegError(f"source changed since scoring: {keys[expected]!r} is missing from it")


def check_publish_arguments(name: str, formats: Sequence[str], shard_size: str | int,
                            out: str | os.PathLike) -> tuple[list[str], int]:
    """Check what :func:`publish` is given before any work; returns (formats, shard size in bytes).

    Example:
        >>> check_publish_arguments("my-subset", ["parquet"], "500MB", "/tmp/ds")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: config name 'my-subset' must be letters, digits or _ (and not 'scores')
    """
    formats = list(dict.fromkeys(formats))
    if not formats or any(f not in FORMATS for f in formats):
        raise ParameterError("formats", f"must be a comma-separated subset of {', '.join(FORMATS)}")
    if not _NAME.match(name) or name == "scores":
        raise DiversegError(f"config name {name!r} must be letters, digits or _ (and not 'scores')")
    check_output_dir("out", out)
    return formats, parse_size(shard_size)


def _selection_source(source: str | Source | None, info: dict[str, Any]) -> Source:
    """The source to copy bytes from: ``source``, or the one the selection recorded."""
    if isinstance(source, Source):
        return source
    try:
        # a given source replaces the recorded path; its recorded options (split, columns) still apply
        return reopen_source({**info["source"], "spec": str(source)} if source else info["source"])
    except DiversegError as exc:
        raise DiversegError(f"cannot open the selection's source: {exc} (pass --source)") from None


class _ShardSet:
    """The writers of one shard index, one per format, fed the same records."""

    def __init__(self, stages: dict[str, Path], shard: int, count: int, features: Any):
        self.writers: dict[str, Any] = {}
        if "parquet" in stages:
            self.writers["parquet"] = ParquetShardWriter(
                stages["parquet"] / DatasetDir.parquet_shard_name(shard, count), features.arrow_schema,
                row_group_size=ROW_GROUP_ROWS, uncompressed=("image",))
        if "webdataset" in stages:
            self.writers["webdataset"] = TarShardWriter(stages["webdataset"] / DatasetDir.tar_shard_name(shard))

    def write(self, row: dict[str, Any], data: bytes, ext: str, score_cols: list[str]) -> None:
        key = row["key"]
        scores = {c: row[c] for c in score_cols}
        if "parquet" in self.writers:
            self.writers["parquet"].write({"key": key, "image": {"bytes": data, "path": f"{key}.{ext}"}, **scores})
        if "webdataset" in self.writers:
            self.writers["webdataset"].write({"__key__": key, ext: data, "json": _json_row({"key": key, **scores})})

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _write_shards(stages: dict[str, Path], src: Source, table: pa.Table, features: Any,
                  shards: list[tuple[int, int]], progress: bool) -> set[str]:
    """Copy every selected record into its shard in each format; returns the image extensions seen."""
    score_cols = [c for c in features if c not in ("key", "image")]
    rows = table.to_pylist()
    shard_of = np.repeat(np.arange(len(shards)), [b - a for a, b in shards])
    extensions: set[str] = set()
    current: _ShardSet | None = None
    bar = tqdm(total=table.num_rows, unit="img", desc="publish", disable=not progress, dynamic_ncols=True)
    try:
        for i, record in _records_in_order(src, table):
            shard = int(shard_of[i])
            current = current or _ShardSet(stages, shard, len(shards), features)
            ext = image_extension(rows[i]["format"])
            extensions.add(ext)
            current.write(rows[i], record.data, ext, score_cols)
            if i + 1 == shards[shard][1]:
                current.close()
                current = None
            bar.update()
    finally:
        bar.close()
        if current is not None:
            current.close()
    return extensions


def _write_scores(table: pa.Table, dataset: DatasetDir, name: str) -> dict[str, Any]:
    """The whole score table as split ``name`` of the ``scores`` config."""
    features = published_features(table.schema, with_image=False)
    table = table.select(list(features)).cast(features.arrow_schema)
    final = dataset.scores_dir(name)
    stage = dataset.stage(final)
    shards = [(i, min(i + SCORES_SHARD_ROWS, table.num_rows)) for i in range(0, max(table.num_rows, 1),
                                                                             SCORES_SHARD_ROWS)]
    for n, (a, b) in enumerate(shards):
        with ParquetShardWriter(stage / DatasetDir.parquet_shard_name(n, len(shards)), table.schema) as writer:
            writer.write_table(table.slice(a, b - a))
    dataset.swap_in(stage, final)
    size = sum(p.stat().st_size for p in final.glob("*.parquet"))
    return {
        "split": name,
        "path": DatasetDir.scores_pattern(name),
        "features": features._to_yaml_list(),
        "split_info": {"name": name, "num_bytes": int(table.nbytes), "num_examples": table.num_rows},
        "download_size": size,
    }


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
) -> PublishResult:
    """Publish the images of a selection as config ``name`` of the dataset folder ``out``.

    ``source`` defaults to the one recorded in the selection. Other configs already in ``out`` are
    kept (the card is re-rendered for all of them; ``repo`` is the Hub id its loading examples name,
    default the folder path). Returns the files written.

    Example:
        >>> publish("/no/sel", "/tmp/ds", "mine")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: /no/sel is not a complete selection (no selection.json); run diverseg select
    """
    formats, limit = check_publish_arguments(name, formats, shard_size, out)
    table, info = load_selection(selection)
    if table.num_rows == 0:
        raise DiversegError("the selection is empty: nothing to publish")
    src = _selection_source(source, info)
    if include_scores:  # read (and check) before anything is written
        scores_table = ScoreTable.open(info["scores_dir"]).read()
    else:
        scores_table = table.append_column("error", pa.nulls(table.num_rows, pa.string()))
    dataset = DatasetDir(out)
    dataset.root.mkdir(parents=True, exist_ok=True)

    features = published_features(table.schema, with_image=True)
    shards = plan_shards(table.column("bytes").to_pylist(), limit)
    finals = {fmt: dataset.parquet_dir(name) if fmt == "parquet" else dataset.tar_dir(name) for fmt in formats}
    stages = {fmt: dataset.stage(final) for fmt, final in finals.items()}
    try:
        extensions = _write_shards(stages, src, table, features, shards, progress)
    except BaseException:
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        raise
    files: list[Path] = []
    for fmt, stage in stages.items():
        dataset.swap_in(stage, finals[fmt])
        files.extend(sorted(finals[fmt].iterdir()))
    num_bytes = sum(p.stat().st_size for p in files if p.suffix == ".parquet") or \
        sum(p.stat().st_size for p in files)

    scores_entry = _write_scores(scores_table, dataset, name) if include_scores else None
    score_cols = [c for c in features if c not in ("key", "image")]
    entry = config_entry(name, info, table, features, formats, extensions, score_cols, num_bytes,
                         license_for(name, license, gated), description, scores_entry)
    entry["plots"] = config_figures(dataset, name, scores_table, info)
    render_card(dataset.root, dataset.register(entry), repo=repo)
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
