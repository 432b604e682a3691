"""Shard readers and writers: the one place that reads and writes Parquet and WebDataset tar shards.

Readers yield rows (Parquet) or samples (tars) in file order. Writers share one small contract, the
way webdataset's ``ShardWriter`` is shaped: ``write(item)`` per row or sample, then ``close()`` to
commit the shard atomically or ``abort()`` to leave nothing (as context managers: close on success,
abort on error). Output is deterministic: the same items give byte-identical shards (tar
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

from ..decode.images import IMAGE_SUFFIXES
from ..files import commit_temp, temp_path, write_atomic

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


class ShardWriter:
    """The writers' contract: ``write(item)``, then ``close()`` (commit) or ``abort()`` (leave nothing);
    as a context manager, close on success and abort on error."""

    def write(self, item: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


class ParquetShardWriter(ShardWriter):
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
        write_atomic(self.path, lambda fh: pq.write_table(table, fh, row_group_size=self.row_group_size,
                                                          compression=compression))
        self._tables = []

    def abort(self) -> None:
        """Drop the rows written so far: ``path`` is not written."""
        self._rows, self._tables = [], []

    def _flush_rows(self) -> None:
        if self._rows:
            self._tables.append(pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []


# ----------------------------------------------------------------------------- WebDataset tars

_IMAGE_EXTENSIONS = frozenset(s.lstrip(".") for s in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class TarSample:
    """One WebDataset sample: its ``__key__``, its image member's name and bytes.

    ``name``/``data`` are None when the sample has no image member; ``others`` names further image
    members (the first image member in tar order is the one taken); ``error`` says why the sample
    cannot be used (no image member, truncated or corrupt tar: then it also covers the unreadable
    rest of the tar, and is the last sample yielded).
    """

    key: str
    name: str | None
    data: bytes | None
    others: tuple[str, ...] = ()
    error: str | None = None


def iter_tar_samples(path: str | os.PathLike, read: bool = True) -> Iterator[TarSample]:
    """Samples of a tar shard in order: consecutive files sharing a key (``dir/name`` before the first dot).

    Never raises on a damaged tar: the complete samples before the damage are yielded, then one
    sample with ``error`` for the rest, keyed like the sample the damage cut (``""`` when the damage
    lies between samples). Member names are normalised (no leading ``/``, no empty or ``.``
    segments). With ``read=False`` image bytes are not read; for an uncompressed tar the same
    samples come out either way.
    """
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - closed below
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield TarSample("", None, None, error=f"corrupt: not a readable tar ({exc})")
        return
    with tar:
        group: list[tarfile.TarInfo] = []
        for member, problem in _members(tar, Path(path).stat().st_size):
            key = None if member is None else _member_key(member)
            if key is None and problem is None:
                continue
            if group and key != _member_key(group[0]):
                yield _sample(tar, group, read)
                group = []
            if member is not None and key is not None:
                group.append(member)
            if problem:
                yield _damaged(group, problem)
                return
        if group:
            yield _sample(tar, group, read)


def _damaged(group: list[tarfile.TarInfo], problem: str) -> TarSample:
    """The error sample for the rest of a damaged tar, keyed like the sample the damage cut."""
    names = [_normal_name(m.name) for m in group if _is_image(m)]
    key = (_member_key(group[0]) or "") if group else ""
    return TarSample(key, names[0] if names else None, None, tuple(names[1:]), problem)


def _members(tar: tarfile.TarFile, size: int) -> Iterator[tuple[tarfile.TarInfo | None, str | None]]:
    """(member, None) in order; the damage as (member it cuts or None, problem), last."""
    plain = isinstance(tar.fileobj, io.BufferedReader)  # uncompressed: sizes and the end can be checked
    while True:
        try:
            member = tar.next()
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            yield None, f"corrupt: unreadable tar from byte {tar.offset} ({exc})"
            return
        if member is None:
            break
        if plain and member.offset_data + member.size > size:
            yield member, f"truncated: the tar ends inside {_normal_name(member.name)!r} (at byte {size})"
            return
        yield member, None
    problem = _end_problem(tar, size) if plain else None
    if problem:
        yield None, problem


def _end_problem(tar: tarfile.TarFile, size: int) -> str | None:
    """Why the bytes after the last member are no end-of-archive marker (where tarfile stops silently)."""
    tar.fileobj.seek(tar.offset)  # type: ignore[union-attr]
    block = tar.fileobj.read(tarfile.BLOCKSIZE)  # type: ignore[union-attr]
    if len(block) < tarfile.BLOCKSIZE:
        return f"truncated: the tar ends at byte {size} without its end-of-archive marker"
    if block.count(0) != len(block):
        return f"corrupt: unreadable member header at byte {tar.offset}"
    return None


def _normal_name(name: str) -> str:
    """A member name without leading ``/`` and without empty or ``.`` segments."""
    parts = name.split("/")
    return "/".join([p for p in parts[:-1] if p not in ("", ".")] + parts[-1:])


def _member_key(member: tarfile.TarInfo) -> str | None:
    if member.isdir():
        return None
    name = _normal_name(member.name)
    base = name.rsplit("/", 1)[-1]
    if "." not in base:
        return None
    return name[: len(name) - len(base)] + base.split(".", 1)[0]


def _is_image(member: tarfile.TarInfo) -> bool:
    base = member.name.rsplit("/", 1)[-1]
    return "." in base and base.rsplit(".", 1)[-1].lower() in _IMAGE_EXTENSIONS


def _sample(tar: tarfile.TarFile, group: list[tarfile.TarInfo], read: bool) -> TarSample:
    """The sample of a complete group of members: its first image member, read unless ``read=False``."""
    key = _member_key(group[0]) or ""
    images = [m for m in group if _is_image(m)]
    if not images:
        members = ", ".join(_normal_name(m.name) for m in group)
        return TarSample(key, None, None, error=f"missing: no image member (members: {members})")
    name, others = _normal_name(images[0].name), tuple(_normal_name(m.name) for m in images[1:])
    if not images[0].isfile():
        return TarSample(key, name, None, others, "unsupported: the image member is a link, not a file (not read)")
    if not read:
        return TarSample(key, name, None, others)
    try:
        data = tar.extractfile(images[0]).read()  # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        return TarSample(key, name, None, others, f"truncated: cannot read {name!r} ({exc})")
    return TarSample(key, name, data, others)


class TarShardWriter(ShardWriter):
    """Samples of one WebDataset tar shard: ``write({"__key__": key, ext: bytes, ...})`` adds ``key.ext`` files.

    The tar is written to a temporary file beside ``path`` and renamed into place by :meth:`close`, so
    ``path`` is either absent or complete; :meth:`abort` (or leaving the context with an error) drops it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._temp = temp_path(self.path)
        self._tar = tarfile.open(self._temp, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed in close()

    def write(self, sample: dict[str, Any]) -> None:
        key = sample["__key__"]
        for ext, payload in sample.items():
            if ext != "__key__":
                self._tar.addfile(_tarinfo(f"{key}.{ext}", len(payload)), io.BytesIO(payload))

    def close(self) -> None:
        try:
            self._tar.close()
            commit_temp(self._temp, self.path)
        finally:  # a close that fails (a full disk) leaves no temporary file either
            self._temp.unlink(missing_ok=True)

    def abort(self) -> None:
        try:
            self._tar.close()
        except OSError:  # the error being handled (a full disk) fails the final flush again: drop it
            pass
        finally:
            self._temp.unlink(missing_ok=True)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
