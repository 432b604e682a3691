"""Exceptions of diverseg_hf: misuse raises, per-image problems become recorded reasons.

Example:
    >>> from diverseg_hf.errors import ImageError
    >>> ImageError("truncated", "image file is truncated").reason
    'truncated: image file is truncated'
"""

from __future__ import annotations

import importlib
import sys
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
