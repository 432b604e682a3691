"""Atomic file writes: a file is either absent, the old version, or complete, never half written.

Every writer goes through a temporary file beside its target (named ``.NAME.<random>.tmp``, matched by
:data:`TEMP_GLOB` so that leftovers of killed runs can be swept), fsynced and renamed into place; a write
that fails (a full disk) removes its temporary file. Output folders are checked before any work
(:func:`check_output_dir`: not a file, not inside or around an input) and held by one writer at a time
(:func:`folder_lock`, :func:`holds_lock`).

Example:
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_json_atomic(folder / "a" / "info.json", {"n": 1})
    >>> (folder / "a" / "info.json").read_text()
    '{\\n  "n": 1\\n}\\n'
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import inspect
import json
import os
import re
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import BusyError, ParameterError

#: Glob of the temporary files :func:`write_atomic` leaves behind when its process is killed.
TEMP_GLOB = ".*.tmp"
_TEMP_NAME = re.compile(r"^\.(.+)\.[0-9a-f]{12}\.tmp$", re.DOTALL)
#: The lock file a writer holds in its output folder (see :func:`folder_lock`).
LOCK_NAME = ".diverseg.lock"


def write_atomic(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write via ``write(fileobj)`` to a temporary file beside ``path``, fsync, rename into place."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, mode) as fh:
            write(fh)
        commit_temp(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary file name beside ``path`` (its folder created), matched by :data:`TEMP_GLOB`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def temp_target(temp: str | os.PathLike) -> str | None:
    """The name of the file a temporary file of :func:`temp_path` was for (None: not one of ours).

    Example:
        >>> temp_target(temp_path("/tmp/x/a.png")), temp_target("/tmp/.other.tmp")
        ('a.png', None)
    """
    match = _TEMP_NAME.match(Path(temp).name)
    return match.group(1) if match else None


def commit_temp(tmp: Path, path: str | os.PathLike) -> None:
    """Fsync the closed temporary file ``tmp`` and rename it to ``path`` (for writers that stream into it)."""
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(Path(path).parent)


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


def check_output_dir(param: str, path: str | os.PathLike, inputs: Mapping[str, Any] | None = None) -> None:
    """Refuse (``ParameterError``) an output folder that is a file or lies under one, or that is, lies inside
    or holds one of the local ``inputs`` (``{"source": path}``; None or non-local paths are skipped),
    before any work: a run must never read its own output back as input.

    Example:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "f"; _ = file.write_text("x")
        >>> check_output_dir("out", file / "sub")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: out .../f/sub cannot be a folder: .../f is a file
        >>> check_output_dir("out", file.parent / "ds", {"source": file.parent})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: out .../ds lies inside the source folder ...; choose a folder outside it
    """
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists() or place.is_symlink():
            if not place.is_dir():
                what = "is a file" if place.is_file() else "exists and is not a folder"
                raise ParameterError(param, f"{path} cannot be a folder: {place} {what}")
            break
    target = path.resolve()
    for label, item in (inputs or {}).items():
        if item is None or not Path(item).exists():
            continue
        source = Path(item).resolve()
        label = f"{label} {'folder' if source.is_dir() else 'file'}"
        if target == source or source in target.parents:
            raise ParameterError(param, f"{path} lies inside the {label} {source}; choose a folder outside it")
        if target in source.parents:
            raise ParameterError(param, f"{path} holds the {label} {source}; choose a folder outside it")


def check_output_file(param: str, path: str | os.PathLike) -> None:
    """Refuse (``ParameterError``) an output file that is a folder or whose folder cannot be one, before any work.

    Example:
        >>> import tempfile
        >>> check_output_file("output", tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: output ... is a folder; give a file name
    """
    path = Path(path)
    if path.is_dir():
        raise ParameterError(param, f"{path} is a folder; give a file name")
    check_output_dir(param, path.parent)


#: Locks this process holds: resolved lock file -> [open descriptor, nesting depth].
_HELD: dict[Path, list[int]] = {}


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, param: str = "out") -> Iterator[Path]:
    """Hold the writer's lock of ``folder`` while inside: one run writes a folder at a time.

    The lock is the file :data:`LOCK_NAME` in ``folder`` with the holder's pid and command line, locked
    with ``flock``: the kernel frees it when the holder ends in any way, so a lock left by a killed run
    is never in force (its file is taken over). A second run raises :class:`~diverseg_hf.errors.BusyError`
    naming the holder; the same process may nest. ``folder`` is checked (:func:`check_output_dir`) and
    created; on leaving, the lock file is removed, and so is ``folder`` if this call made it and it is
    empty (a run refused before writing leaves nothing).

    Example:
        >>> import tempfile
        >>> with folder_lock(Path(tempfile.mkdtemp()) / "ds") as lock:
        ...     lock.name
        '.diverseg.lock'
    """
    check_output_dir(param, folder)
    folder = Path(folder)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = (folder / LOCK_NAME).resolve()
    held = _HELD.get(lock)
    if held is None:
        _HELD[lock] = held = [_take(lock, folder), 0]
    held[1] += 1
    try:
        yield lock
    finally:
        held[1] -= 1
        if held[1] == 0:
            del _HELD[lock]
            lock.unlink(missing_ok=True)
            os.close(held[0])
            if made:
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _take(lock: Path, folder: Path) -> int:
    """Open and ``flock`` the lock file (retrying when its holder removed it meanwhile), write who holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "starting"
            os.close(fd)
            raise BusyError(f"{folder} is being written by another run ({holder}); "
                            "let it finish (or stop it), then run again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file between our open and flock: take the new one
    os.ftruncate(fd, 0)
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    os.write(fd, f"pid {os.getpid()}, since {started}: {shlex.join(['diverseg', *sys.argv[1:]])}\n".encode())
    return fd


def holds_lock(param: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: a call of the decorated function holds :func:`folder_lock` of its folder argument ``param``.

    Example:
        >>> @holds_lock("out")
        ... def write(out):
        ...     return (Path(out) / LOCK_NAME).exists()
        >>> import tempfile; write(tempfile.mkdtemp())
        True
    """

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def locked(*args: Any, **kwargs: Any) -> Any:
            with folder_lock(signature.bind(*args, **kwargs).arguments[param], param):
                return function(*args, **kwargs)

        return locked

    return decorate
