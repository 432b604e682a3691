"""Read (key, encoded image) records shard by shard from any of the places a subset can live.

A *reader* exposes ``num_shards`` and ``read_shard(i)``, an iterator over ``(key, payload)`` in a
fixed order; map-style readers also offer ``len()`` and ``record(i)`` (random access). The payload is
whatever :func:`diverseg_hf.decode.images.decode_rgb` accepts: the ORIGINAL encoded bytes where the source
has them (``datasets`` Image columns are cast to ``Image(decode=False)``), a file path, or, for
sources that only hold decoded images, a PIL image. ``None`` marks a record without an image.

Supported: a map-style ``datasets.Dataset``, a streaming ``datasets.IterableDataset`` (one shard per
``num_shards``), a published folder (``data/<config>/<split>-*.parquet`` or
``wds/<config>/<split>-*.tar``) and a folder written by ``diverseg export --format basicsr`` (its HR
originals, keyed back through ``key_map.jsonl``).

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
from ..storage import DatasetDir, iter_parquet_rows, iter_tar_samples, parquet_schema
from ..storage.formats import PARQUET, SHARD_FORMATS, WEBDATASET

#: What a reader yields per image: (key, payload for decode_rgb or None).
KeyedImage = tuple[str, Any]


def _payload(value: Any) -> Any:
    """An image cell (Image(decode=False) dict, bytes, path or PIL image) -> decode_rgb input or None."""
    if isinstance(value, dict):
        return value.get("bytes") or value.get("path")
    return value


def _undecoded(ds: Any, image_column: str) -> Any:
    """Cast a ``datasets`` Image column to ``decode=False`` so rows carry the original bytes."""
    import datasets

    if image_column not in (ds.column_names or [image_column]):
        raise DiversegError(f"dataset has no column {image_column!r}; columns: {ds.column_names}")
    features = ds.features
    if features is not None and isinstance(features.get(image_column), datasets.Image):
        ds = ds.cast_column(image_column, datasets.Image(decode=False))
    return ds


class MapReader:
    """A map-style ``datasets.Dataset``: random access, one shard per row.

    Keys come from ``key_column`` when the dataset has it, else the row index.
    """

    random_access = True

    def __init__(self, ds: Any, image_column: str = "image", key_column: str = "key"):
        ds = _undecoded(ds, image_column)
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
        return key, _payload(row[self._image])

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        yield self.record(shard)


class StreamingReader:
    """A streaming ``datasets.IterableDataset``; shard ``i`` is ``ds.shard(num_shards, i)``.

    Pass the dataset before any ``split_dataset_by_node``: SRPairs does the splitting itself.
    """

    random_access = False

    def __init__(self, ds: Any, image_column: str = "image", key_column: str = "key", batch_size: int = 32):
        ds = _undecoded(ds, image_column)
        names = ds.column_names
        self._has_key = names is not None and key_column in names
        self._ds = ds.select_columns([key_column, image_column] if self._has_key else [image_column])
        self._image, self._key, self._batch = image_column, key_column, batch_size

    @property
    def num_shards(self) -> int:
        return int(self._ds.num_shards)

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        part = self._ds.shard(num_shards=self.num_shards, index=shard, contiguous=True)
        row = 0
        # .iter() (unlike __iter__) does not split shards again when called inside a DataLoader worker.
        for batch in part.iter(batch_size=self._batch):
            keys = batch[self._key] if self._has_key else [None] * len(batch[self._image])
            for key, value in zip(keys, batch[self._image]):
                yield (str(key) if key is not None else f"{shard}:{row}"), _payload(value)
                row += 1


class ParquetFolderReader:
    """Parquet shards of a published folder, read with pyarrow (one shard per file)."""

    random_access = False

    def __init__(self, files: list[Path], image_column: str = "image", key_column: str = "key"):
        self.files = files
        self._image, self._key = image_column, key_column

    @property
    def num_shards(self) -> int:
        return len(self.files)

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        path = self.files[shard]
        names = parquet_schema(path).names
        if self._image not in names:
            raise DiversegError(f"{path}: no column {self._image!r}; columns: {names}")
        has_key = self._key in names
        columns = [self._key, self._image] if has_key else [self._image]
        for row, cells in enumerate(iter_parquet_rows(path, columns, batch_size=64)):
            key = cells.get(self._key) if has_key else None
            yield (str(key) if key is not None else f"{path.stem}:{row}"), _payload(cells[self._image])


class TarFolderReader:
    """WebDataset tar shards of a published folder (``<key>.<ext>`` + ``<key>.json``)."""

    random_access = False

    def __init__(self, files: list[Path]):
        self.files = files

    @property
    def num_shards(self) -> int:
        return len(self.files)

    def read_shard(self, shard: int) -> Iterator[KeyedImage]:
        for sample in iter_tar_samples(self.files[shard]):
            yield sample.key, sample.data


class ExportFolderReader:
    """The HR originals of a ``diverseg export --format basicsr`` folder: random access, one shard per image."""

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
) -> ParquetFolderReader | TarFolderReader | ExportFolderReader:
    """The reader of one config of a published dataset folder (or, ``format="basicsr"``, of an export).

    Example:
        >>> folder_reader("/nonexistent", "I")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no train-*.parquet shards in /nonexistent/data/I
    """
    if format == "basicsr":
        return ExportFolderReader(Path(path), config)
    readers = {PARQUET.name: ParquetFolderReader, WEBDATASET.name: TarFolderReader}
    if format not in readers:
        raise DiversegError(f"format must be {', '.join(map(repr, SHARD_FORMATS))} or 'basicsr', got {format!r}")
    return readers[format](DatasetDir(path).shards(format, config, split))


def dataset_reader(dataset: Any, image_column: str = "image", key_column: str = "key") -> Any:
    """Wrap a ``datasets.Dataset`` / ``IterableDataset`` (or pass a reader through).

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
        raise DiversegError("for a published folder use SRPairs.from_folder(path, config, format=...)")
    raise DiversegError(f"expected a datasets.Dataset or IterableDataset, got {type(dataset).__name__}")
