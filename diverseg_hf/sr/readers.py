"""Read (key, encoded image) records shard by shard from any of the places a subset can live.

A *reader* exposes ``num_shards`` and ``read_shard(i)``, an iterator over ``(key, payload)`` in a
fixed order; map-style readers also offer ``len()`` and ``record(i)`` (random access). The payload is
the ORIGINAL encoded bytes (``datasets`` Image columns are cast to ``Image(decode=False)``), or
``None`` for a record without a readable image (SRPairs counts it as skipped).

Every reader goes through the package's one spelling of each contract: a published folder
(``data/<config>/<split>-*.parquet`` or ``wds/<config>/<split>-*.tar``) through
:func:`diverseg_hf.sources.published.open_published`, a Hub dataset id through the one Hub streamer
(:func:`diverseg_hf.sources.hub.open_hub`, :func:`~diverseg_hf.sources.hub.stream_rows`), image cells
through the one unpacker (:func:`diverseg_hf.sources.base.cell_record`) and the image column through
the one column check. Also supported: a map-style ``datasets.Dataset``, a streaming
``datasets.IterableDataset`` (one shard per ``num_shards``) and a folder written by ``diverseg export
--format basicsr`` (its HR originals, keyed back through ``key_map.jsonl``).

Example:
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"key": ["a"], "image": [b"not decoded here"]})
    >>> list(MapReader(ds).read_shard(0))
    [('a', b'not decoded here')]
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DiversegError
from ..sources import Source
from ..sources.base import cell_record
from ..sources.hub import open_hub, resolve_commit, stream_rows, undecoded
from ..sources.published import PUBLISHED_FORMATS, open_published

#: What a reader yields per image: (key, payload for decode_rgb or None).
KeyedImage = tuple[str, Any]


class _Cells:
    """How a reader unpacks image cells: through the one unpacker, path-only cells confined to ``root``
    (nothing for a Hub dataset) unless the dataset is the caller's own object (``confine=False``: read where
    they point, as ``datasets`` itself reads them)."""

    def __init__(self, root: str | None, confine: bool):
        self.root, self.confine = root, confine

    def payload(self, key: str, value: Any, where: str) -> Any:
        """An image cell -> its encoded bytes, or None (no image, or a path not read)."""
        record = cell_record(key, value, self.root, where, confine=self.confine)
        return None if record.error else record.data


_CALLERS = _Cells(None, confine=False)


class MapReader:
    """A map-style ``datasets.Dataset``: random access, one shard per row.

    Keys come from ``key_column`` when the dataset has it, else the row index.
    """

    random_access = True

    def __init__(self, ds: Any, image_column: str = "image", key_column: str = "key", cells: _Cells = _CALLERS):
        ds, image_column = undecoded(ds, image_column, "the dataset")
        self._cells = cells
        self._has_key = key_column in ds.column_names
        self._ds = ds.select_columns([key_column, image_column] if self._has_key else [image_column])
        self._image, self._key = image_column, key_column

    @property
    def num_shards(self) -> int:
        return len(self._ds)

    def __len__(self) -> int:
        return len(self._ds)

    def record(self, index: int) -> KeyedImage:
        row = self._ds[int(index)]
        key = str(row[self._key]) if self._has_key else str(index)
        return key, self._cells.payload(key, row[self._image], f"row {index}")

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        yield self.record(shard)


class StreamingReader:
    """A streaming ``datasets.IterableDataset``; shard ``i`` is ``ds.shard(num_shards, i)``, read by the one
    Hub streamer.

    Pass the dataset before any ``split_dataset_by_node``: SRPairs does the splitting itself.
    """

    random_access = False

    def __init__(self, ds: Any, image_column: str = "image", key_column: str = "key", batch_size: int = 32,
                 cells: _Cells = _CALLERS):
        ds, image_column = undecoded(ds, image_column, "the dataset")
        self._cells = cells
        names = ds.column_names
        self._has_key = names is not None and key_column in names
        self._ds = ds.select_columns([key_column, image_column] if self._has_key else [image_column])
        self._image, self._key, self._batch = image_column, key_column, batch_size

    @property
    def num_shards(self) -> int:
        return int(self._ds.num_shards)

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        for row, example in enumerate(stream_rows(self._ds, shard, self.num_shards, self._batch)):
            raw = example.get(self._key) if self._has_key else None
            key = str(raw) if raw is not None else f"{shard}:{row}"
            yield key, self._cells.payload(key, example[self._image], f"shard {shard} row {row}")


class SourceReader:
    """A :class:`~diverseg_hf.sources.Source` (a published folder): one shard per unit; a record read with an
    error gives ``None``."""

    random_access = False

    def __init__(self, source: Source):
        self._units = source.units()

    @property
    def num_shards(self) -> int:
        return len(self._units)

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        for record in self._units[shard].records():
            yield record.key, None if record.error else record.data


class ExportFolderReader:
    """The ``HR/`` images of a ``diverseg export --format basicsr`` folder: random access, one shard per image."""

    random_access = True

    def __init__(self, root: Path, config: str | None = None):
        import json

        record, key_map = root / "export.json", root / "key_map.jsonl"
        if not record.is_file() or not key_map.is_file():
            raise DiversegError(f"{root} is not a finished diverseg export (no export.json / key_map.jsonl)")
        exported = json.loads(record.read_text()).get("settings", {}).get("config")
        if config and config != exported:
            raise DiversegError(f"{root} holds config {exported!r}, not {config!r}")
        self._rows = [(row["key"], root / row["file"]) for row in map(json.loads, key_map.read_text().splitlines())]

    @property
    def num_shards(self) -> int:
        return len(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def record(self, index: int) -> KeyedImage:
        key, path = self._rows[int(index)]
        return key, str(path)

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        yield self.record(shard)


def folder_reader(
    path: str | os.PathLike, config: str, format: str = "parquet", split: str = "train"
) -> SourceReader | ExportFolderReader:
    """The reader of one config of a published dataset folder (or, ``format="basicsr"``, of an export).

    Example:
        >>> folder_reader("/nonexistent", "I")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no train-*.parquet shards in /nonexistent/data/I
    """
    if format == "basicsr":
        return ExportFolderReader(Path(path), config)
    if format not in PUBLISHED_FORMATS:
        raise DiversegError(f"format must be 'parquet', 'webdataset' or 'basicsr', got {format!r}")
    return SourceReader(open_published(path, config, format, split))


def hub_reader(dataset: str, config: str | None = None, split: str = "train", revision: str | None = None,
               streaming: bool = True, image_column: str = "image", key_column: str = "key") -> Any:
    """The reader of a Hub dataset id (or a local dataset folder ``load_dataset`` reads), through the one Hub
    streamer: pinned to the commit ``revision`` resolves to, image cells never decoded by ``datasets``.

    Example:
        >>> hub_reader("no-such-org/no-such-dataset", "I")  # doctest: +SKIP
    """
    ds, image_column = open_hub(dataset, config, split, resolve_commit(dataset, revision), image_column,
                                streaming=streaming)
    cells = _Cells(dataset if Path(dataset).is_dir() else None, confine=True)  # path cells: only inside a folder
    if streaming:
        return StreamingReader(ds, image_column, key_column, cells=cells)
    return MapReader(ds, image_column, key_column, cells=cells)


def dataset_reader(dataset: Any, image_column: str = "image", key_column: str = "key") -> Any:
    """Wrap a ``datasets.Dataset`` / ``IterableDataset`` (or pass a reader through); a string is a Hub
    dataset id or a local dataset folder (:func:`hub_reader`, default config).

    A ``DatasetDict`` / ``IterableDatasetDict`` (``load_dataset`` without ``split``) gives its train split.
    """
    import datasets

    if isinstance(dataset, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        if "train" not in dataset:
            raise DiversegError(f"dataset dict has no 'train' split (splits: {list(dataset)}); pass one split")
        dataset = dataset["train"]
    if isinstance(dataset, datasets.Dataset):
        return MapReader(dataset, image_column, key_column)
    if isinstance(dataset, datasets.IterableDataset):
        return StreamingReader(dataset, image_column, key_column)
    if hasattr(dataset, "read_shard") and hasattr(dataset, "num_shards"):
        return dataset
    if isinstance(dataset, (str, os.PathLike)):
        return hub_reader(str(dataset), image_column=image_column, key_column=key_column)
    raise DiversegError(f"expected a datasets.Dataset or IterableDataset, got {type(dataset).__name__}")
