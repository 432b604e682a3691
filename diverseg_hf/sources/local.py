"""Local shard sources: Parquet files with an image column, WebDataset tars (folders: :mod:`.folder`).

- ``parquet``: ``.parquet`` files (one unit each) with an image column typed ``struct<bytes, path>``
  (the ``datasets`` Image feature) or binary; key = a ``key``/``__key__`` column or file + row.
  Damage never aborts a run: a row group whose pages cannot be read (``Couldn't deserialize
  thrift``, a bad compressed page) gives an error record ``corrupt: Parquet row group N unreadable
  (...)`` for each of its rows not yet read (keyed by its key cells, or file + row where the key
  column itself is damaged), and a file whose footer cannot be read gives one error record keyed by
  the file; every other row group and file is read.
- ``webdataset``: ``.tar`` shards (one unit each); key = the sample's ``__key__``. A damaged tar
  gives a record for each complete sample before the damage, then one error record for the rest;
  a sample with several image members keeps the first (tar order) and names the others in its
  ``origin`` (``;ignored=...``) and ``extra["other_images"]``; a sample without one is an error
  record ``missing: no image member``.

Keys are made relative and non-empty (:func:`diverseg_hf.keys.path_key`); a key the source repeats
(in the same or an earlier file) becomes ``key%23n`` for its n-th occurrence, decided when the
source is opened, so each unit can be read apart and the keys never change between runs.

Example:
    >>> import tempfile, pathlib, tarfile, io
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.tar"
    >>> with tarfile.open(path, "w") as tar:
    ...     for name in ("dup.png", "x.json", "dup.png"):
    ...         tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
    >>> [(r.key, r.error) for u in open_tars(path).units() for r in u.records()]
    [('dup', None), ('x', 'missing: no image member (members: x.json)'), ('dup%232', None)]
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..decode.folders import list_image_entries
from ..errors import DiversegError, ParameterError
from ..keys import KeyCounter, earlier_counts, path_key, printable_name
from ..storage.shards import iter_tar_samples, parquet_schema
from .base import KEY_COLUMN_NAMES, Record, Source, Unit, arrow_image_columns, cell_record, check_image_column


@dataclass(frozen=True)
class ParquetUnit(Unit):
    path: str = ""
    label: str = ""
    image_column: str | None = None
    key_column: str | None = None
    repeats: tuple[tuple[str, int], ...] = ()

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        unique = KeyCounter(dict(self.repeats))
        try:
            pf = pq.ParquetFile(self.path)
        except _DAMAGE as exc:  # damaged footer: the file is one error record
            yield Record(unique(self.file_key()), b"", f"{self.label}.parquet", error=_damage(exc, "file"))
            return
        image_col, key_col = _columns(self.path, self.image_column, self.key_column)
        columns = [image_col] + ([key_col] if key_col else [])
        row = 0
        for group in range(pf.num_row_groups):
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=64, row_groups=[group], columns=columns):
                    for cells in batch.to_pylist():
                        key = unique(self.row_key(row + done, cells[key_col] if key_col else None))
                        origin = f"{self.label}.parquet#row={row + done}"
                        yield cell_record(key, cells[image_col], Path(self.path).parent, origin)
                        done += 1
            except _DAMAGE as exc:  # the rest of a damaged row group: one error record per row
                reason = _damage(exc, f"row group {group}")
                for r, key in enumerate(group_keys(pf, group, key_col, self.row_key, row)[done:], row + done):
                    yield Record(unique(key), b"", f"{self.label}.parquet#row={r}", error=reason)
            row += pf.metadata.row_group(group).num_rows

    def row_key(self, row: int, raw: object) -> str:
        """A row's key before repeats are counted: its key cell, or file + row."""
        return _row_key(self.label, row, raw)

    def file_key(self) -> str:
        """The key of the one error record of a file whose footer cannot be read."""
        return path_key(self.label)

    def record_keys(self) -> list[str]:
        """The keys of the records, before repeats are counted, without reading an image."""
        try:
            key_col = _columns(self.path, self.image_column, self.key_column)[1]
        except _DAMAGE:
            key_col = None
        return parquet_keys(self.path, key_col, self.row_key, self.file_key())


_DAMAGE = (OSError, pa.ArrowException)


def _damage(exc: Exception, where: str) -> str:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"corrupt: Parquet {where} unreadable ({first})"


def group_keys(pf: pq.ParquetFile, group: int, key_col: str | None, row_key: Callable[[int, object], str],
               first_row: int) -> list[str]:
    """The keys of one row group before repeats are counted: its key cells, or file + row where there is no
    key column or it cannot be read (the same at open and when read, so a damaged group keeps its keys)."""
    rows = range(first_row, first_row + pf.metadata.row_group(group).num_rows)
    if key_col is not None:
        try:
            values = pf.read_row_group(group, columns=[key_col]).column(0).to_pylist()
            return [row_key(row, value) for row, value in zip(rows, values)]
        except _DAMAGE:
            pass
    return [row_key(row, None) for row in rows]


@dataclass(frozen=True)
class TarUnit(Unit):
    path: str = ""
    label: str = ""
    repeats: tuple[tuple[str, int], ...] = ()

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        unique = KeyCounter(dict(self.repeats))
        for sample in iter_tar_samples(self.path):
            origin = f"{self.label}.tar#{sample.name or sample.key or 'rest'}"
            others = [printable_name(name) for name in sample.others]
            extra = {"other_images": others} if others else {}
            if others:
                origin += ";ignored=" + ",".join(others)
            yield Record(unique(self.sample_key(sample.key)), sample.data or b"", printable_name(origin), extra,
                         sample.error)

    def sample_key(self, raw: str) -> str:
        """A sample's key before repeats are counted."""
        return path_key(raw)

    def record_keys(self) -> list[str]:
        """The keys of the records, before repeats are counted, without reading an image."""
        return [self.sample_key(s.key) for s in iter_tar_samples(self.path, read=False)]


class ParquetSource(Source):
    kind = "parquet"


class WebDatasetSource(Source):
    kind = "webdataset"


def _row_key(label: str, row: int, raw: object) -> str:
    """A row's key before repeats are counted: its key cell, or file + row."""
    return path_key(str(raw)) if raw is not None else path_key(f"{label}/{row:08d}")


def _columns(path: str | Path, image_col: str | None, key_column: str | None) -> tuple[str, str | None]:
    """(image column, key column or None) of a Parquet file; a named column it lacks is an error."""
    schema = parquet_schema(path)
    image = check_image_column(arrow_image_columns(schema), image_col, str(path))
    if key_column is not None and key_column not in schema.names:
        raise ParameterError("key_column", f"{key_column!r} is not a column of {path} "
                                           f"(columns: {', '.join(schema.names)})")
    return image, key_column or next((c for c in KEY_COLUMN_NAMES if c in schema.names), None)


def files_with_suffix(path: Path, suffix: str) -> list[Path]:
    """``path`` itself if it is a file, else its ``suffix`` files (any case) by the one folder walk (hidden
    entries and link loops left out), regular files only."""
    if path.is_file():
        return [path]
    rels, _ = list_image_entries(path, frozenset({suffix}))
    return [path / rel for rel in rels if (path / rel).is_file()]


def _shard_files(path: Path, suffix: str, kind: str,
                 keys: Callable[[Path, str], list[str]]) -> list[tuple[Path, str, list[str]]]:
    """(file, label, keys) for each ``suffix`` file at ``path``; label = path relative to it, no suffix."""
    files = files_with_suffix(path, suffix)
    if not files:
        raise DiversegError(f"no {suffix} files found under {path}")
    base = path if path.is_dir() else path.parent
    out = []
    for file in files:
        label = printable_name(file.relative_to(base).with_suffix("").as_posix())
        try:
            out.append((file, label, keys(file, label)))
        except (OSError, ValueError, tarfile.TarError) as exc:
            raise DiversegError(f"{file}: not a readable {kind} file ({exc})") from exc
    return out


def parquet_keys(file: str | Path, key_column: str | None, row_key: Callable[[int, object], str],
                 file_key: str) -> list[str]:
    """The keys of a Parquet file's rows before repeats are counted, row group by row group (a damaged
    footer: the one key ``file_key``); what its unit's records will carry."""
    try:
        pf = pq.ParquetFile(file)
    except _DAMAGE:  # read as one error record
        return [file_key]
    out: list[str] = []
    for group in range(pf.num_row_groups):
        out += group_keys(pf, group, key_column, row_key, len(out))
    return out


def open_parquet(path: Path, image_column: str | None, key_column: str | None) -> ParquetSource:
    def keys(file: Path, label: str) -> list[str]:
        return ParquetUnit("", None, path=str(file), label=label, image_column=image_column,
                           key_column=key_column).record_keys()

    shards = _shard_files(path, ".parquet", "Parquet", keys)
    repeats = earlier_counts([k for _, _, k in shards])
    units: list[Unit] = [
        ParquetUnit(f"parquet-{i:05d}", len(file_keys), path=str(file), label=label, image_column=image_column,
                    key_column=key_column, repeats=repeats[i])
        for i, (file, label, file_keys) in enumerate(shards)
    ]
    options = {"image_column": image_column, "key_column": key_column}
    return ParquetSource(str(path), units, options)


def open_tars(path: Path) -> WebDatasetSource:
    def keys(file: Path, label: str) -> list[str]:
        return TarUnit("", None, path=str(file), label=label).record_keys()

    shards = _shard_files(path, ".tar", "tar", keys)
    repeats = earlier_counts([k for _, _, k in shards])
    units: list[Unit] = [
        TarUnit(f"tar-{i:05d}", len(file_keys), path=str(file), label=label, repeats=repeats[i])
        for i, (file, label, file_keys) in enumerate(shards)
    ]
    return WebDatasetSource(str(path), units, {})
