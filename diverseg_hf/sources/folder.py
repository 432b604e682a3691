"""Folder sources: every entry named like an image gets exactly one record, whatever it is on disk.

The folder is walked by the one folder walk (:func:`diverseg_hf.decode.folders.list_image_entries`:
image suffixes in any case, hidden entries, entries without an image suffix and link loops left out and
logged) and every entry is read by the one file rule (:func:`diverseg_hf.decode.folders.read_file`): a
regular file within the size limit is read; a dangling symlink, a symlink loop, a FIFO, a socket, a
device or a file over the limit gets a record with an error and is never read.

Keys: the relative path without suffix, or with its suffix marked (``a%40png``) where another file
shares the path without suffix (:func:`diverseg_hf.keys.suffixed_key`): distinct by construction.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("a.png", "a.jpg", "a.png.jpg"): _ = (root / name).write_bytes(b"x")
    >>> [r.key for u in open_folder(root, 10).units() for r in u.records()]
    ['a%40jpg', 'a%40png', 'a%2Epng']
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..decode.folders import read_file, walk_images
from ..errors import DiversegError, ImageError
from ..keys import encode_key, printable_name, suffixed_key
from .base import Record, Source, Unit


@dataclass(frozen=True)
class FolderUnit(Unit):
    root: str = ""
    files: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    def _iter(self, keys: Container[str] | None) -> Iterator[Record]:
        for rel, key in zip(self.files, self.keys):
            if keys is not None and key not in keys:  # skip unread; yields an empty placeholder
                yield Record(key, b"", printable_name(rel))
                continue
            try:
                yield Record(key, read_file(Path(self.root) / rel), printable_name(rel))
            except ImageError as exc:
                yield Record(key, b"", printable_name(rel), error=exc.reason)

    def fingerprint(self) -> str:
        """The unit's fields and each file's size and mtime: a file changed in place gets its unit re-scored."""
        stats = []
        for rel in self.files:
            try:
                st = os.stat(Path(self.root) / rel)
                stats.append((st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append(None)
        return hashlib.sha256(f"{super().fingerprint()} {stats}".encode()).hexdigest()[:16]


class FolderSource(Source):
    kind = "folder"


def folder_keys(rels: list[str]) -> list[str]:
    """Relative path without suffix, or :func:`~diverseg_hf.keys.suffixed_key` where two files share it."""
    stems = [os.path.splitext(r) for r in rels]
    shared = Counter(stem for stem, _ in stems)
    return [encode_key(stem) if shared[stem] == 1 else suffixed_key(stem, suffix) for stem, suffix in stems]


def open_folder(root: Path, unit_size: int) -> FolderSource:
    rels = walk_images(root)
    if not rels:
        raise DiversegError(f"no image files found under {root}")
    keys = folder_keys(rels)
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
