"""diverseg_hf: build DiverSeg-style super-resolution training sets with the Hugging Face stack.

Example:
    >>> import numpy as np, diverseg_hf
    >>> diverseg_hf.blockiness(np.zeros((64, 64), np.uint8))  # flat: undefined
    nan
"""

from __future__ import annotations

from .errors import DiversegError, ImageError, MissingExtraError
from .quality.basis import load_basis
from .quality.blockiness import BlockinessResult, blockiness, blockiness_batch, iter_blockiness, score_image
from .quality.calibrate import calibrate
from .quality.estimate import QualityEstimate, estimate_quality
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
