"""Out-of-memory halving and per-image isolation live in one layer (scoring.run.run_scorer), for every scorer:
the scorer's own batches are halved first (Scorer.halve_batches), then the images per call; a failing
batch is retried image by image."""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np

from diverseg_hf.errors import ImageError
from diverseg_hf.scoring.base import Scorer
from diverseg_hf.scoring.run import run_scorer


class InnerBatches(Scorer):
    """Runs its images in inner batches of ``inner``; an inner batch above ``fits`` is out of memory; a
    3x3 image is refused (ImageError), a 5x5 image fails (ValueError)."""

    name: ClassVar[str] = "inner"
    columns: ClassVar[dict[str, str]] = {"size": "int32"}
    uses_gpu: ClassVar[bool] = True

    def __init__(self, inner: int = 8, fits: int = 2):
        self.inner, self.fits, self.calls = inner, fits, []

    def halve_batches(self) -> bool:
        if self.inner == 1:
            return False
        self.inner //= 2
        return True

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        self.calls.append(len(images))
        if min(self.inner, len(images)) > self.fits:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        for im in images:
            if im.shape[0] == 3:
                raise ImageError("unsupported", "3x3 images are refused")
            if im.shape[0] == 5:
                raise ValueError("five\nmore lines")
        return {"size": [int(im.shape[0]) for im in images], "error": [None] * len(images)}


def test_own_batches_are_halved_before_the_images_per_call(caplog):
    scorer = InnerBatches(inner=8, fits=2)
    images = [np.zeros((10 + i, 4, 3), np.uint8) for i in range(6)]
    with caplog.at_level(logging.WARNING):
        out = run_scorer(scorer, images, batch_size=6)
    assert out == {"size": [10, 11, 12, 13, 14, 15], "error": [None] * 6}
    assert scorer.inner == 2 and scorer.calls == [6, 6, 6]  # 8 -> 4 -> 2 inside; the 6 images stay one call
    assert "its own batches halved" in caplog.text


def test_then_the_images_and_each_failure_is_one_row():
    scorer = InnerBatches(inner=1, fits=0)  # nothing fits: own batches at 1, images halved to 1, then recorded
    out = run_scorer(scorer, [np.zeros((10, 4, 3), np.uint8)] * 2, batch_size=2)
    assert out["size"] == [None, None] and all(e.startswith("oom: inner: RuntimeError") for e in out["error"])
    scorer = InnerBatches(inner=4, fits=4)
    images = [np.zeros((h, 4, 3), np.uint8) for h in (10, 3, 5, 11)]
    out = run_scorer(scorer, images, batch_size=4)
    assert out["size"] == [10, None, None, 11]
    assert out["error"] == [None, "unsupported: 3x3 images are refused", "scorer: inner: ValueError: five", None]
