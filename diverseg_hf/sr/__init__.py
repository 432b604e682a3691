"""Super-resolution helpers: MATLAB bicubic ``imresize``, streaming LR/HR pairs, PSNR/SSIM.

``imresize`` and ``metrics`` need only NumPy/SciPy; ``SRPairs`` needs torch (``pip install
"diverseg-hf[sr]"``) and is imported on first use.

Example:
    >>> import numpy as np
    >>> from diverseg_hf.sr import imresize, metrics
    >>> hr = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    >>> lr = imresize(hr, 1 / 4)
    >>> lr.shape, metrics.psnr(hr, hr, scale=4)
    ((16, 16, 3), inf)
"""

from __future__ import annotations

from typing import Any

from . import metrics
from .imresize import imresize

__all__ = ["SRPairs", "imresize", "metrics"]


def __getattr__(name: str) -> Any:
    if name == "SRPairs":  # needs torch: import lazily so the numpy parts work without it
        from .pairs import SRPairs

        return SRPairs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
