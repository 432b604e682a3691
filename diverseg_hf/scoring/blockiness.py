"""The blockiness scorer: B(x) of each decoded RGB image, exactly as the released DiverSeg scorer.

Example:
    >>> import numpy as np
    >>> out = BlockinessScorer()([np.zeros((64, 64, 3), np.uint8)])
    >>> out["error"][0][:9], out["blockiness"][0] != out["blockiness"][0]  # undefined: NaN + reason
    ('undefined', True)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..decode.images import rgb_to_gray
from ..quality.blockiness import BLOCK, MIN_BLOCKS, blockiness_of_gray
from .base import Scorer


class BlockinessScorer(Scorer):
    """Per-image JPEG blockiness (CPU, float64); NaN and an ``undefined: ...`` reason where undefined."""

    name: ClassVar[str] = "blockiness"
    columns: ClassVar[dict[str, str]] = {"blockiness": "float64"}
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"blockiness"})
    uses_gpu: ClassVar[bool] = False
    default_batch_size: ClassVar[int] = 32

    def settings(self) -> dict[str, Any]:
        return {"block": BLOCK, "min_blocks": MIN_BLOCKS, "gray": "opencv-bgr2gray"}

    def __call__(self, images: list[np.ndarray]) -> dict[str, list]:
        values: list[float] = []
        errors: list[str | None] = []
        for rgb in images:
            result = blockiness_of_gray(rgb_to_gray(rgb))
            values.append(result.value)
            errors.append(result.reason)
        return {"blockiness": values, "error": errors}
