"""Atomic file writes: a file is either absent, the old version, or complete, never half written.

Every writer goes through a temporary file beside its target (named ``.NAME.<random>.tmp``, matched by
:data:`TEMP_GLOB` so that leftovers of killed runs can be swept), fsynced and renamed into place.

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_json_atomic(folder / "a" / "info.json", {"n": 1})
    >>> (folder / "a" / "info.json").read_text()
    '{\\n  "n": 1\\n}\\n'
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ParameterError

#: Glob of the temporary files :func:`write_atomic` leaves behind when its process is killed.
TEMP_GLOB = ".*.tmp"


def write_atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write via ``write(fileobj)`` to a temporary file beside ``path``, fsync, rename into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    write_atomic(path, lambda fh: fh.write(data))


def write_json_atomic(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Atomically write ``payload`` as indented JSON."""
    write_atomic(path, lambda fh: fh.write(json.dumps(payload, indent=2) + "\n"), "w")


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: some filesystems refuse fsync on folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_output_dir(param: str, path: str | os.PathLike) -> None:
    """Refuse (``ParameterError``) an output folder that is a file or lies under one, before any work.

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "f"; _ = file.write_text("x")
        >>> check_output_dir("out", file / "sub")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: out .../f/sub cannot be a folder: .../f is a file
    """
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists() or place.is_symlink():
            if not place.is_dir():
                what = "is a file" if place.is_file() else "exists and is not a folder"
                raise ParameterError(param, f"{path} cannot be a folder: {place} {what}")
            return
