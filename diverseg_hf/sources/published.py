"""A published dataset folder as a source: the one reader of ``data/<config>/`` and ``wds/<config>/`` shards.

``build`` (the IP union), ``export`` and the SR readers all read a published folder through
:func:`open_published`: one unit per shard of one config and split, in shard order, the records'
keys exactly as published (optionally with a ``prefix``, as the IP union's ``I/...``), the image
column ``image`` checked and unpacked by the one image-cell unpacker
(:func:`~diverseg_hf.sources.base.cell_record`), damaged row groups and tar members as error records
(as for any Parquet or tar source).

Example:
    >>> open_published("/nonexistent", "I")
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.DiversegError: no train-*.parquet shards in /nonexistent/data/I
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import DiversegError
from ..storage import DatasetDir
from ..storage.formats import PARQUET, SHARD_FORMATS
from .base import Source, Unit
from .local import ParquetUnit, TarUnit

#: Formats of a published folder that :func:`open_published` reads: every shard format of the one table.
PUBLISHED_FORMATS = tuple(SHARD_FORMATS)


@dataclass(frozen=True)
class PublishedParquetUnit(ParquetUnit):
    """One published Parquet shard: keys as published, with ``prefix``."""

    prefix: str = ""

    def row_key(self, row: int, raw: object) -> str:
        return f"{self.prefix}{raw}" if raw is not None else f"{self.prefix}{self.label}:{row}"

    def file_key(self) -> str:
        return f"{self.prefix}{self.label}"


@dataclass(frozen=True)
class PublishedTarUnit(TarUnit):
    """One published WebDataset shard: keys as published, with ``prefix``."""

    prefix: str = ""

    def sample_key(self, raw: str) -> str:
        return f"{self.prefix}{raw}"


def _num_rows(path: Path) -> int | None:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):  # a damaged footer: read as one error record
        return None


class PublishedSource(Source):
    """Images of one config already published in a dataset folder."""

    kind = "published"

    def record_keys(self) -> list[str]:
        """Every record's key, in order, without reading an image."""
        return [key for unit in self.units() for key in unit.record_keys()]


def open_published(folder: str | os.PathLike, config: str, format: str = "parquet", split: str = "train",
                   prefix: str = "") -> PublishedSource:
    """The shards of ``config`` (``split``) in the published folder ``folder`` as a source (see module doc)."""
    if format not in PUBLISHED_FORMATS:
        raise DiversegError(f"format must be one of {', '.join(PUBLISHED_FORMATS)}, got {format!r}")
    paths = DatasetDir(folder).shards(format, config, split)
    options = {"config": config, "format": format, "split": split}
    if format == PARQUET.name:
        return parquet_config_source(paths, str(folder), config, options, prefix)
    units: list[Unit] = [PublishedTarUnit(f"{config}-{i:05d}", None, path=str(path), label=path.stem, prefix=prefix)
                         for i, path in enumerate(paths)]
    return PublishedSource(str(folder), units, options)


def parquet_config_source(paths: Sequence[Path], spec: str, config: str, options: dict[str, Any],
                          prefix: str = "") -> PublishedSource:
    """The images of a published config's Parquet shards ``paths`` (local files, in order) as a source,
    keys as published (with ``prefix``); ``spec`` and ``options`` describe it.

    Example:
        >>> parquet_config_source([], "my-org/diverseg", "I", {"config": "I"}).units()
        []
    """
    units = [PublishedParquetUnit(f"{config}-{i:05d}", _num_rows(Path(path)), path=str(path), label=Path(path).stem,
                                  image_column="image", prefix=prefix) for i, path in enumerate(paths)]
    return PublishedSource(spec, units, options)
