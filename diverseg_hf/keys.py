"""Reversible, dot-free record keys, unique by construction.

WebDataset splits a tar member name at the first dot of its base name, so a key must contain no
dot. :func:`encode_key` percent-escapes ``%`` and ``.`` only; everything else (including ``/``) is
kept, so keys stay readable. Since every ``%`` of an encoded name is followed by ``25``, ``2E`` or a
byte of a non-UTF-8 name (``80`` to ``FF``, see below),
the other escapes below can never come out of :func:`encode_key`; they mark keys a source had to
make unique:

- ``%40`` + suffix: a file whose name without suffix another file of the folder shares
  (``a.png`` and ``a.jpg`` are ``a%40png`` and ``a%40jpg``; ``a.png.jpg`` is ``a%2Epng``);
- ``%23`` + n: the n-th time (n >= 2) a source repeats a key (a second tar member ``dup.png`` is
  ``dup%232``);
- ``%3F``: an empty path segment (a tar member named ``.png`` has the key ``%3F``).

A file name that is not valid UTF-8 reaches Python with its bad bytes as lone surrogates
(``os.fsdecode``'s ``surrogateescape``): :func:`encode_key` writes each such byte as ``%XX`` (``80`` to
``FF``, never made by the escapes above), so the key is valid UTF-8, unique, and decodes back to the
same name (the file ``b"bad\\xff.png"`` has the key ``bad%FF%2Epng``). :func:`printable_name` does the same for the
names written beside keys (origins, TSV paths).

:func:`decode_key` turns a key back into the name it was made from (``%40`` reads as the dot it
replaced; a repeat mark is dropped, giving the key the source repeated).

Example:
    >>> encode_key("n01440764/n01440764_18.v2")
    'n01440764/n01440764_18%2Ev2'
    >>> decode_key(encode_key("50%.off"))
    '50%.off'
    >>> suffixed_key("a", ".png"), repeated_key("dup", 2), decode_key(repeated_key("dup", 2))
    ('a%40png', 'dup%232', 'dup')
"""

from __future__ import annotations

import re

from .errors import DiversegError

SUFFIX_MARK = "%40"
REPEAT_MARK = "%23"
EMPTY_SEGMENT = "%3F"
_RAW_BYTE = re.compile("[\udc80-\udcff]")  # a byte of a non-UTF-8 file name, surrogate-escaped
_ESCAPE = re.compile("%(25|2E|[89A-F][0-9A-F])")


def encode_key(raw: str) -> str:
    """Escape ``%`` and ``.`` so the key has no dot and can be decoded back exactly."""
    if not raw:
        raise DiversegError("a record key must not be empty")
    return printable_name(raw.replace("%", "%25").replace(".", "%2E"))


def printable_name(name: str) -> str:
    """``name`` with each surrogate-escaped byte of a non-UTF-8 file name written ``%XX``: always encodable.

    Example:
        >>> import os
        >>> printable_name(os.fsdecode(b"bad\\xff.png"))
        'bad%FF.png'
    """
    return _RAW_BYTE.sub(lambda m: f"%{ord(m.group()) - 0xDC00:02X}", name)


def decode_key(key: str) -> str:
    """Invert :func:`encode_key` (and the marks of :func:`suffixed_key`, :func:`repeated_key`, :func:`path_key`).

    Example:
        >>> decode_key("a%2Eb%25c")
        'a.b%c'
    """
    key = key.split(REPEAT_MARK, 1)[0]
    key = key.replace(EMPTY_SEGMENT, "").replace(SUFFIX_MARK, ".")
    return _ESCAPE.sub(_unescape, key)


def _unescape(match: re.Match) -> str:
    code = match.group(1)
    return {"25": "%", "2E": "."}.get(code) or chr(0xDC00 + int(code, 16))


def suffixed_key(stem: str, suffix: str) -> str:
    """The key of a file whose ``stem`` (name without suffix) another file of its folder shares.

    Example:
        >>> suffixed_key("x.png", ".jpg")
        'x%2Epng%40jpg'
    """
    return encode_key(stem) + SUFFIX_MARK + encode_key(suffix.lstrip(".") or "_")


def repeated_key(key: str, occurrence: int) -> str:
    """The key of the ``occurrence``-th (>= 2) record of a source with the same ``key``."""
    return key if occurrence <= 1 else f"{key}{REPEAT_MARK}{occurrence}"


def path_key(raw: str) -> str:
    """A relative, non-empty key from a member path: no leading ``/``, no empty or ``.`` segments,
    ``..`` segments escaped (``%2E%2E``), an empty name marked ``%3F``.

    Example:
        >>> path_key("/abs//x/./../y"), path_key(""), path_key("dir/")
        ('abs/x/%2E%2E/y', '%3F', 'dir/%3F')
    """
    parts = raw.split("/")
    last = parts[-1]
    segments = [p for p in parts[:-1] if p not in ("", ".")]
    segments = [encode_key(p) for p in segments]
    segments.append(encode_key(last) if last else EMPTY_SEGMENT)
    return "/".join(segments)


class KeyCounter:
    """Makes a source's keys unique in order: the n-th time a key comes, it becomes ``repeated_key(key, n)``.

    ``earlier`` holds how often keys came before (in earlier units), so that units can be read apart.

    Example:
        >>> unique = KeyCounter({"b": 1})
        >>> [unique(k) for k in ("a", "a", "b", "a")]
        ['a', 'a%232', 'b%232', 'a%233']
    """

    def __init__(self, earlier: dict[str, int] | None = None):
        self.seen: dict[str, int] = dict(earlier or {})

    def __call__(self, key: str) -> str:
        count = self.seen.get(key, 0) + 1
        self.seen[key] = count
        return repeated_key(key, count)


def earlier_counts(keys_per_unit: list[list[str]]) -> list[tuple[tuple[str, int], ...]]:
    """For each unit, the keys it shares with earlier units and how often they came before (sorted).

    Example:
        >>> earlier_counts([["a", "b"], ["c"], ["a", "c", "a"]])
        [(), (), (('a', 1), ('c', 1))]
    """
    seen: dict[str, int] = {}
    out = []
    for keys in keys_per_unit:
        out.append(tuple(sorted((k, seen[k]) for k in set(keys) if k in seen)))
        for k in keys:
            seen[k] = seen.get(k, 0) + 1
    return out
