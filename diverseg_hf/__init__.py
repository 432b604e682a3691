"""diverseg_hf: build DiverSeg-style super-resolution training sets with the Hugging Face stack.

Example:
    >>> import numpy as np, diverseg_hf
    >>> diverseg_hf.blockiness(np.zeros((64, 64), np.uint8))  # flat: undefined
    nan
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import DiversegError, ImageError, MissingExtraError
from .quality.basis import load_basis
from .quality.blockiness import BlockinessResult, blockiness, blockiness_batch, iter_blockiness, score_image
from .quality.calibrate import calibrate
from .quality.estimate import QualityEstimate, estimate_quality
from .version import __version__

#: Public names loaded on first use (they import datasets, huggingface_hub and the publish phase).
_LAZY = {"publish_dataset": "diverseg_hf.from_dataset", "push": "diverseg_hf.hub.push",
         "select_published": "diverseg_hf.rethreshold"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlockinessResult",
    "DiversegError",
    "ImageError",
    "MissingExtraError",
    "QualityEstimate",
    "__version__",
    "blockiness",
    "blockiness_batch",
    "calibrate",
    "estimate_quality",
    "iter_blockiness",
    "load_basis",
    "publish_dataset",
    "push",
    "score_image",
    "select_published",
]
