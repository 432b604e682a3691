"""Scorers that wrap a batch object counter (SAM masks, detections): one shape, one failure policy.

A counter has ``count(images) -> list[int]``, ``describe() -> dict`` and ``to(device)``. The scorer
counts the whole batch at once; if that fails it retries image by image so that only the failing
images get ``None`` and a one-line reason. Out-of-memory errors propagate: the engine halves the batch.

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

from ..errors import ImageError, is_out_of_memory
from .base import Scorer

log = logging.getLogger(__name__)


class CountingScorer(Scorer):
    """Base of counter-backed scorers: ``column`` receives the counts."""

    column: ClassVar[str] = ""
    uses_gpu: ClassVar[bool] = True
    default_batch_size: ClassVar[int] = 8

    def __init__(self, counter: Any):
        self.counter = counter

    def settings(self) -> dict[str, Any]:
        return self.counter.describe()

    def to(self, device: str) -> CountingScorer:
        self.counter.to(device)
        return self

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        try:
            return {self.column: list(self.counter.count(images)), "error": [None] * len(images)}
        except (ImageError, ValueError, RuntimeError) as exc:
            if is_out_of_memory(exc):
                raise
            log.debug("batch failed (%s); scoring its images one by one", exc)
        values: list[int | None] = []
        errors: list[str | None] = []
        for image in images:
            try:
                values.append(self.counter.count([image])[0])
                errors.append(None)
            except (ImageError, ValueError, RuntimeError) as exc:
                if is_out_of_memory(exc):
                    raise
                values.append(None)
                errors.append(getattr(exc, "reason", None) or f"{self.name}: {exc}".splitlines()[0])
        return {self.column: values, "error": errors}
