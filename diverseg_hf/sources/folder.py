"""Folder sources: every entry named like an image gets exactly one record, whatever it is on disk.

The folder is walked recursively in sorted order. An entry is taken when its name has an image
suffix (:data:`diverseg_hf.decode.images.IMAGE_SUFFIXES`, any case), whatever its type: a regular file is
read; a dangling symlink, a symlink loop, a FIFO, a socket or a device gets a record with an error
and is never opened (a FIFO would block the run); an unreadable file says ``permission denied``.
Not taken (counted and logged, never in silence): hidden entries (a name starting with ``.``, as
``datasets`` ignores them; this skips ``.DS_Store``, ``._x.png`` resource forks and the work files of
a dataset folder), entries without an image suffix, directory links into the folder itself or into
a directory already walked (a link loop, or a second way to the same images), and the contents of a
sub-folder that cannot be listed (``unlistable directory (permission denied)``).

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

import errno
import hashlib
import logging
import os
import stat
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..decode.images import IMAGE_SUFFIXES
from ..errors import DiversegError, ImageError
from ..keys import encode_key, suffixed_key
from .base import Record, Source, Unit

logger = logging.getLogger(__name__)

_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


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
                yield Record(key, read_entry(Path(self.root) / rel), rel)
            except ImageError as exc:
                yield Record(key, b"", rel, error=exc.reason)

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


def read_entry(path: Path) -> bytes:
    """The bytes of a regular file; anything else raises :class:`ImageError` without being opened.

    Example:
        >>> read_entry(Path("/no/such.png"))
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ImageError: missing: no such file
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _stat_error(path, exc) from None
    _check_regular(mode)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _stat_error(path, exc) from None
    with os.fdopen(fd, "rb") as fh:
        _check_regular(os.fstat(fh.fileno()).st_mode)  # replaced since the stat: still never read
        try:
            return fh.read()
        except OSError as exc:
            raise ImageError("unreadable", exc.strerror or str(exc)) from None


def _check_regular(mode: int) -> None:
    for test, what in _SPECIAL:
        if test(mode):
            raise ImageError("unsupported", f"{what}, not a regular file (not opened)")
    if not stat.S_ISREG(mode):
        raise ImageError("unsupported", "not a regular file (not opened)")


def _stat_error(path: Path, exc: OSError) -> ImageError:
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return ImageError("missing", f"dangling symlink to {os.readlink(path)}")
        return ImageError("missing", "no such file")
    if exc.errno == errno.ELOOP:
        return ImageError("unreadable", "symlink loop")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ImageError("unreadable", "permission denied")
    return ImageError("unreadable", exc.strerror or str(exc))


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def list_entries(root: Path) -> tuple[list[str], Counter]:
    """Relative paths of the entries a folder source takes (sorted like paths), and what it left out."""
    found: list[str] = []
    skipped: Counter = Counter()
    walked = {os.path.realpath(root)}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            entries = sorted(os.scandir(root / rel_dir), key=lambda e: e.name)
        except OSError as exc:
            if not rel_dir:
                raise DiversegError(f"cannot list {root}: {exc.strerror or exc}") from None
            skipped[f"unlistable directory ({(exc.strerror or str(exc)).lower()})"] += 1
            continue
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.name.startswith("."):
                skipped["hidden"] += 1
            elif _is_dir(entry):
                if _first_visit(entry, walked):
                    stack.append(rel)
                else:
                    skipped["directory link into a walked directory"] += 1
            elif _is_image_name(entry.name):
                found.append(rel)
            else:
                skipped["no image suffix"] += 1
    return sorted(found, key=lambda r: r.split("/")), skipped


def _is_dir(entry: os.DirEntry) -> bool:
    """A directory or a link to one (a dangling link or a link loop is not)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _first_visit(entry: os.DirEntry, walked: set[str]) -> bool:
    """False for a directory link into (or above) the folder or a directory already walked by a link."""
    if not entry.is_symlink():
        return True
    real = os.path.realpath(entry.path)
    if any(_within(real, w) or _within(w, real) for w in walked):
        return False
    walked.add(real)
    return True


def folder_keys(rels: list[str]) -> list[str]:
    """Relative path without suffix, or :func:`~diverseg_hf.keys.suffixed_key` where two files share it."""
    stems = [os.path.splitext(r) for r in rels]
    shared = Counter(stem for stem, _ in stems)
    return [encode_key(stem) if shared[stem] == 1 else suffixed_key(stem, suffix) for stem, suffix in stems]


def open_folder(root: Path, unit_size: int) -> FolderSource:
    rels, skipped = list_entries(root)
    if skipped:
        logger.warning("%s: left out %s", root, ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
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
