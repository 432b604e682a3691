"""Shard readers and writers: the one place that reads and writes Parquet and WebDataset tar shards.

Readers yield rows (Parquet) or samples (tars) in file order. Writers share one small contract, the
way webdataset's ``ShardWriter`` is shaped: ``write(item)`` per row or sample, ``close()`` once (or use
them as context managers). Output is deterministic: the same items give byte-identical shards (tar
headers carry no time, owner or mode of the writing machine).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.tar"
    >>> with TarShardWriter(path) as tar:
    ...     tar.write({"__key__": "a", "png": b"1", "json": b"{}"})
    >>> [(s.key, s.name, s.data) for s in iter_tar_samples(path)]
    [('a', 'a.png', b'1')]
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..images import IMAGE_SUFFIXES

# ----------------------------------------------------------------------------- Parquet


def parquet_schema(path: str | os.PathLike) -> pa.Schema:
    """The Arrow schema of a Parquet file (with its metadata), read from the footer only."""
    return pq.read_schema(path)


def read_parquet_table(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pa.Table:
    """A whole Parquet file (or ``columns`` of it) as one table."""
    return pq.read_table(path, columns=list(columns) if columns is not None else None)


def iter_parquet_rows(path: str | os.PathLike, columns: Sequence[str] | None = None,
                      batch_size: int = 256) -> Iterator[dict[str, Any]]:
    """The rows of a Parquet file as dicts of ``columns`` (all when None), in file order."""
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=batch_size, columns=list(columns) if columns else None):
        yield from batch.to_pylist()


class ParquetShardWriter:
    """Rows of one Parquet shard with a fixed ``schema``, written when closed.

    ``row_group_size`` rows per row group (pyarrow's default when None); columns in ``uncompressed``
    are stored as they are (image bytes do not compress), the others with zstd.
    """

    def __init__(self, path: str | os.PathLike, schema: pa.Schema, row_group_size: int | None = None,
                 uncompressed: Collection[str] = ()):
        self.path = Path(path)
        self.schema = schema
        self.row_group_size = row_group_size
        self.uncompressed = set(uncompressed)
        self._rows: list[dict[str, Any]] = []
        self._tables: list[pa.Table] = []

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(row)

    def write_table(self, table: pa.Table) -> None:
        """Many rows at once (already in ``schema``)."""
        self._flush_rows()
        self._tables.append(table)

    def close(self) -> None:
        self._flush_rows()
        table = pa.concat_tables(self._tables) if self._tables else self.schema.empty_table()
        if self.uncompressed:
            compression: Any = {n: ("none" if n in self.uncompressed else "zstd") for n in table.column_names}
        else:
            compression = "zstd"
        pq.write_table(table, self.path, row_group_size=self.row_group_size, compression=compression)
        self._tables = []

    def _flush_rows(self) -> None:
        if self._rows:
            self._tables.append(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def __enter__(self) -> ParquetShardWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()


# ----------------------------------------------------------------------------- WebDataset tars

_IMAGE_EXTENSIONS = frozenset(s.lstrip(".") for s in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class TarSample:
    """One WebDataset sample: its ``__key__``, its image member's name and bytes (None when it has none)."""

    key: str
    name: str | None
    data: bytes | None


def iter_tar_samples(path: str | os.PathLike, read: bool = True) -> Iterator[TarSample]:
    """Samples of a tar shard in order: consecutive files sharing a key (``dir/name`` before the first dot).

    The image is the sample's first member with an image suffix; with ``read=False`` its bytes are not read.
    """
    with tarfile.open(path, "r:*") as tar:
        current: str | None = None
        image: tarfile.TarInfo | None = None
        for member in tar:
            key = _member_key(member)
            if key is None:
                continue
            if key != current:
                if current is not None:
                    yield _sample(tar, current, image, read)
                current, image = key, None
            if image is None and member.name.rsplit(".", 1)[-1].lower() in _IMAGE_EXTENSIONS:
                image = member
        if current is not None:
            yield _sample(tar, current, image, read)


def _member_key(member: tarfile.TarInfo) -> str | None:
    if not member.isfile():
        return None
    base = os.path.basename(member.name)
    if "." not in base:
        return None
    return os.path.join(os.path.dirname(member.name), base.split(".", 1)[0])


def _sample(tar: tarfile.TarFile, key: str, image: tarfile.TarInfo | None, read: bool) -> TarSample:
    if image is None:
        return TarSample(key, None, None)
    data = tar.extractfile(image).read() if read else None  # type: ignore[union-attr]
    return TarSample(key, image.name, data)


class TarShardWriter:
    """Samples of one WebDataset tar shard: ``write({"__key__": key, ext: bytes, ...})`` adds ``key.ext`` files."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._tar = tarfile.open(self.path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed in close()

    def write(self, sample: dict[str, Any]) -> None:
        key = sample["__key__"]
        for ext, payload in sample.items():
            if ext != "__key__":
                self._tar.addfile(_tarinfo(f"{key}.{ext}", len(payload)), io.BytesIO(payload))

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> TarShardWriter:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
