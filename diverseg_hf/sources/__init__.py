"""Sources: open a corpus (folder, Parquet, WebDataset tars, Hub dataset) as stable units of records.

See :mod:`.base` for records and units (and the one image-cell unpacker and column check),
:mod:`.folder`, :mod:`.local` and :mod:`.hub` (the one Hub streamer) for each kind, and
:mod:`.published` for the one reader of a published dataset folder (build, export, SR readers).

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp()); _ = (root / "a.b.png").write_bytes(b"x")
    >>> src = open_source(str(root))
    >>> [(r.key, r.data) for u in src.units() for r in u.records()]
    [('a%2Eb', b'x')]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..decode.folders import list_image_entries
from ..errors import DiversegError, check_at_least
from .base import Record, Source, Unit
from .folder import FolderSource, FolderUnit, open_folder
from .hub import HubSource, HubUnit, open_hub_source
from .local import (
    ParquetSource,
    ParquetUnit,
    TarUnit,
    WebDatasetSource,
    files_with_suffix,
    open_parquet,
    open_tars,
)

KINDS = ("folder", "parquet", "webdataset", "hub")
DEFAULT_UNIT_SIZE = 1000
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


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
        if list_image_entries(path)[0]:
            return "folder"
        if files_with_suffix(path, ".parquet"):
            return "parquet"
        if files_with_suffix(path, ".tar"):
            return "webdataset"
        return "folder"  # reported as "no image files found"
    if is_hub_id(spec):
        return "hub"
    raise DiversegError(f"no such file or folder: {spec}")


def is_hub_id(spec: str) -> bool:
    """Whether ``spec`` is spelled like a Hub dataset id (``org/name``), not a local path.

    Example:
        >>> is_hub_id("me/mysubset"), is_hub_id("./data/x"), is_hub_id("a/b/c")
        (True, False, False)
    """
    return bool(_HUB_ID.match(spec)) and not spec.startswith((".", "/", "~"))


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
    check_at_least("unit_size", unit_size)
    kind = kind or detect_kind(spec)
    if kind not in KINDS:
        raise DiversegError(f"unknown source kind {kind!r}; choose from {', '.join(KINDS)}")
    if kind == "hub":
        return open_hub_source(spec, config, split, revision, image_column, key_column)
    path = Path(spec)
    if not path.exists():
        raise DiversegError(f"no such file or folder: {spec}")
    path = path.resolve()
    if kind == "folder":
        if not path.is_dir():
            raise DiversegError(f"{spec}: a folder source must be a directory")
        return open_folder(path, unit_size)
    if kind == "parquet":
        return open_parquet(path, image_column, key_column)
    return open_tars(path)


def reopen_source(description: dict[str, Any]) -> Source:
    """Open the source a score table or selection recorded with :meth:`Source.describe`."""
    kind = description.get("kind")
    spec = description.get("spec")
    if not kind or not spec:
        raise DiversegError("the recorded source description has no kind/spec; pass the source explicitly")
    options = {k: v for k, v in description.items() if k not in ("kind", "spec")}
    allowed = {"unit_size", "config", "split", "revision", "image_column", "key_column"}
    if kind == "hub":
        options.setdefault("key_column", options.pop("id_column", None))  # tables made before 0.2 name it so
    return open_source(spec, kind=kind, **{k: v for k, v in options.items() if k in allowed})


__all__ = [
    "DEFAULT_UNIT_SIZE",
    "KINDS",
    "FolderSource",
    "FolderUnit",
    "HubSource",
    "HubUnit",
    "ParquetSource",
    "ParquetUnit",
    "Record",
    "Source",
    "TarUnit",
    "Unit",
    "WebDatasetSource",
    "detect_kind",
    "is_hub_id",
    "open_source",
    "reopen_source",
]
