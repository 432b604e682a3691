"""Reversible, dot-free record keys.

WebDataset splits a tar member name at the first dot of its base name, so a key must contain no
dot. Keys are encoded by percent-escaping ``%`` and ``.`` only; everything else (including ``/``)
is kept, so keys stay readable.

Example:
    >>> encode_key("n01440764/n01440764_18.v2")
    'n01440764/n01440764_18%2Ev2'
    >>> decode_key(encode_key("50%.off"))
    '50%.off'
"""

from __future__ import annotations

from .errors import DiversegError


def encode_key(raw: str) -> str:
    """Escape ``%`` and ``.`` so the key has no dot and can be decoded back exactly."""
    if not raw:
        raise DiversegError("a record key must not be empty")
    return raw.replace("%", "%25").replace(".", "%2E")


def decode_key(key: str) -> str:
    """Invert :func:`encode_key`.

    Example:
        >>> decode_key("a%2Eb%25c")
        'a.b%c'
    """
    return key.replace("%2E", ".").replace("%25", "%")
