"""Image files on disk: the one folder walk and the one rule for reading a file.

**Reading** (:func:`read_file`): only a regular file is opened, and only when its size is at most
``max_bytes`` (default :data:`MAX_FILE_BYTES`), checked from ``stat`` before any byte is read. A
dangling symlink, a symlink loop, a FIFO (it would block the run), a socket, a device (``/dev/zero``
would be read until memory is gone), a directory or a file over the limit raises
:class:`~diverseg_hf.errors.ImageError` without being read.

**Walking** (:func:`list_image_entries`): a folder is walked recursively in sorted order. An entry is
taken when its name has an image suffix (:data:`IMAGE_SUFFIXES`, any case), whatever its type (the
reader then turns a special file into an error). Not taken (counted, never in silence): hidden entries
(a name starting with ``.``, as ``datasets`` ignores them: ``.DS_Store``, ``._x.png`` resource forks,
the work files of a dataset folder), entries without an image suffix, directory links into the folder
itself or into a directory already walked (a link loop, or a second way to the same images), and the
contents of a sub-folder that cannot be listed. ``score``, ``blockiness``, ``calibrate`` and
``quality`` all walk folders with it, so they see the same images.

Example:
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.png", ".hidden.png", "notes.txt", "sub/a.JPG"):
    ...     (root / name).parent.mkdir(exist_ok=True); _ = (root / name).write_bytes(b"x")
    >>> list_image_entries(root)
    (['b.png', 'sub/a.JPG'], Counter({'hidden': 1, 'no image suffix': 1}))
    >>> read_file(root / "b.png", max_bytes=0)
    Traceback (most recent call last):
    ...
    diverseg_hf.errors.ImageError: too-large: 1 bytes exceeds the file size limit of 0 bytes (not read)
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from pathlib import Path

from ..errors import DiversegError, ImageError

logger = logging.getLogger(__name__)

#: File suffixes treated as images when walking folders (compared case-insensitively).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm", ".gif"}
)

#: Default file size limit in bytes (1 GiB): above the largest uncompressed image at the default pixel
#: limit (16-bit RGBA, 8 bytes per pixel: 716 MB), far below what a sparse or endless file would claim.
MAX_FILE_BYTES: int = 1 << 30

_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
            (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a directory"))


def read_file(path: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else raises :class:`ImageError` unread.

    Example:
        >>> read_file("/no/such.png")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ImageError: missing: no such file
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _stat_error(path, exc) from None
    _check_file(st, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _stat_error(path, exc) from None
    with os.fdopen(fd, "rb") as fh:
        _check_file(os.fstat(fh.fileno()), max_bytes)  # replaced since the stat: still never read
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError("unreadable", exc.strerror or str(exc)) from None
    if len(data) > max_bytes:  # grew while being read
        raise ImageError("too-large", f"more than the file size limit of {max_bytes:,} bytes")
    return data


def _check_file(st: os.stat_result, max_bytes: int) -> None:
    for test, what in _SPECIAL:
        if test(st.st_mode):
            raise ImageError("unsupported", f"{what}, not a regular file (not opened)")
    if not stat.S_ISREG(st.st_mode):
        raise ImageError("unsupported", "not a regular file (not opened)")
    if st.st_size > max_bytes:
        raise ImageError("too-large", f"{st.st_size:,} bytes exceeds the file size limit of {max_bytes:,} bytes "
                                      "(not read)")


def _stat_error(path: str | os.PathLike, exc: OSError) -> ImageError:
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return ImageError("missing", f"dangling symlink to {os.readlink(path)}")
        return ImageError("missing", "no such file")
    if exc.errno == errno.ELOOP:
        return ImageError("unreadable", "symlink loop")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ImageError("unreadable", "permission denied")
    return ImageError("unreadable", exc.strerror or str(exc))


def is_image_name(name: str, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> bool:
    """Whether ``name`` has one of ``suffixes`` (default: an image suffix), in any case.

    Example:
        >>> is_image_name("a.JPEG"), is_image_name("a.txt")
        (True, False)
    """
    return os.path.splitext(name)[1].lower() in suffixes


def list_image_entries(root: str | os.PathLike, suffixes: frozenset[str] = IMAGE_SUFFIXES) -> tuple[list[str], Counter]:
    """Relative paths of the entries a folder walk takes (sorted like paths), and what it left out.

    ``suffixes`` (lower case) names what is taken: images by default; the Parquet and tar sources walk
    for their shard files by the same rules.
    """
    root = Path(root)
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
            elif is_image_name(entry.name, suffixes):
                found.append(rel)
            else:
                skipped["no image suffix" if suffixes is IMAGE_SUFFIXES else "other suffix"] += 1
    return sorted(found, key=lambda r: r.split("/")), skipped


def _is_dir(entry: os.DirEntry) -> bool:
    """A directory or a link to one (a dangling link or a link loop is not)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def within(path: str, folder: str) -> bool:
    """Whether the (real) ``path`` is ``folder`` or lies below it.

    Example:
        >>> within("/a/b/c", "/a/b"), within("/a/bc", "/a/b")
        (True, False)
    """
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _first_visit(entry: os.DirEntry, walked: set[str]) -> bool:
    """False for a directory link into (or above) the folder or a directory already walked by a link."""
    if not entry.is_symlink():
        return True
    real = os.path.realpath(entry.path)
    if any(within(real, w) or within(w, real) for w in walked):
        return False
    walked.add(real)
    return True


def walk_images(root: str | os.PathLike) -> list[str]:
    """:func:`list_image_entries` with what was left out logged once (a warning naming each reason).

    Example:
        >>> walk_images("/no/such/folder")
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.DiversegError: cannot list /no/such/folder: No such file or directory
    """
    rels, skipped = list_image_entries(root)
    if skipped:
        logger.warning("%s: left out %s", root, ", ".join(f"{n} {why}" for why, n in sorted(skipped.items())))
    return rels
