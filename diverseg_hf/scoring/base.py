"""The Scorer contract: small classes that turn a batch of decoded images into score columns.

A scorer never decodes: the engine decodes each record once with :mod:`diverseg_hf.images`
(RGB uint8, OpenCV semantics), records decode failures itself, and hands the scorer the good
images. The engine also owns device placement (:meth:`Scorer.to`) and batch size.

Example:
    >>> import numpy as np
    >>> class Mean(Scorer):
    ...     name = "mean"
    ...     columns = {"mean": "float64"}
    ...     def __call__(self, images):
    ...         return {"mean": [float(im.mean()) for im in images], "error": [None] * len(images)}
    >>> Mean()([np.full((2, 2, 3), 3, np.uint8)])["mean"]
    [3.0]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np


class Scorer:
    """Base class of all scorers.

    Class attributes:
        name: registry name (``--scorers NAME``).
        columns: output column name -> Arrow type name (``"float64"``, ``"int32"``...).
        uses_gpu: True when the engine should give the scorer a device and large batches.

    ``__call__(images)`` takes a list of HxWx3 uint8 RGB arrays and returns, for each declared
    column, a list with one value per image (``None`` or NaN when undefined), plus ``"error"``:
    a list of ``None`` or a short reason per image. It must not raise for one bad image.
    """

    name: ClassVar[str] = ""
    columns: ClassVar[dict[str, str]] = {}
    uses_gpu: ClassVar[bool] = False
    default_batch_size: ClassVar[int] = 32

    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings recorded with every score table."""
        return {}

    def to(self, device: str) -> Scorer:
        """Move to ``device`` ("cpu", "cuda", "cuda:1"...); CPU-only scorers ignore it."""
        return self

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        raise NotImplementedError
