"""Scorers defined outside the package, for the tests of ``register_scorer`` and ``scorer_map``.

Each records where it was built (``DIVERSEG_TEST_LOADS``: a folder; one file per construction named
``<class>-<pid>-<n>`` holding the device), so tests can count model loads per process.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from diverseg_hf.scoring.base import Scorer

_COUNTER = itertools.count()


def _record_load(kind: str, device: str) -> None:
    folder = os.environ.get("DIVERSEG_TEST_LOADS")
    if folder:
        Path(folder, f"{kind}-{os.getpid()}-{next(_COUNTER)}").write_text(device)


def loads(folder: Path) -> list[tuple[str, int, str]]:
    """``(class, pid, device)`` per construction (or ``("MovedTo", pid, device)`` per move) recorded in ``folder``."""
    out = []
    for path in sorted(Path(folder).iterdir()):
        kind, pid, _ = path.name.split("-")
        out.append((kind, int(pid), path.read_text()))
    return out


class MeanLevel(Scorer):
    """The mean grey level of each image (CPU): a user's own scorer."""

    name: ClassVar[str] = "mean_level"
    columns: ClassVar[dict[str, str]] = {"mean_level": "float64"}

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        _record_load("MeanLevel", "cpu")

    def settings(self) -> dict:
        return {"offset": self.offset}

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        return {"mean_level": [float(im.mean()) + self.offset for im in images], "error": [None] * len(images)}


class FakeModelCounter(Scorer):
    """A GPU-style scorer whose 'model' is built in the constructor: records its device; counts pixels > 127."""

    name: ClassVar[str] = "fake_model"
    columns: ClassVar[dict[str, str]] = {"bright_pixels": "int32"}
    uses_gpu: ClassVar[bool] = True

    def __init__(self, device: str = "cpu", dtype: str = "float32"):
        self.device = device
        _record_load("FakeModelCounter", device)

    def to(self, device: str) -> FakeModelCounter:
        self.device = device
        _record_load("MovedTo", device)
        return self

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        return {"bright_pixels": [int((im > 127).sum()) for im in images], "error": [None] * len(images)}
