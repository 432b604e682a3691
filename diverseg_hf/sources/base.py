"""Records, units and sources: the shapes every source kind shares.

A :class:`Record` carries the ORIGINAL encoded bytes of one image (never re-encoded), a unique
dot-free key (see :mod:`diverseg_hf.keys`) and where it came from. A :class:`Source` is split into
:class:`Unit` objects with stable ids and a deterministic order, so that scoring can commit, resume
and divide work per unit.

Example:
    >>> cell_record("k", {"bytes": b"x", "path": "n01/a.JPEG"}, None, "f.parquet#row=0").extra
    {'path': 'n01/a.JPEG'}
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..decode.folders import within
from ..decode.images import read_bytes
from ..errors import DiversegError, ImageError, ParameterError

#: Column names taken for the image when a source does not say which (in this order of preference).
IMAGE_COLUMN_NAMES = ("image", "img", "jpg", "jpeg", "png", "webp")
#: Column names taken for the key when a Parquet source does not say which.
KEY_COLUMN_NAMES = ("key", "__key__")


@dataclass(frozen=True)
class Record:
    """One source image: unique dot-free ``key``, original bytes, ``origin`` reference, extras.

    ``error`` is set when the source could not hand over the bytes (e.g. an image cell holding only a
    path that cannot be read); the engine records it instead of decoding.
    """

    key: str
    data: bytes
    origin: str
    extra: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Unit:
    """A stable slice of a source; picklable, so a worker process can read it by itself.

    ``size`` is the number of records when known without reading them; ``max_records`` caps what
    :meth:`records` yields (used by ``--limit``).
    """

    id: str
    size: int | None
    max_records: int | None = None

    def records(self, keys: Container[str] | None = None) -> Iterator[Record]:
        """The unit's records in order; with ``keys``, only those (others may be skipped unread)."""
        for count, record in enumerate(self._iter(keys)):
            if self.max_records is not None and count >= self.max_records:
                return
            if keys is None or record.key in keys:
                yield record

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """What the unit covers (its fields; files by size and mtime), to detect a changed source."""
        fields = dataclasses.asdict(self)
        if not fields.get("repeats", True):  # units without repeated keys keep their earlier fingerprint
            del fields["repeats"]
        for name in ("path",):
            if fields.get(name):
                st = Path(fields[name]).stat()
                fields[name] = [fields[name], st.st_size, st.st_mtime_ns]
        return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:16]


def cell_record(key: str, value: Any, root: str | os.PathLike | None, origin: str, *, confine: bool = True) -> Record:
    """A record from an image cell: binary, or a ``{bytes, path}`` struct (the path read if no bytes).

    A path-only cell is read only inside ``root`` (the Parquet file's folder, a local dataset folder):
    a relative path is taken from ``root``, and the file it names, symlinks resolved, must lie below
    ``root``; an absolute path, ``..`` or a symlink leading out, or any path where ``root`` is None (a
    dataset streamed from the Hub), is an error record and nothing is read. The file itself is read
    by the one file rule (:func:`~diverseg_hf.decode.folders.read_file`: regular files within the size
    limit only). ``confine=False`` reads a path where it points (relative to the working folder), for
    the ``datasets`` objects a caller hands over (their paths are the caller's own, and ``datasets``
    reads them so too). The cell's ``path`` (the original file name, e.g. ImageNet's) is kept in
    ``extra["path"]``. This is the one image-cell unpacker: sources, published folders and the SR
    readers all unpack cells here.

    Example:
        >>> cell_record("k", {"bytes": None, "path": "/etc/passwd"}, "/data", "f.parquet#row=0").error
        "refused: image cell path '/etc/passwd' lies outside the source folder /data (not read)"
    """
    if isinstance(value, (bytes, bytearray)):
        return Record(key, bytes(value), origin)
    if not isinstance(value, dict):
        return Record(key, b"", origin, error="unsupported: image cell is neither bytes nor {bytes, path}")
    path = value.get("path")
    extra = {"path": path} if path else {}
    if value.get("bytes"):
        return Record(key, bytes(value["bytes"]), origin, extra)
    if not path:
        return Record(key, b"", origin, extra, error="empty: image cell has neither bytes nor a path")
    try:
        return Record(key, read_bytes(confined_path(path, root) if confine else path), origin, extra)
    except ImageError as exc:
        return Record(key, b"", origin, extra, error=exc.reason if exc.kind == "refused" else
                      f"unreadable: image cell holds only the path {path!r} ({exc.reason})")


def confined_path(path: str, root: str | os.PathLike | None) -> Path:
    """The file an image cell's ``path`` names inside ``root``; :class:`ImageError` ``refused`` outside it.

    Example:
        >>> confined_path("../x", "/d")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ImageError: refused: image cell path '../x' lies outside the source folder /d (not read)
    """
    if root is None:
        raise ImageError("refused", f"image cell holds only the path {path!r}: path cells are read only inside a "
                                    "local source folder (not read)")
    candidate = Path(root) / path  # an absolute path replaces root
    if "://" in path or not within(os.path.realpath(candidate), os.path.realpath(root)):
        raise ImageError("refused", f"image cell path {path!r} lies outside the source folder {root} (not read)")
    return candidate


def check_image_column(columns: dict[str, bool], given: str | None, where: str) -> str:
    """The one column check: the image column among ``columns`` (name -> whether its type holds images).

    A ``given`` column must exist; else the first of :data:`IMAGE_COLUMN_NAMES` among the image-typed
    columns, else the first image-typed column. Parquet files, Hub datasets, published folders and
    ``datasets`` objects handed to the SR readers are all checked here.

    Example:
        >>> check_image_column({"key": False, "jpg": True, "image": True}, None, "f.parquet")
        'image'
        >>> check_image_column({"key": False}, "img", "f.parquet")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: image_column 'img' is not a column of f.parquet (columns: key)
    """
    if given is not None:
        if given not in columns:
            names = ", ".join(columns)
            raise ParameterError("image_column", f"{given!r} is not a column of {where} (columns: {names})")
        return given
    images = [name for name, is_image in columns.items() if is_image]
    for name in IMAGE_COLUMN_NAMES:
        if name in images:
            return name
    if images:
        return images[0]
    raise DiversegError(f"{where}: no image column (binary or struct<bytes, path>) among {list(columns)}")


def arrow_image_columns(schema: pa.Schema) -> dict[str, bool]:
    """Each column of an Arrow schema -> whether it can hold encoded images (binary or struct<bytes, ...>)."""
    def is_image(t: pa.DataType) -> bool:
        return pa.types.is_binary(t) or pa.types.is_large_binary(t) or (
            pa.types.is_struct(t) and t.get_field_index("bytes") >= 0
        )

    return {f.name: is_image(f.type) for f in schema}


class Source:
    """A corpus split into units; ``describe()`` is what score tables record about it."""

    kind: str = ""

    def __init__(self, spec: str, units: list[Unit], options: dict[str, Any]):
        self.spec = spec
        self._units = units
        self.options = options

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description: enough to reopen the source with :func:`open_source`."""
        return {"kind": self.kind, "spec": self.spec, **self.options}

    def units(self, limit: int | None = None) -> list[Unit]:
        """Units in order; with ``limit``, only enough to cover the first ``limit`` records.

        A unit of unknown size (Hub shards) is capped at the remaining count and ends the list.
        """
        if limit is None:
            return list(self._units)
        out: list[Unit] = []
        left = limit
        for unit in self._units:
            if left <= 0:
                break
            if unit.size is not None and unit.size <= left:
                out.append(unit)
                left -= unit.size
                continue
            out.append(dataclasses.replace(unit, max_records=left))
            break
        return out
