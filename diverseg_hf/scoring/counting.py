"""Scorers that wrap a batch object counter (SAM masks, detections): one shape, one failure policy.

A counter has ``count(images) -> list[int]``, ``describe() -> dict``, ``to(device)`` and optionally
``halve_batches() -> bool``. The scorer counts the whole batch at once; if that fails it retries image
by image so that only the failing images get ``None`` and a one-line reason. On an out-of-memory error
the counter's own batches (prompts per decoder call, images per model call) are halved and the call
retried; once they are all 1 the error propagates and the engine halves the images per call.

Example:
    >>> import numpy as np
    >>> class Pixels:
    ...     def count(self, images): return [int(im.shape[0] * im.shape[1]) for im in images]
    ...     def describe(self): return {}
    ...     def to(self, device): return self
    >>> class PixelScorer(CountingScorer):
    ...     name, column = "pixels", "pixels"
    ...     columns = {"pixels": "int32"}
    >>> PixelScorer(Pixels())([np.zeros((2, 3, 3), np.uint8)])
    {'pixels': [6], 'error': [None]}
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from ..errors import DiversegError, ImageError, is_out_of_memory
from .base import Scorer

log = logging.getLogger(__name__)


class CountingScorer(Scorer):
    """Base of counter-backed scorers: ``column`` receives the counts."""

    column: ClassVar[str] = ""
    uses_gpu: ClassVar[bool] = True
    default_batch_size: ClassVar[int] = 8

    def __init__(self, counter: Any, batch_size: int | None = None):
        if batch_size is not None and batch_size < 1:
            raise DiversegError("batch_size must be >= 1")
        self.counter = counter
        if batch_size is not None:
            self.default_batch_size = batch_size  # images per call the engine should use

    def settings(self) -> dict[str, Any]:
        return {**self.counter.describe(), "batch_size": self.default_batch_size}

    def _count(self, images: list[np.ndarray]) -> list[int]:
        """``counter.count``, halving the counter's batches on out-of-memory errors while it can."""
        while True:
            try:
                return list(self.counter.count(images))
            except RuntimeError as exc:
                halve = getattr(self.counter, "halve_batches", None)
                if not is_out_of_memory(exc) or halve is None or not halve():
                    raise
                log.warning("%s: out of memory; counter batches halved to %s", self.name, self.counter.describe())

    def to(self, device: str) -> CountingScorer:
        self.counter.to(device)
        return self

    def load(self) -> CountingScorer:
        load = getattr(self.counter, "load", None)
        if load is not None:
            load()
        return self

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        try:
            return {self.column: self._count(images), "error": [None] * len(images)}
        except (ImageError, ValueError, RuntimeError) as exc:
            if is_out_of_memory(exc):
                raise
            log.debug("batch failed (%s); scoring its images one by one", exc)
        values: list[int | None] = []
        errors: list[str | None] = []
        for image in images:
            try:
                values.append(self._count([image])[0])
                errors.append(None)
            except (ImageError, ValueError, RuntimeError) as exc:
                if is_out_of_memory(exc):
                    raise
                values.append(None)
                errors.append(getattr(exc, "reason", None) or f"{self.name}: {exc}".splitlines()[0])
        return {self.column: values, "error": errors}
