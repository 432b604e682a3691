"""Sources: open a corpus as stable units of records ``{key, data, origin, extra}``.

A record carries the ORIGINAL encoded bytes of one image (never re-encoded), a unique dot-free key
(see :mod:`diverseg_hf.keys`), and where it came from. A source is split into units with stable ids
and a deterministic order, so that scoring can commit, resume and divide work per unit:

- ``folder``: image files found recursively, sorted, chunked into units of ``unit_size`` files;
  key = relative path without suffix.
- ``parquet``: ``.parquet`` files (one unit each) with an image column typed ``struct<bytes, path>``
  (the ``datasets`` Image feature) or binary; key = a ``key``/``__key__`` column or file + row.
- ``webdataset``: ``.tar`` shards (one unit each); key = the sample's ``__key__``.
- ``hub``: a Hugging Face dataset id (or a local dataset folder) read with
  ``datasets.load_dataset(..., streaming=True)``; one unit per dataset shard; key = an id column or
  shard + row. ``HF_ENDPOINT`` is honoured by ``datasets`` itself.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "a.b.png").write_bytes(b"x")
    >>> src = open_source(str(root))
    >>> [(r.key, r.data) for u in src.units() for r in u.records()]
    [('a%2Eb', b'x')]
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tarfile
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DiversegError, ImageError
from .images import IMAGE_SUFFIXES, find_image_files, read_bytes
from .keys import encode_key

KINDS = ("folder", "parquet", "webdataset", "hub")
DEFAULT_UNIT_SIZE = 1000
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_IMAGE_COLUMN_NAMES = ("image", "img", "jpg", "jpeg", "png", "webp")


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
        for name in ("path",):
            if fields.get(name):
                st = Path(fields[name]).stat()
                fields[name] = [fields[name], st.st_size, st.st_mtime_ns]
        return hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:16]


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
        pf = pq.ParquetFile(self.path)
        image_col = self.image_column or _guess_image_column(pf.schema_arrow, self.path)
        key_col = self.key_column or next((c for c in ("key", "__key__") if c in pf.schema_arrow.names), None)
        columns = [image_col] + ([key_col] if key_col else [])
        row = 0
        for batch in pf.iter_batches(batch_size=256, columns=columns):
            images = batch.column(image_col).to_pylist()
            raw_keys = batch.column(key_col).to_pylist() if key_col else [None] * len(images)
            for value, raw_key in zip(images, raw_keys):
                key = encode_key(str(raw_key)) if raw_key is not None else encode_key(f"{self.label}/{row:08d}")
                yield _cell_record(key, value, Path(self.path).parent, f"{self.label}.parquet#row={row}")
                row += 1


@dataclass(frozen=True)
class TarUnit(Unit):
    path: str = ""
    label: str = ""

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        with tarfile.open(self.path, "r:*") as tar:
            for raw_key, member in _tar_samples(tar):
                key = encode_key(raw_key)
                data = b"" if member is None else tar.extractfile(member).read()  # type: ignore[union-attr]
                name = member.name if member is not None else raw_key
                yield Record(key, data, f"{self.label}.tar#{name}")


@dataclass(frozen=True)
class HubUnit(Unit):
    dataset: str = ""
    config: str | None = None
    split: str = "train"
    revision: str | None = None
    shard: int = 0
    num_shards: int = 1
    image_column: str | None = None
    id_column: str | None = None

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        ds, image_col = _open_hub(self.dataset, self.config, self.split, self.revision, self.image_column)
        if self.num_shards > 1:
            ds = ds.shard(num_shards=self.num_shards, index=self.shard)
        for row, example in enumerate(ds):
            raw_key = example.get(self.id_column) if self.id_column else None
            key = encode_key(str(raw_key)) if raw_key is not None else f"{self.shard:05d}-{row:08d}"
            origin = f"{self.dataset}:{self.split}#shard={self.shard}&row={row}"
            yield _cell_record(key, example[image_col], None, origin)


def _cell_record(key: str, value: Any, base: Path | None, origin: str) -> Record:
    """A record from an image cell: binary, or a ``{bytes, path}`` struct (the path read if no bytes).

    The cell's ``path`` (the original file name, e.g. ImageNet's) is kept in ``extra["path"]``.
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
    candidate = Path(path) if base is None or Path(path).is_absolute() else base / path
    try:
        return Record(key, read_bytes(candidate), origin, extra)
    except ImageError as exc:
        return Record(key, b"", origin, extra, error=f"unreadable: image cell holds only the path {path!r} "
                      f"({exc.reason}); paths into archives or remote files are not supported")


def _guess_image_column(schema: pa.Schema, where: str) -> str:
    def is_image(t: pa.DataType) -> bool:
        return pa.types.is_binary(t) or pa.types.is_large_binary(t) or (
            pa.types.is_struct(t) and t.get_field_index("bytes") >= 0
        )

    candidates = [f.name for f in schema if is_image(f.type)]
    for name in _IMAGE_COLUMN_NAMES:
        if name in candidates:
            return name
    if candidates:
        return candidates[0]
    raise DiversegError(f"{where}: no image column (binary or struct<bytes, path>) among {schema.names}")


def _tar_samples(tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo | None]]:
    """(``__key__``, image member or None) per sample: consecutive members sharing a key."""
    current: str | None = None
    image: tarfile.TarInfo | None = None
    for member in tar:
        if not member.isfile():
            continue
        base = os.path.basename(member.name)
        if "." not in base:
            continue
        key = os.path.join(os.path.dirname(member.name), base.split(".", 1)[0])
        if key != current:
            if current is not None:
                yield current, image
            current, image = key, None
        if image is None and "." + base.rsplit(".", 1)[-1].lower() in IMAGE_SUFFIXES:
            image = member
    if current is not None:
        yield current, image


def _open_hub(dataset: str, config: str | None, split: str, revision: str | None, image_column: str | None):
    import datasets

    try:
        ds = datasets.load_dataset(dataset, config, split=split, streaming=True, revision=revision)
    except Exception as exc:
        raise DiversegError(f"cannot open dataset {dataset!r}: {type(exc).__name__}: {exc}") from exc
    features = ds.features or {}
    col = image_column
    if col is None:
        images = [n for n, f in features.items() if isinstance(f, datasets.Image)]
        col = images[0] if images else next((n for n in _IMAGE_COLUMN_NAMES if n in features), None)
    if col is None or col not in features:
        raise DiversegError(f"dataset {dataset!r} has no image column (columns: {list(features)})")
    if isinstance(features[col], datasets.Image):
        ds = ds.cast_column(col, datasets.Image(decode=False))
    return ds, col


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


class FolderSource(Source):
    kind = "folder"


class ParquetSource(Source):
    kind = "parquet"


class WebDatasetSource(Source):
    kind = "webdataset"


class HubSource(Source):
    kind = "hub"


def _folder_keys(rels: list[str]) -> list[str]:
    """Relative path without suffix, or with it where two files would share a key."""
    stems = [os.path.splitext(r)[0] for r in rels]
    seen: dict[str, int] = {}
    for stem in stems:
        seen[stem] = seen.get(stem, 0) + 1
    return [encode_key(stem if seen[stem] == 1 else rel) for stem, rel in zip(stems, rels)]


def _open_folder(root: Path, unit_size: int) -> FolderSource:
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


def _files_with_suffix(path: Path, suffix: str) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())


def _open_parquet(path: Path, image_column: str | None, key_column: str | None) -> ParquetSource:
    files = _files_with_suffix(path, ".parquet")
    if not files:
        raise DiversegError(f"no .parquet files found under {path}")
    base = path if path.is_dir() else path.parent
    units: list[Unit] = []
    for i, file in enumerate(files):
        try:
            rows = pq.ParquetFile(file).metadata.num_rows
        except Exception as exc:
            raise DiversegError(f"{file}: not a readable Parquet file ({exc})") from exc
        label = file.relative_to(base).with_suffix("").as_posix()
        units.append(ParquetUnit(f"parquet-{i:05d}", rows, path=str(file), label=label,
                                 image_column=image_column, key_column=key_column))
    options = {"image_column": image_column, "key_column": key_column}
    return ParquetSource(str(path), units, options)


def _open_tars(path: Path) -> WebDatasetSource:
    files = _files_with_suffix(path, ".tar")
    if not files:
        raise DiversegError(f"no .tar files found under {path}")
    base = path if path.is_dir() else path.parent
    units: list[Unit] = []
    for i, file in enumerate(files):
        try:
            with tarfile.open(file, "r:*") as tar:
                size = sum(1 for _ in _tar_samples(tar))
        except (tarfile.TarError, OSError) as exc:
            raise DiversegError(f"{file}: not a readable tar file ({exc})") from exc
        label = file.relative_to(base).with_suffix("").as_posix()
        units.append(TarUnit(f"tar-{i:05d}", size, path=str(file), label=label))
    return WebDatasetSource(str(path), units, {})


def _open_hub_source(spec: str, config: str | None, split: str, revision: str | None,
                     image_column: str | None, id_column: str | None) -> HubSource:
    dataset = spec.removeprefix("hf://datasets/").removeprefix("hf://")
    ds, image_col = _open_hub(dataset, config, split, revision, image_column)
    shards = max(int(ds.num_shards), 1)
    units: list[Unit] = [
        HubUnit(f"shard-{i:05d}", None, dataset=dataset, config=config, split=split, revision=revision,
                shard=i, num_shards=shards, image_column=image_col, id_column=id_column)
        for i in range(shards)
    ]
    options = {"config": config, "split": split, "revision": revision, "image_column": image_col,
               "id_column": id_column}
    return HubSource(dataset, units, options)


def detect_kind(spec: str) -> str:
    """Guess the source kind of ``spec`` (see :data:`KINDS`); raises for a missing local path.

    Example:
        >>> detect_kind("ILSVRC/imagenet-1k")
        'hub'
    """
    if spec.startswith("hf://"):
        return "hub"
    path = Path(spec)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            return "parquet"
        if suffix == ".tar":
            return "webdataset"
        raise DiversegError(f"{spec}: a source file must be .parquet or .tar; give a folder for images")
    if path.is_dir():
        if find_image_files([path]):
            return "folder"
        if _files_with_suffix(path, ".parquet"):
            return "parquet"
        if _files_with_suffix(path, ".tar"):
            return "webdataset"
        return "folder"  # reported as "no image files found"
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return "hub"
    raise DiversegError(f"no such file or folder: {spec}")


def open_source(
    spec: str,
    *,
    kind: str | None = None,
    unit_size: int = DEFAULT_UNIT_SIZE,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    image_column: str | None = None,
    key_column: str | None = None,
) -> Source:
    """Open a folder, Parquet file(s), tar shard(s) or Hub dataset as a :class:`Source`.

    ``key_column`` names the id column (Parquet ``key`` / ``__key__`` are found by themselves;
    for Hub datasets keys default to shard + row).

    Example:
        >>> open_source("/no/such/folder")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: no such file or folder: /no/such/folder
    """
    if unit_size < 1:
        raise DiversegError("unit size must be at least 1")
    kind = kind or detect_kind(spec)
    if kind not in KINDS:
        raise DiversegError(f"unknown source kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "hub":
        return _open_hub_source(spec, config, split, revision, image_column, key_column)
    path = Path(spec)
    if not path.exists():
        raise DiversegError(f"no such file or folder: {spec}")
    path = path.resolve()
    if kind == "folder":
        if not path.is_dir():
            raise DiversegError(f"{spec}: a folder source must be a directory")
        return _open_folder(path, unit_size)
    if kind == "parquet":
        return _open_parquet(path, image_column, key_column)
    return _open_tars(path)


def reopen_source(description: dict[str, Any]) -> Source:
    """Open the source a score table or selection recorded with :meth:`Source.describe`."""
    kind = description.get("kind")
    spec = description.get("spec")
    if not kind or not spec:
        raise DiversegError("the recorded source description has no kind/spec; pass the source explicitly")
    options = {k: v for k, v in description.items() if k not in ("kind", "spec")}
    allowed = {"unit_size", "config", "split", "revision", "image_column", "key_column"}
    if kind == "hub":
        options["key_column"] = options.pop("id_column", None)
    return open_source(spec, kind=kind, **{k: v for k, v in options.items() if k in allowed})
