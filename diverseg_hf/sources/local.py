"""Local sources: a folder of image files, Parquet files with an image column, WebDataset tars.

- ``folder``: image files found recursively, sorted, chunked into units of ``unit_size`` files;
  key = relative path without suffix (with it where two files would share a key).
- ``parquet``: ``.parquet`` files (one unit each) with an image column typed ``struct<bytes, path>``
  (the ``datasets`` Image feature) or binary; key = a ``key``/``__key__`` column or file + row.
- ``webdataset``: ``.tar`` shards (one unit each); key = the sample's ``__key__``.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "a.b.png").write_bytes(b"x")
    >>> [(r.key, r.data) for u in open_folder(root, 10).units() for r in u.records()]
    [('a%2Eb', b'x')]
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import DiversegError
from ..images import find_image_files, read_bytes
from ..keys import encode_key
from ..storage.shards import iter_parquet_rows, iter_tar_samples, parquet_schema
from .base import KEY_COLUMN_NAMES, Record, Source, Unit, cell_record, guess_image_column


@dataclass(frozen=True)
class FolderUnit(Unit):
    root: str = ""
    files: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        for rel, key in zip(self.files, self.keys):
            if keys is not None and key not in keys:  # skip unread; yields an empty placeholder
                yield Record(key, b"", rel)
                continue
            try:
                data = read_bytes(Path(self.root) / rel)
            except Exception:  # unreadable file: empty bytes, the decode step records the reason
                data = b""
            yield Record(key, data, rel)


@dataclass(frozen=True)
class ParquetUnit(Unit):
    path: str = ""
    label: str = ""
    image_column: str | None = None
    key_column: str | None = None

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        schema = parquet_schema(self.path)
        image_col = self.image_column or guess_image_column(schema, self.path)
        key_col = self.key_column or next((c for c in KEY_COLUMN_NAMES if c in schema.names), None)
        columns = [image_col] + ([key_col] if key_col else [])
        for row, cells in enumerate(iter_parquet_rows(self.path, columns)):
            raw_key = cells[key_col] if key_col else None
            key = encode_key(str(raw_key)) if raw_key is not None else encode_key(f"{self.label}/{row:08d}")
            yield cell_record(key, cells[image_col], Path(self.path).parent, f"{self.label}.parquet#row={row}")


@dataclass(frozen=True)
class TarUnit(Unit):
    path: str = ""
    label: str = ""

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        for sample in iter_tar_samples(self.path):
            yield Record(encode_key(sample.key), sample.data or b"", f"{self.label}.tar#{sample.name or sample.key}")


class FolderSource(Source):
    kind = "folder"


class ParquetSource(Source):
    kind = "parquet"


class WebDatasetSource(Source):
    kind = "webdataset"


def _folder_keys(rels: list[str]) -> list[str]:
    """Relative path without suffix, or with it where two files would share a key."""
    stems = [os.path.splitext(r)[0] for r in rels]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    return [encode_key(stem if seen[stem] == 1 else rel) for stem, rel in zip(stems, rels)]


def open_folder(root: Path, unit_size: int) -> FolderSource:
    files = find_image_files([root])
    if not files:
        raise DiversegError(f"no image files found under {root}")
    rels = [p.relative_to(root).as_posix() for p in files]
    keys = _folder_keys(rels)
    units: list[Unit] = [
        FolderUnit(
            id=f"folder-{i // unit_size:05d}",
            size=len(rels[i : i + unit_size]),
            root=str(root),
            files=tuple(rels[i : i + unit_size]),
            keys=tuple(keys[i : i + unit_size]),
        )
        for i in range(0, len(rels), unit_size)
    ]
    return FolderSource(str(root), units, {"unit_size": unit_size})


def files_with_suffix(path: Path, suffix: str) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())


def _shard_files(path: Path, suffix: str, kind: str, count) -> list[tuple[Path, str, int]]:
    """(file, label, records) for each ``suffix`` file at ``path``; label = path relative to it, no suffix."""
    files = files_with_suffix(path, suffix)
    if not files:
        raise DiversegError(f"no {suffix} files found under {path}")
    base = path if path.is_dir() else path.parent
    out = []
    for file in files:
        try:
            size = count(file)
        except (OSError, ValueError, tarfile.TarError) as exc:
            raise DiversegError(f"{file}: not a readable {kind} file ({exc})") from exc
        out.append((file, file.relative_to(base).with_suffix("").as_posix(), size))
    return out


def open_parquet(path: Path, image_column: str | None, key_column: str | None) -> ParquetSource:
    units: list[Unit] = [
        ParquetUnit(f"parquet-{i:05d}", rows, path=str(file), label=label, image_column=image_column,
                    key_column=key_column)
        for i, (file, label, rows) in enumerate(
            _shard_files(path, ".parquet", "Parquet", lambda f: pq.ParquetFile(f).metadata.num_rows))
    ]
    options = {"image_column": image_column, "key_column": key_column}
    return ParquetSource(str(path), units, options)


def open_tars(path: Path) -> WebDatasetSource:
    units: list[Unit] = [
        TarUnit(f"tar-{i:05d}", size, path=str(file), label=label)
        for i, (file, label, size) in enumerate(
            _shard_files(path, ".tar", "tar", lambda f: sum(1 for _ in iter_tar_samples(f, read=False))))
    ]
    return WebDatasetSource(str(path), units, {})
