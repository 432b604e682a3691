"""Append-only journal of a score table's commits: one self-checking line per committed unit.

Each line is ``<crc32 of the JSON, 8 hex digits> <JSON>``; a line whose checksum or JSON does not hold
(the torn last line of a process killed while appending) is ignored, so a reader sees every entry whose
append finished and nothing else. An append costs the same whatever the number of lines before it; the
owner folds the entries into its manifest and removes the journal (compaction) when it opens the table
for writing and when the table completes, so a torn line is never followed by a new append.

Example:
    >>> import tempfile
    >>> journal = Journal(Path(tempfile.mkdtemp()) / "j")
    >>> journal.append({"unit": "u0"})
    >>> with open(journal.path, "ab") as fh:
    ...     _ = fh.write(b'1234abcd {"unit": "u1"')  # torn by a kill
    >>> journal.entries()
    [{'unit': 'u0'}]
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any


class Journal:
    """The journal file at ``path`` (absent until the first append)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> None:
        """Append ``entry`` as one line in one ``write`` (``O_APPEND``), fsynced before returning."""
        line = encode_line(entry)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def entries(self) -> list[dict[str, Any]]:
        """The entries of every intact line, in order (none when the file is absent)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return [entry for entry in map(decode_line, data.split(b"\n")) if entry is not None]

    def remove(self) -> None:
        """Delete the journal (after its entries were folded into the manifest)."""
        self.path.unlink(missing_ok=True)


def encode_line(entry: dict[str, Any]) -> bytes:
    """One journal line, newline included.

    Example:
        >>> encode_line({"a": 1})
        b'561bacaf {"a":1}\\n'
    """
    payload = json.dumps(entry, separators=(",", ":"), sort_keys=True).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode_line(line: bytes) -> dict[str, Any] | None:
    """The entry of an intact line, or None for a torn, empty or damaged one.

    Example:
        >>> decode_line(encode_line({"a": 1})[:-1]), decode_line(b'561bacaf {"a":2}')
        ({'a': 1}, None)
    """
    head, _, payload = line.partition(b" ")
    if len(head) != 8 or not payload:
        return None
    try:
        if int(head, 16) != zlib.crc32(payload):
            return None
        entry = json.loads(payload)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
