"""Scorers that wrap a batch object counter (SAM masks, detections): one shape.

A counter has ``count(images) -> list[int]``, ``describe() -> dict``, ``to(device)`` and optionally
``load()`` and ``halve_batches() -> bool``. The scorer counts the whole batch at once; failures are the
engine's to handle, in one layer (:func:`diverseg_hf.scoring.run.run_scorer`): a failed batch is
retried image by image, and on an out-of-memory error the counter's own batches (prompts per
decoder call, images per model call) are halved first, then the images per call.

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

from typing import Any, ClassVar

import numpy as np

from ..errors import DiversegError
from .base import Scorer


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

    def to(self, device: str) -> CountingScorer:
        self.counter.to(device)
        return self

    def load(self) -> CountingScorer:
        load = getattr(self.counter, "load", None)
        if load is not None:
            load()
        return self

    def halve_batches(self) -> bool:
        halve = getattr(self.counter, "halve_batches", None)
        return bool(halve is not None and halve())

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        return {self.column: list(self.counter.count(images)), "error": [None] * len(images)}
