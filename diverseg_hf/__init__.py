"""diverseg_hf: build DiverSeg-style super-resolution training sets with the Hugging Face stack.

Example:
    >>> import numpy as np, diverseg_hf
    >>> diverseg_hf.blockiness(np.zeros((64, 64), np.uint8))  # flat: undefined
    nan
"""

from __future__ import annotations

from .basis import load_basis
from .blockiness import BlockinessResult, blockiness, blockiness_batch, iter_blockiness, score_image
from .calibrate import calibrate
from .errors import DiversegError, ImageError, MissingExtraError
from .quality import QualityEstimate, estimate_quality
from .version import __version__

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
    "score_image",
]
