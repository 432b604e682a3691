"""EXIF orientation: read the tag from an EXIF block and turn decoded pixels upright, as ``imread`` does.

OpenCV applies the orientation tag of a JPEG's ``Exif`` APP1 segment and of a PNG's ``eXIf`` chunk;
:mod:`diverseg_hf.decode.jpeg` and :mod:`diverseg_hf.decode.png` find the block, this module reads and applies it.

Example:
    >>> import numpy as np
    >>> orient(np.arange(6).reshape(2, 3, 1), 6)[..., 0].tolist()  # 90 degrees clockwise
    [[3, 0], [4, 1], [5, 2]]
    >>> orientation_of(b"not exif")
    1
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_ORIENTATION = 0x0112


def orientation_of(exif_block: bytes) -> int:
    """The orientation (1-8) in an EXIF block (``Exif\\0\\0`` + TIFF, or TIFF alone); 1 when absent or broken."""
    exif = Image.Exif()
    try:
        exif.load(exif_block)
        value = int(exif.get(_ORIENTATION, 1))
    except Exception:  # a broken EXIF block is ignored, as OpenCV does
        return 1
    return value if 1 <= value <= 8 else 1


def orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an HxWxC array upright for an EXIF orientation (1-8); returns a view, never a copy."""
    swapped = rgb.transpose(1, 0, 2)
    views = {
        2: rgb[:, ::-1],
        3: rgb[::-1, ::-1],
        4: rgb[::-1],
        5: swapped,
        6: swapped[:, ::-1],
        7: swapped[::-1, ::-1],
        8: swapped[::-1],
    }
    return views.get(orientation, rgb)
