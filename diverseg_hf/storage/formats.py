"""The one table of shard formats a dataset folder holds: each format's folder, shard names, writer, reader,
the item a published image becomes, and the ``datasets`` builder module its card config names.

Publishing, shard copying, card entries, the dataset folder (:class:`~.dataset_dir.DatasetDir`) and the SR
readers look a format up here (:func:`shard_format`) or iterate :data:`SHARD_FORMATS`; a new format is one
more row.

Example:
    >>> fmt = shard_format("webdataset")
    >>> fmt.pattern("I", generation="3f2a9c01"), fmt.shard_name(1, 2, generation="3f2a9c01"), fmt.module
    ('wds/I/train-*-3f2a9c01.tar', 'train-00001-3f2a9c01.tar', 'webdataset')
    >>> shard_format("parquet").shard_name(0, 2)
    'train-00000-of-00002.parquet'
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import DiversegError
from .shards import ParquetShardWriter, ShardWriter, TarShardWriter, iter_parquet_rows, iter_tar_samples

#: Rows per row group of published Parquet shards (small groups: readers can seek to a few images).
ROW_GROUP_ROWS = 100


def generation_suffix(generation: str | None) -> str:
    """``-GEN`` as the shard names of a generation end, or nothing (files from before generations)."""
    return f"-{generation}" if generation else ""


@dataclass(frozen=True)
class ShardFormat:
    """One shard format of a dataset folder.

    ``folder``: the top folder of its shards (``<folder>/<config>/``); ``suffix``: the file suffix;
    ``counted``: shard names say how many shards there are (``-of-NNNNN``, as the Hub names Parquet);
    ``module``: the ``datasets`` builder its card config names; ``writer(path, schema)`` opens a shard
    writer; ``reader(path)`` iterates a shard (rows or samples); ``item(key, data, scores, extension)``
    is what a published image becomes in a shard; ``one_extension``: every image of a config has the
    config's one extension (tars: one image column in ``datasets``) rather than its own format's.
    """

    name: str
    folder: str
    suffix: str
    counted: bool
    module: str
    writer: Callable[[str | os.PathLike, pa.Schema], ShardWriter]
    reader: Callable[[str | os.PathLike], Iterator[Any]]
    item: Callable[[str, bytes, dict[str, Any], str], dict[str, Any]]
    one_extension: bool

    def config_dir(self, root: str | os.PathLike, name: str) -> Path:
        """The folder of config ``name``'s shards under the dataset folder ``root``."""
        return Path(root) / self.folder / name

    def shard_name(self, index: int, count: int, split: str = "train", generation: str | None = None) -> str:
        """The file name of shard ``index`` of ``count``."""
        of = f"-of-{count:05d}" if self.counted else ""
        return f"{split}-{index:05d}{of}{generation_suffix(generation)}.{self.suffix}"

    def pattern(self, name: str, split: str = "train", generation: str | None = None) -> str:
        """The glob of config ``name``'s shards, relative to the dataset folder (the card's ``data_files``)."""
        return f"{self.folder}/{name}/{split}-*{generation_suffix(generation)}.{self.suffix}"


def json_row(row: dict[str, Any]) -> bytes:
    """A row as compact sorted JSON, non-finite floats as null (a tar sample's ``json`` member).

    Example:
        >>> json_row({"b": float("nan"), "a": 1})
        b'{"a":1,"b":null}'
    """
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    return json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()


def _parquet_writer(path: str | os.PathLike, schema: pa.Schema) -> ShardWriter:
    return ParquetShardWriter(path, schema, row_group_size=ROW_GROUP_ROWS, uncompressed=("image",))


def _parquet_item(key: str, data: bytes, scores: dict[str, Any], extension: str) -> dict[str, Any]:
    return {"key": key, "image": {"bytes": data, "path": f"{key}.{extension}"}, **scores}


def _tar_item(key: str, data: bytes, scores: dict[str, Any], extension: str) -> dict[str, Any]:
    return {"__key__": key, extension: data, "json": json_row({"key": key, **scores})}  # scores hold the format


PARQUET = ShardFormat("parquet", "data", "parquet", counted=True, module="parquet", writer=_parquet_writer,
                      reader=iter_parquet_rows, item=_parquet_item, one_extension=False)
WEBDATASET = ShardFormat("webdataset", "wds", "tar", counted=False, module="webdataset",
                         writer=lambda path, schema: TarShardWriter(path), reader=iter_tar_samples,
                         item=_tar_item, one_extension=True)

#: Every shard format, by name, in the order publish writes them and the card declares them.
SHARD_FORMATS: dict[str, ShardFormat] = {f.name: f for f in (PARQUET, WEBDATASET)}


def shard_format(name: str) -> ShardFormat:
    """The format called ``name``; an error naming the known ones otherwise.

    Example:
        >>> shard_format("zip")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: unknown shard format 'zip'; known: parquet, webdataset
    """
    try:
        return SHARD_FORMATS[name]
    except KeyError:
        raise DiversegError(f"unknown shard format {name!r}; known: {', '.join(SHARD_FORMATS)}") from None
