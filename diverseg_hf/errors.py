"""Exceptions of diverseg_hf: misuse raises, per-image problems become recorded reasons.

Example:
    >>> from diverseg_hf.errors import ImageError
    >>> ImageError("truncated", "image file is truncated").reason
    'truncated: image file is truncated'
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator
from types import ModuleType


class DiversegError(Exception):
    """Misuse or an unusable environment: bad arguments, missing files, missing extras."""


class ParameterError(DiversegError):
    """A bad argument; ``param`` names the parameter so that the CLI can name its flag instead.

    Example:
        >>> str(ParameterError("workers", "must be at least 1, got 0"))
        'workers must be at least 1, got 0'
    """

    def __init__(self, param: str, problem: str):
        self.param = param
        self.problem = problem
        super().__init__(f"{param} {problem}")


def check_at_least(param: str, value: int | float, minimum: int = 1) -> None:
    """Raise :class:`ParameterError` unless ``value >= minimum``.

    Example:
        >>> check_at_least("workers", 0)
        Traceback (most recent call last):
        ...
        diverseg_hf.errors.ParameterError: workers must be at least 1, got 0
    """
    if not value >= minimum:
        raise ParameterError(param, f"must be at least {minimum}, got {value}")


class BusyError(DiversegError):
    """Another run is writing the same output folder (see :func:`diverseg_hf.files.folder_lock`)."""


#: What to do about an ``OSError`` of each of these kinds (a full or read-only disk, no permission).
_WRITE_ADVICE = {
    errno.ENOSPC: "free some space and run the command again",
    errno.EDQUOT: "free some space and run the command again",
    errno.EFBIG: "choose a file system that takes larger files",
    errno.EROFS: "choose a writable output folder",
    errno.EACCES: "check its permissions (or choose another output folder)",
    errno.EPERM: "check its permissions (or choose another output folder)",
}


def disk_problem(exc: BaseException) -> str | None:
    """One line for a full, read-only or forbidden disk found in ``exc`` or the exceptions it chains (None if
    it is no such problem).

    Example:
        >>> disk_problem(OSError(errno.ENOSPC, "No space left on device", "/d/x"))
        '/d/x: No space left on device; free some space and run the command again'
        >>> disk_problem(ValueError("x")) is None
        True
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _WRITE_ADVICE:
            where = f"{exc.filename}: " if exc.filename is not None else ""
            return f"{where}{exc.strerror or os.strerror(exc.errno)}; {_WRITE_ADVICE[exc.errno]}"
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return None


class ImageError(DiversegError):
    """One image cannot be scored; ``reason`` is the short text recorded in an ``error`` column.

    ``kind`` is a stable slug ("corrupt", "truncated", "too-large", "unsupported", "empty") so that
    summaries can count errors by kind.
    """

    def __init__(self, kind: str, detail: str = ""):
        self.kind = kind
        self.detail = detail
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class MissingExtraError(DiversegError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a device out-of-memory error (torch's ``OutOfMemoryError`` or any "out of memory" message).

    Example:
        >>> is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
        True
    """
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch else None
    return (oom_type is not None and isinstance(exc, oom_type)) or "out of memory" in str(exc).lower()


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise an error naming the extra that provides it.

    Example:
        >>> require("json", "dev").__name__
        'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is needed here but is not installed: pip install \"diverseg-hf[{extra}]\""
        ) from exc


#: A Hugging Face token anywhere in a text: ``hf_`` and 16+ letters, digits, ``_`` or ``-`` with at least one
#: capital or digit (real tokens are mixed-case; snake_case names such as ``hf_hub_download`` are left alone),
#: and whatever follows ``Bearer`` (an echoed ``Authorization`` header).
_TOKEN_PATTERN = re.compile(r"\bhf_(?=[\w-]*[A-Z0-9])[\w-]{16,}|(?<=Bearer )\S+")
REDACTED = "***"


def known_tokens() -> set[str]:
    """The tokens this process could send: ``HF_TOKEN`` (and its old name), the login and every stored login
    (read from their files: no request is made, not even an OAuth refresh)."""
    found = {os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")}
    try:
        from huggingface_hub import constants, get_stored_tokens

        if os.path.isfile(constants.HF_TOKEN_PATH):
            with open(constants.HF_TOKEN_PATH, encoding="utf-8", errors="replace") as fh:
                found.add(fh.read().strip())
        found.update(get_stored_tokens().values())
    except Exception:  # a broken login cache must not stop an error message from being printed
        pass
    return {t for t in found if t and len(t) >= 8}


def redact(text: str, secrets: Iterable[str | None] = (), known: Iterable[str] | None = None) -> str:
    """``text`` with every ``known`` token (default :func:`known_tokens`), every ``secrets`` and anything that
    looks like a Hugging Face token replaced by ``***``.

    Example:
        >>> redact("401: Authorization: Bearer abc123 sent for hf_AbCdEfGhIjKlMnOpQr; see hf_hub_download")
        '401: Authorization: Bearer *** sent for ***; see hf_hub_download'
        >>> redact("token my-secret-value was refused", secrets=["my-secret-value"])
        'token *** was refused'
    """
    tokens = set(known_tokens() if known is None else known).union(s for s in secrets if s and len(s) >= 8)
    for secret in sorted(tokens, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _TOKEN_PATTERN.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts tokens (see :func:`redact`) from every record it lets through."""

    def __init__(self) -> None:
        super().__init__()
        self.known = known_tokens()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, known=self.known)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


@contextlib.contextmanager
def redacted_logging(*loggers: str) -> Iterator[None]:
    """While inside, every handler of the root logger and of ``loggers`` redacts tokens from what it writes.

    Example:
        >>> with redacted_logging("huggingface_hub"):
        ...     logging.getLogger(__name__).warning("echo: Bearer hf_AbCdEfGhIjKlMnOpQr")  # 'echo: Bearer ***'
    """
    handlers = {h for name in ("", *loggers) for h in logging.getLogger(name or None).handlers}
    redacting = RedactingFilter()
    for handler in handlers:
        handler.addFilter(redacting)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(redacting)
